//! Escapes an attacker could put on the wire, delivered over a real agent's live
//! channel: forged, replayed, expired, for another consumer, bit-flipped. Each is
//! refused with its reason and leaves the agent's state exactly as it was.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use pqescape_message::orchestrator::{EscapeOrder, seal_escape};
use pqescape_message::secret::SecretKey;
use pqescape_message::types::{CampaignId, ConsumerId, KeyMode, Suite};
use pqescape_orchestrator::clock::now;
use pqescape_orchestrator::gateway::pb;
use support::*;

fn escape(
    consumer: [u8; 16],
    psk: &SecretKey,
    sequence: u64,
    issued_at: u64,
    not_after: u64,
) -> Vec<u8> {
    let order = EscapeOrder {
        consumer: ConsumerId(consumer),
        campaign: CampaignId([7; 16]),
        key_id: 1,
        sequence,
        suite: Suite::X25519MlKem768,
        issued_at,
        not_after,
        drill: false,
        manifest_digest: None,
        directives: b"",
        encrypt: false,
        mode: KeyMode::DedicatedPsk,
    };
    seal_escape(&order, psk, &mut rand_core::UnwrapErr(getrandom::SysRng)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn forged_replayed_expired_misaddressed_and_flipped_escapes_change_nothing() {
    let f = fixture().await;
    let (id, token) = f.register("target").await;
    let state = f.dir.join("agent");
    assert!(f.agent(&state, &["enroll"], Some(&token)).await.status.success());
    // As if ten escapes had been accepted before: sequence 5 is then a replay.
    let file = state.join("state.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("\"last_sequence\": 0", "\"last_sequence\": 10")).unwrap();

    let log = state.with_extension("log");
    let _agent = f.spawn_agent(&state);
    for _ in 0..100 {
        if f.orchestrator.connections().is_connected(&id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(f.orchestrator.connections().is_connected(&id));

    let consumer = uuid_bytes(&id);
    let psk = SecretKey::from_bytes(hex::decode(stored_psk(&state)).unwrap().try_into().unwrap());
    let t = u64::try_from(now()).unwrap();
    let mut flipped = escape(consumer, &psk, 11, t, t + 600);
    flipped[60] ^= 0x04;
    let attacks: Vec<(&str, Vec<u8>)> = vec![
        ("integrity", escape(consumer, &SecretKey::from_bytes([9; 32]), 11, t, t + 600)),
        ("replay", escape(consumer, &psk, 5, t, t + 600)),
        ("expired", escape(consumer, &psk, 11, t - 7200, t - 3600)),
        ("wrong_consumer", escape([0xee; 16], &psk, 11, t, t + 600)),
        ("integrity", flipped),
    ];
    let before = std::fs::read_to_string(&file).unwrap();
    for (n, (kind, bytes)) in attacks.iter().enumerate() {
        let frame =
            pb::GatewayFrame { frame: Some(pb::gateway_frame::Frame::Message(bytes.clone())) };
        assert!(f.orchestrator.connections().send(&id, frame));
        let mut refusal = None;
        for _ in 0..100 {
            let text = std::fs::read_to_string(&log).unwrap();
            let lines: Vec<&str> = text.lines().filter(|l| l.contains("escape refused")).collect();
            if let Some(line) = lines.get(n) {
                refusal = Some((*line).to_owned());
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let line = refusal.unwrap_or_else(|| panic!("{kind}: no refusal logged"));
        assert!(line.contains(&format!("\"error.kind\":\"{kind}\"")), "{kind}: {line}");
    }
    assert_eq!(std::fs::read_to_string(&file).unwrap(), before, "no state change");
}

fn uuid_bytes(id: &str) -> [u8; 16] {
    hex::decode(id.replace('-', "")).unwrap().try_into().unwrap()
}
