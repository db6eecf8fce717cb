//! `pqescape-floor`: the two yardsticks a campaign is measured against, in one
//! process on this machine.
//!
//! * The crypto floor: the escape exchange of one consumer (seal, verify, ack,
//!   respond, complete, finish: every key exchange, MAC and KDF, nothing else),
//!   timed per side over many consumers, and the ML-DSA-65 verification of the
//!   campaign manifest that every agent makes once per campaign.
//! * The peer: one TLS 1.3 full handshake with X25519MLKEM768 (rustls, ECDSA
//!   P-256 certificate), client and server in memory, with the server's share of
//!   the CPU timed apart: what a fleet would pay to reconnect over PQ TLS instead.
//!
//! Prints one JSON object; docs/performance.md shows how the benchmark uses it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use pqescape_message::agent::{AgentPolicy, ConsumerView, verify_escape};
use pqescape_message::campaign::{ManifestOrder, sign_manifest, verify_manifest};
use pqescape_message::orchestrator::{EscapeOrder, respond, seal_escape};
use pqescape_message::secret::SecretKey;
use pqescape_message::sign::OrchestratorSigningKey;
use pqescape_message::types::{CampaignId, ConsumerId, KeyMode, Suite};
use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

fn main() {
    let rounds: u32 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(2000);
    let (orchestrator, agent) = exchange(rounds);
    let manifest = manifest_verification(rounds.min(1000));
    let (tls_server, tls_client) = tls_handshake(rounds.min(2000));
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let report = serde_json::json!({
        "rounds": rounds,
        "cores": cores,
        "exchange_orchestrator_us": orchestrator.as_secs_f64() * 1e6,
        "exchange_agent_us": agent.as_secs_f64() * 1e6,
        "manifest_verify_agent_us": manifest.as_secs_f64() * 1e6,
        "tls_x25519mlkem768_server_us": tls_server.as_secs_f64() * 1e6,
        "tls_x25519mlkem768_client_us": tls_client.as_secs_f64() * 1e6,
    });
    println!("{report}");
}

/// Mean time per consumer on each side of the escape exchange.
fn exchange(rounds: u32) -> (Duration, Duration) {
    let mut rng = pqescape_message::entropy::SystemEntropy::new();
    let psk = SecretKey::from_bytes([5; 32]);
    let policy = AgentPolicy::default();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let (mut orchestrator, mut agent) = (Duration::ZERO, Duration::ZERO);
    for i in 0..rounds {
        let order = EscapeOrder {
            consumer: ConsumerId([1; 16]),
            campaign: CampaignId([2; 16]),
            key_id: 1,
            sequence: u64::from(i) + 1,
            suite: Suite::X25519MlKem768,
            issued_at: now,
            not_after: now + 3600,
            drill: false,
            manifest_digest: None,
            directives: b"",
            encrypt: false,
            mode: KeyMode::DedicatedPsk,
        };
        let t = Instant::now();
        let escape = seal_escape(&order, &psk, &mut rng).unwrap();
        orchestrator += t.elapsed();

        let t = Instant::now();
        let keys = [(1, &psk)];
        let view = ConsumerView {
            consumer: ConsumerId([1; 16]),
            psks: &keys,
            tls_exporter: None,
            last_sequence: 0,
            current_suite: Suite::Classical,
        };
        let (handshake, ack) = verify_escape(&escape, &view, &policy, None, now)
            .unwrap()
            .acknowledge(&mut rng)
            .unwrap();
        agent += t.elapsed();

        let t = Instant::now();
        let (pending, response) = respond(&escape, &ack, &psk, None, &mut rng).unwrap();
        orchestrator += t.elapsed();

        let t = Instant::now();
        let (finished, _) = handshake.complete(&response, &policy).unwrap();
        agent += t.elapsed();

        let t = Instant::now();
        pending.finish(&finished).unwrap();
        orchestrator += t.elapsed();
    }
    (orchestrator / rounds, agent / rounds)
}

/// Mean time an agent takes to verify a campaign manifest.
fn manifest_verification(rounds: u32) -> Duration {
    let key = OrchestratorSigningKey::from_seed(&[9; 32]);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let order = ManifestOrder {
        campaign: CampaignId([2; 16]),
        suite: Suite::X25519MlKem768,
        drill: false,
        issued_at: now,
        not_after: now + 3600,
        selector: "env=prod",
    };
    let manifest = sign_manifest(&order, &key).unwrap();
    let pinned = key.verifying_key();
    let t = Instant::now();
    for _ in 0..rounds {
        verify_manifest(&manifest, &pinned, now, 0).unwrap();
    }
    t.elapsed() / rounds
}

/// Mean server and client time of one full X25519MLKEM768 handshake.
fn tls_handshake(rounds: u32) -> (Duration, Duration) {
    let key = rcgen_free_key();
    let (server_config, client_config) = configs(key);
    let (mut server_time, mut client_time) = (Duration::ZERO, Duration::ZERO);
    for _ in 0..rounds {
        let name = ServerName::try_from("localhost").unwrap();
        let t = Instant::now();
        let mut client = rustls::ClientConnection::new(client_config.clone(), name).unwrap();
        client_time += t.elapsed();
        let t = Instant::now();
        let mut server = rustls::ServerConnection::new(server_config.clone()).unwrap();
        server_time += t.elapsed();
        let mut buf = Vec::new();
        while client.is_handshaking() || server.is_handshaking() {
            let t = Instant::now();
            buf.clear();
            while client.wants_write() {
                client.write_tls(&mut buf).unwrap();
            }
            client_time += t.elapsed();
            let t = Instant::now();
            let mut slice = buf.as_slice();
            while !slice.is_empty() {
                server.read_tls(&mut slice).unwrap();
            }
            server.process_new_packets().unwrap();
            buf.clear();
            while server.wants_write() {
                server.write_tls(&mut buf).unwrap();
            }
            server_time += t.elapsed();
            let t = Instant::now();
            let mut slice = buf.as_slice();
            while !slice.is_empty() {
                client.read_tls(&mut slice).unwrap();
            }
            client.process_new_packets().unwrap();
            client_time += t.elapsed();
        }
        let group = server.negotiated_key_exchange_group().map(|g| g.name());
        assert_eq!(group, Some(rustls::NamedGroup::X25519MLKEM768));
    }
    (server_time / rounds, client_time / rounds)
}

/// A P-256 key and a self-signed certificate for `localhost`, the same kind the
/// orchestrator generates for its gateway.
fn rcgen_free_key() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let der = PrivatePkcs8KeyDer::from(key.serialize_der());
    (cert.der().clone(), PrivateKeyDer::Pkcs8(der))
}

fn configs(
    (cert, key): (CertificateDer<'static>, PrivateKeyDer<'static>),
) -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
    let provider = || {
        let mut p = default_provider();
        p.kx_groups = vec![kx_group::X25519MLKEM768];
        Arc::new(p)
    };
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let client = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (Arc::new(server), Arc::new(client))
}
