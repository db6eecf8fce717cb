//! Test vectors of docs/test-vectors/: regenerated from fixed seeds and compared
//! with the committed files, so the code and the published vectors cannot drift.
//!
//! `PQESCAPE_WRITE_VECTORS=1 cargo test -p pqescape-message --test vectors`
//! rewrites the files after an intended protocol change.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use std::path::PathBuf;

use common::*;
use pqescape_message::agent::verify_escape;
use pqescape_message::campaign::{ManifestOrder, manifest_digest, sign_manifest};
use pqescape_message::channel::seal_hello;
use pqescape_message::enrollment::{AgentEnrollment, EnrollmentToken, accept_enrollment};
use pqescape_message::message::{Exchange, Status};
use pqescape_message::orchestrator::{EscapeOrder, respond, seal_escape};
use pqescape_message::report::seal_status;
use pqescape_message::schedule::{EscapeKeys, HandshakeSecret, export, hash};
use pqescape_message::secret::SecretKey;
use pqescape_message::types::{ConsumerId, KeyMode, Suite};
use serde_json::{Value, json};

fn hx(b: &[u8]) -> String {
    hex::encode(b)
}

/// Hex of every draw since the last call, then forgets them.
fn draws(rng: &mut Drbg) -> Value {
    let d: Vec<String> = rng.draws.drain(..).map(|d| hx(&d)).collect();
    json!(d)
}

fn order_json(o: &EscapeOrder<'_>) -> Value {
    json!({
        "consumer_id": hx(&o.consumer.0), "campaign_id": hx(&o.campaign.0),
        "key_id": o.key_id, "sequence": o.sequence, "suite": o.suite as u8,
        "issued_at": o.issued_at, "not_after": o.not_after, "drill": o.drill,
        "manifest_digest": o.manifest_digest.map(|d| hx(&d)),
        "directives": hx(o.directives), "encrypt": o.encrypt,
        "mode": if o.mode == KeyMode::TlsExporter { "tls-exporter" } else { "dedicated-psk" },
    })
}

fn key_schedule() -> Value {
    let psk = psk();
    let keys = EscapeKeys::derive(&psk, CONSUMER, 1, KeyMode::DedicatedPsk);
    let ss_kem = SecretKey::from_bytes([0x33; 32]);
    let ss_x = SecretKey::from_bytes([0x44; 32]);
    let hs = HandshakeSecret::extract(&keys.context_salt, &ss_kem, &ss_x);
    let th = [0x55; 32];
    let ctx = hs.context_secret(&th);
    let mut ppk = [0u8; 32];
    export(&ctx, "ikev2 ppk", b"pqescape", &mut ppk).unwrap();
    json!({
        "escape_keys": {
            "input": { "base_key": hx(psk.expose()), "consumer_id": hx(&CONSUMER.0),
                       "key_id": 1, "mode": 0 },
            "escape_mac": hx(keys.escape_mac.expose()), "escape_enc": hx(keys.escape_enc.expose()),
            "ack_mac": hx(keys.ack_mac.expose()), "status_mac": hx(keys.status_mac.expose()),
            "context_salt": hx(keys.context_salt.expose()),
            "channel_mac": hx(keys.channel_mac.expose()),
        },
        "handshake": {
            "input": { "context_salt": hx(keys.context_salt.expose()),
                       "ss_mlkem": hx(ss_kem.expose()), "ss_x25519": hx(ss_x.expose()),
                       "th_full": hx(&th) },
            "server_finished_key": hx(hs.server_finished_key().expose()),
            "client_finished_key": hx(hs.client_finished_key().expose()),
            "context_secret": hx(ctx.expose()), "next_psk": hx(hs.next_psk(&th).expose()),
        },
        "exporter": { "secret": hx(ctx.expose()), "label": "ikev2 ppk",
                      "context": hx(b"pqescape"), "length": 32, "output": hx(&ppk) },
    })
}

fn escape_case(name: &str, o: &EscapeOrder<'_>, base: &SecretKey) -> Value {
    let mut rng = Drbg::new(name);
    let bytes = seal_escape(o, base, &mut rng).unwrap();
    json!({ "name": name, "base_key": hx(base.expose()), "order": order_json(o),
            "rng_draws": draws(&mut rng), "message": hx(&bytes), "length": bytes.len() })
}

fn escapes() -> Value {
    let psk = psk();
    let exporter = SecretKey::from_bytes([0xe7; 32]);
    let compact = order(1);
    let manifest = EscapeOrder { manifest_digest: Some([0x6d; 32]), ..order(2) };
    let encrypted =
        EscapeOrder { directives: b"{\"hook\":\"strongswan\"}", encrypt: true, ..order(3) };
    let drill = EscapeOrder { drill: true, suite: Suite::X25519MlKem1024, ..order(4) };
    let exported = EscapeOrder { mode: KeyMode::TlsExporter, ..order(5) };
    json!([
        escape_case("escape compact", &compact, &psk),
        escape_case("escape with manifest digest", &manifest, &psk),
        escape_case("escape with encrypted directives", &encrypted, &psk),
        escape_case("escape drill mlkem1024", &drill, &psk),
        escape_case("escape tls exporter mode", &exported, &exporter),
    ])
}

fn handshake_case(name: &str, signed: bool, suite: Suite) -> Value {
    let mut rng = Drbg::new(name);
    let psk = psk();
    let o = EscapeOrder { suite, ..order(1) };
    let escape = seal_escape(&o, &psk, &mut rng).unwrap();
    let seal_draws = draws(&mut rng);
    let verified = verify_escape(&escape, &view(&[(1, &psk)], 0), &policy(), None, NOW).unwrap();
    let (agent, ack) = verified.acknowledge(&mut rng).unwrap();
    let ack_draws = draws(&mut rng);
    let signer = signer();
    let (pending, response) =
        respond(&escape, &ack, &psk, signed.then_some(&signer), &mut rng).unwrap();
    let response_draws = draws(&mut rng);
    let (finished, ctx) = agent.complete(&response, &policy()).unwrap();
    pending.finish(&finished).unwrap();
    let secrets = shared_secrets(suite, &ack_draws, &response_draws, &ack, &response);
    let th_response = hash(&[&escape, &ack, &response[..response.len() - 32]]);
    let th_full = hash(&[&escape, &ack, &response]);
    json!({
        "name": name, "psk": hx(psk.expose()), "order": order_json(&o),
        "signing_key_seed": signed.then(|| hx(&[0x0d; 32])),
        "escape": { "rng_draws": seal_draws, "message": hx(&escape) },
        "ack": { "rng_draws": ack_draws, "message": hx(&ack) },
        "response": { "rng_draws": response_draws, "message": hx(&response) },
        "finished": { "message": hx(&finished) },
        "intermediate": { "ss_mlkem": secrets.0, "ss_x25519": secrets.1,
                          "th_response": hx(&th_response), "th_full": hx(&th_full) },
        "result": { "next_key_id": ctx.next_key_id, "next_psk": hx(ctx.next_psk().expose()),
                    "channel_binding": hx(&ctx.channel_binding()),
                    "ikev2_ppk(ppk_id=\"pqescape\")": hx(ctx.ikev2_ppk(b"pqescape").unwrap().expose()) },
    })
}

/// Recomputes both shared secrets from the recorded draws, the way a second
/// implementation would: the agent's first draw is its X25519 scalar, the
/// orchestrator's draws are the ML-KEM message `m` then its X25519 scalar.
fn shared_secrets(
    suite: Suite,
    ack_draws: &Value,
    resp_draws: &Value,
    ack: &[u8],
    resp: &[u8],
) -> (String, String) {
    let draw = |v: &Value, i: usize| -> [u8; 32] {
        hex::decode(v[i].as_str().unwrap()).unwrap().try_into().unwrap()
    };
    let agent_x = x25519_dalek::StaticSecret::from(draw(ack_draws, 0));
    let orch_x = x25519_dalek::StaticSecret::from(draw(resp_draws, 1));
    let ss_x = agent_x.diffie_hellman(&x25519_dalek::PublicKey::from(&orch_x));
    let m = draw(resp_draws, 0).into();
    let ek_at = 8 + 40 + 4 + 1 + 32 + 32;
    let ct_at = 8 + 40 + 1 + 32;
    let (ct, ss_kem): (Vec<u8>, [u8; 32]) = match suite {
        Suite::X25519MlKem1024 => {
            let ek = ml_kem::EncapsulationKey::<ml_kem::MlKem1024>::new(
                ack[ek_at..ek_at + 1568].try_into().unwrap(),
            )
            .unwrap();
            let (ct, ss) = ek.encapsulate_deterministic(&m);
            (ct.to_vec(), ss.into())
        }
        _ => {
            let ek = ml_kem::EncapsulationKey::<ml_kem::MlKem768>::new(
                ack[ek_at..ek_at + 1184].try_into().unwrap(),
            )
            .unwrap();
            let (ct, ss) = ek.encapsulate_deterministic(&m);
            (ct.to_vec(), ss.into())
        }
    };
    assert_eq!(&resp[ct_at..ct_at + ct.len()], &ct[..], "draw order as documented");
    (hx(&ss_kem), hx(ss_x.as_bytes()))
}

fn manifest() -> Value {
    let o = ManifestOrder {
        campaign: CAMPAIGN,
        suite: Suite::X25519MlKem768,
        drill: false,
        issued_at: NOW,
        not_after: NOW + 86_400,
        selector: "env=prod,region=eu-west",
    };
    let bytes = sign_manifest(&o, &signer()).unwrap();
    json!({
        "signing_key_seed": hx(&[0x0d; 32]),
        "verifying_key": hx(signer().verifying_key().as_bytes()),
        "order": { "campaign_id": hx(&o.campaign.0), "suite": 1, "drill": false,
                   "issued_at": o.issued_at, "not_after": o.not_after, "selector": o.selector },
        "message": hx(&bytes), "digest": hx(&manifest_digest(&bytes)),
    })
}

fn status() -> Value {
    let exchange = Exchange { consumer: CONSUMER, campaign: CAMPAIGN, sequence: 1 };
    let psk = SecretKey::from_bytes([0x77; 32]);
    let bytes = seal_status(exchange, 2, &psk, Status::Migrated, 0, NOW + 5, "hooks ok").unwrap();
    json!({ "psk": hx(psk.expose()), "key_id": 2, "status": 2, "reason": 0,
            "reported_at": NOW + 5, "detail": "hooks ok", "message": hx(&bytes) })
}

fn enrollment() -> Value {
    let mut rng = Drbg::new("enrollment");
    let signer = signer();
    let token = EnrollmentToken::generate(&signer.verifying_key(), &mut rng);
    let token_draws = draws(&mut rng);
    let (agent, hello) =
        AgentEnrollment::start(token.clone(), Suite::X25519MlKem768, &mut rng).unwrap();
    let hello_draws = draws(&mut rng);
    let consumer = ConsumerId([0x99; 16]);
    let (orch, accept) = accept_enrollment(&hello, consumer, 1, &signer, &mut rng).unwrap();
    let accept_draws = draws(&mut rng);
    let (confirm, enrolled, _) = agent.confirm(&accept).unwrap();
    let done = orch.finish(&confirm, &token.verifier()).unwrap();
    assert_eq!(done.psk, enrolled.psk);
    json!({
        "token": { "rng_draws": token_draws, "text": token.reveal(), "verifier": hx(&token.verifier()) },
        "signing_key_seed": hx(&[0x0d; 32]),
        "hello": { "rng_draws": hello_draws, "message": hx(&hello) },
        "accept": { "consumer_id": hx(&consumer.0), "key_id": 1,
                    "rng_draws": accept_draws, "message": hx(&accept) },
        "confirm": { "message": hx(&confirm) },
        "psk": hx(enrolled.psk.expose()),
    })
}

fn channel_hello() -> Value {
    let tls = [0xc5; 32];
    let bytes = seal_hello(CONSUMER, 1, &psk(), [0xc4; 16], "pqescape-agent 0.1.0", &tls).unwrap();
    json!({ "psk": hx(psk().expose()), "consumer_id": hx(&CONSUMER.0), "key_id": 1,
            "challenge": hx(&[0xc4; 16]), "agent_version": "pqescape-agent 0.1.0",
            "tls_binding": hx(&tls), "message": hx(&bytes) })
}

fn all_vectors() -> Vec<(&'static str, Value)> {
    vec![
        ("key-schedule.json", key_schedule()),
        ("escape.json", escapes()),
        (
            "handshake.json",
            json!([
                handshake_case("handshake mlkem768 unsigned", false, Suite::X25519MlKem768),
                handshake_case("handshake mlkem768 signed", true, Suite::X25519MlKem768),
                handshake_case("handshake mlkem1024 signed", true, Suite::X25519MlKem1024),
            ]),
        ),
        ("manifest.json", manifest()),
        ("status.json", status()),
        ("channel-hello.json", channel_hello()),
        ("enrollment.json", enrollment()),
    ]
}

fn vector_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/test-vectors")
}

#[test]
fn committed_vectors_match_the_code() {
    let write = std::env::var_os("PQESCAPE_WRITE_VECTORS").is_some();
    for (file, value) in all_vectors() {
        let text = serde_json::to_string_pretty(&value).unwrap() + "\n";
        let path = vector_dir().join(file);
        if write {
            std::fs::write(&path, &text).unwrap();
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_else(|e| {
            panic!("{}: {e}; regenerate with PQESCAPE_WRITE_VECTORS=1", path.display())
        });
        assert!(committed == text, "{file} differs from what the code produces");
    }
}
