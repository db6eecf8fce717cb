//! A real `pqescape-agent run` process holds an authenticated channel to the
//! gateway: the orchestrator records it as seen, with its version; a PSK that does
//! not match is refused and leaves no trace; SIGTERM stops the agent cleanly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use pqescape_agent::tls::{self, Groups};
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn an_enrolled_agent_holds_an_authenticated_channel_and_is_seen() {
    let f = fixture().await;
    let (id, token) = f.register("host-run").await;
    let state = f.dir.join("agent");
    assert!(f.agent(&state, &["enroll"], Some(&token)).await.status.success());

    let agent = f.spawn_agent(&state);
    eventually("the agent is connected", async || f.orchestrator.connections().is_connected(&id))
        .await;
    let c = f.orchestrator.store().consumer(&id).await.unwrap().unwrap();
    assert!(c.last_seen.is_some());
    assert_eq!(
        c.agent_version.as_deref(),
        Some(concat!("pqescape-agent ", env!("CARGO_PKG_VERSION")))
    );

    agent.stop(); // SIGTERM stops the agent cleanly
    eventually("the channel is gone", async || !f.orchestrator.connections().is_connected(&id))
        .await;
    let log = std::fs::read_to_string(state.with_extension("log")).unwrap();
    assert!(log.contains("channel open") && log.contains("agent stopped"), "{log}");
    assert!(!log.contains(&stored_psk(&state)), "the PSK never reaches the log");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_with_the_wrong_psk_is_refused_and_keeps_retrying() {
    let f = fixture().await;
    let (id, token) = f.register("host-bad").await;
    let state = f.dir.join("agent");
    assert!(f.agent(&state, &["enroll"], Some(&token)).await.status.success());
    let file = state.join("state.json");
    let text =
        std::fs::read_to_string(&file).unwrap().replace(&stored_psk(&state), &"11".repeat(32));
    std::fs::write(&file, text).unwrap();

    let mut agent = f.spawn_agent(&state);
    let log_path = state.with_extension("log");
    eventually("the refusal is logged", async || {
        std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .contains("refused by the orchestrator")
    })
    .await;
    assert!(!f.orchestrator.connections().is_connected(&id));
    let c = f.orchestrator.store().consumer(&id).await.unwrap().unwrap();
    assert_eq!((c.last_seen, c.agent_version), (None, None), "a refused hello changes nothing");
    assert!(agent.is_running(), "the agent keeps trying with backoff");
    agent.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_migrated_agent_will_not_settle_for_a_classical_gateway() {
    use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let f = fixture().await;
    // A gateway impostor with the real certificate that speaks only X25519.
    let dir = f.dir.join("gateway-tls");
    let chain: Vec<_> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
    let mut provider = default_provider();
    provider.kx_groups = vec![kx_group::X25519];
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("https://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        acceptor.accept(tcp).await.map(|_| ())
    });

    let timeout = std::time::Duration::from_secs(5);
    let result = tls::connect(&url, &f.ca_file, Groups::PostQuantum, timeout).await;
    let Err(err) = result else { panic!("no channel without X25519MLKEM768") };
    assert!(matches!(err, tls::TlsError::Connect(_)), "{err}");
    assert!(server.await.unwrap().is_err(), "the handshake failed on the server side too");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_is_reached_only_with_a_trusted_certificate() {
    let f = fixture().await;
    let other = f.dir.join("other");
    let stranger = pqescape_orchestrator::tls::GatewayTls::load_or_generate(&other, &[]).unwrap();
    let timeout = std::time::Duration::from_secs(5);
    let wrong_ca = stranger.ca_file().unwrap();
    let err = tls::connect(&f.gateway, wrong_ca, Groups::Classical, timeout).await.err().unwrap();
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");
    let (_, session) =
        tls::connect(&f.gateway, &f.ca_file, Groups::Classical, timeout).await.unwrap();
    assert!(!session.post_quantum);
    let (_, session) =
        tls::connect(&f.gateway, &f.ca_file, Groups::PostQuantum, timeout).await.unwrap();
    assert!(session.post_quantum, "the gateway offers X25519MLKEM768");
}
