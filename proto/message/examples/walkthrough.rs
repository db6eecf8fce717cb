//! One consumer escapes, start to finish, in one process: enrollment over an
//! untrusted channel, a signed campaign manifest, the escape, the handshake and
//! the status report. Prints every message's size and the outcome.
//!
//! `cargo run -p pqescape-message --example walkthrough`
#![allow(missing_docs)]

use std::error::Error;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use pqescape_message::agent::{AgentPolicy, ConsumerView, verify_escape};
use pqescape_message::campaign::{ManifestOrder, manifest_digest, sign_manifest, verify_manifest};
use pqescape_message::enrollment::{AgentEnrollment, EnrollmentToken, accept_enrollment};
use pqescape_message::message::{Status, StatusReport};
use pqescape_message::orchestrator::{EscapeOrder, respond, seal_escape};
use pqescape_message::report::{seal_status, verify_status};
use pqescape_message::sign::OrchestratorSigningKey;
use pqescape_message::types::{CampaignId, ConsumerId, KeyMode, Suite};
use rand_core::UnwrapErr;

fn step(name: &str, bytes: &[u8]) {
    println!("  {name:<28} {:>5} bytes", bytes.len());
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut rng = UnwrapErr(getrandom::SysRng);
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let started = Instant::now();

    println!("enrollment (PSK agreed through X25519 + ML-KEM-768, orchestrator pinned by token)");
    let signer = OrchestratorSigningKey::generate(&mut rng);
    let token = EnrollmentToken::generate(&signer.verifying_key(), &mut rng);
    let (agent_enroll, hello) =
        AgentEnrollment::start(token.clone(), Suite::X25519MlKem768, &mut rng)?;
    step("enroll hello", &hello);
    let consumer = ConsumerId(*b"consumer-0000001");
    let (orch_enroll, accept) = accept_enrollment(&hello, consumer, 1, &signer, &mut rng)?;
    step("enroll accept", &accept);
    let (confirm, agent_keys, pinned) = agent_enroll.confirm(&accept)?;
    step("enroll confirm", &confirm);
    let orch_keys = orch_enroll.finish(&confirm, &token.verifier())?;
    assert!(agent_keys.psk == orch_keys.psk);

    println!("campaign: one ML-DSA-65 signature for the whole fleet");
    let campaign = CampaignId(*b"campaign-q-day-1");
    let manifest = sign_manifest(
        &ManifestOrder {
            campaign,
            suite: Suite::X25519MlKem768,
            drill: false,
            issued_at: now,
            not_after: now + 3600,
            selector: "env=prod",
        },
        &signer,
    )?;
    step("campaign manifest", &manifest);

    println!("escape");
    let order = EscapeOrder {
        consumer,
        campaign,
        key_id: orch_keys.key_id,
        sequence: 1,
        suite: Suite::X25519MlKem768,
        issued_at: now,
        not_after: now + 3600,
        drill: false,
        manifest_digest: Some(manifest_digest(&manifest)),
        directives: b"",
        encrypt: false,
        mode: KeyMode::DedicatedPsk,
    };
    let escape = seal_escape(&order, &orch_keys.psk, &mut rng)?;
    step("escape (manifest bound)", &escape);

    let policy = AgentPolicy {
        require_manifest: true,
        require_handshake_signature: false,
        orchestrator_key: Some(pinned.clone()),
        ..AgentPolicy::default()
    };
    let verified_manifest = verify_manifest(&manifest, &pinned, now, policy.clock_skew_secs)?;
    let keys = [(agent_keys.key_id, &agent_keys.psk)];
    let view = ConsumerView {
        consumer,
        psks: &keys,
        tls_exporter: None,
        last_sequence: 0,
        current_suite: Suite::Classical,
    };
    let verified = verify_escape(&escape, &view, &policy, Some(&verified_manifest), now)?;
    let (agent, ack) = verified.acknowledge(&mut rng)?;
    step("acknowledgement", &ack);
    let (pending, response) = respond(&escape, &ack, &orch_keys.psk, None, &mut rng)?;
    step("handshake response", &response);
    let (finished, agent_ctx) = agent.complete(&response, &policy)?;
    step("finished", &finished);
    let orch_ctx = pending.finish(&finished)?;
    assert!(agent_ctx.next_psk() == orch_ctx.next_psk());

    let report = seal_status(
        agent_ctx.exchange,
        agent_ctx.next_key_id,
        agent_ctx.next_psk(),
        Status::Migrated,
        0,
        now,
        "migrated",
    )?;
    step("status report", &report);
    verify_status(&report, &StatusReport::decode(&report)?, orch_ctx.next_psk())?;

    println!(
        "migrated: suite {}, PSK ratcheted to key id {}, both sides agree; {:.1} ms in all",
        orch_ctx.suite.name(),
        orch_ctx.next_key_id,
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
