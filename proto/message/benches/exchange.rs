//! Per-consumer cost of a whole escape on each side (protocol.md §8).
//! `cargo bench -p pqescape-message --bench exchange`
#![allow(missing_docs, clippy::unwrap_used)]

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use pqescape_message::agent::{AgentHandshake, AgentPolicy, ConsumerView, verify_escape};
use pqescape_message::campaign::{ManifestOrder, sign_manifest, verify_manifest};
use pqescape_message::entropy::SystemEntropy;
use pqescape_message::orchestrator::{EscapeOrder, PendingContext, respond, seal_escape};
use pqescape_message::secret::SecretKey;
use pqescape_message::sign::OrchestratorSigningKey;
use pqescape_message::types::{CampaignId, ConsumerId, KeyMode, Suite};

const NOW: u64 = 1_767_225_600;
/// What the services pass: the exchange then runs ML-KEM in aws-lc (kem.rs).
type Rng = SystemEntropy;

fn order() -> EscapeOrder<'static> {
    EscapeOrder {
        consumer: ConsumerId([1; 16]),
        campaign: CampaignId([2; 16]),
        key_id: 1,
        sequence: 1,
        suite: Suite::X25519MlKem768,
        issued_at: NOW,
        not_after: NOW + 3600,
        drill: false,
        manifest_digest: None,
        directives: b"",
        encrypt: false,
        mode: KeyMode::DedicatedPsk,
    }
}

struct Fixture {
    psk: SecretKey,
    policy: AgentPolicy,
}

impl Fixture {
    fn new() -> Self {
        Self { psk: SecretKey::from_bytes([5; 32]), policy: AgentPolicy::default() }
    }

    fn verify(&self, escape: &[u8]) -> pqescape_message::agent::VerifiedEscape {
        let keys = [(1, &self.psk)];
        let view = ConsumerView {
            consumer: ConsumerId([1; 16]),
            psks: &keys,
            tls_exporter: None,
            last_sequence: 0,
            current_suite: Suite::Classical,
        };
        verify_escape(escape, &view, &self.policy, None, NOW).unwrap()
    }

    /// Everything up to the response: (escape, agent state, pending state, response).
    fn until_response(&self, rng: &mut Rng) -> (AgentHandshake, PendingContext, Vec<u8>) {
        let escape = seal_escape(&order(), &self.psk, rng).unwrap();
        let (agent, ack) = self.verify(&escape).acknowledge(rng).unwrap();
        let (pending, response) = respond(&escape, &ack, &self.psk, None, rng).unwrap();
        (agent, pending, response)
    }
}

fn orchestrator(c: &mut Criterion) {
    let f = Fixture::new();
    let mut rng = SystemEntropy::new();
    let escape = seal_escape(&order(), &f.psk, &mut rng).unwrap();
    let (_, ack) = f.verify(&escape).acknowledge(&mut rng).unwrap();
    let mut g = c.benchmark_group("orchestrator per consumer");
    g.bench_function("seal escape", |b| b.iter(|| seal_escape(&order(), &f.psk, &mut rng)));
    g.bench_function("respond to ack", |b| {
        b.iter(|| respond(&escape, &ack, &f.psk, None, &mut rng).unwrap())
    });
    g.bench_function("check finished", |b| {
        b.iter_batched(
            || {
                let (agent, pending, response) = f.until_response(&mut rng);
                (pending, agent.complete(&response, &f.policy).unwrap().0)
            },
            |(pending, finished)| pending.finish(&finished).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn agent(c: &mut Criterion) {
    let f = Fixture::new();
    let mut rng = SystemEntropy::new();
    let escape = seal_escape(&order(), &f.psk, &mut rng).unwrap();
    let mut g = c.benchmark_group("agent per consumer");
    g.bench_function("verify escape", |b| b.iter(|| f.verify(&escape)));
    g.bench_function("acknowledge", |b| {
        b.iter_batched(
            || f.verify(&escape),
            |v| v.acknowledge(&mut rng).unwrap(),
            BatchSize::SmallInput,
        )
    });
    let mut setup_rng = SystemEntropy::new();
    g.bench_function("complete handshake", |b| {
        b.iter_batched(
            || {
                let (agent, _, response) = f.until_response(&mut setup_rng);
                (agent, response)
            },
            |(agent, response)| agent.complete(&response, &f.policy).unwrap(),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

fn whole(c: &mut Criterion) {
    let f = Fixture::new();
    let mut rng = SystemEntropy::new();
    c.bench_function("whole exchange, both sides", |b| {
        b.iter(|| {
            let (agent, pending, response) = f.until_response(&mut rng);
            let (finished, _) = agent.complete(&response, &f.policy).unwrap();
            pending.finish(&finished).unwrap()
        })
    });
    let key = OrchestratorSigningKey::from_seed(&[9; 32]);
    let m = ManifestOrder {
        campaign: CampaignId([2; 16]),
        suite: Suite::X25519MlKem768,
        drill: false,
        issued_at: NOW,
        not_after: NOW + 3600,
        selector: "env=prod",
    };
    let manifest = sign_manifest(&m, &key).unwrap();
    let vk = key.verifying_key();
    c.bench_function("sign manifest (once per campaign)", |b| b.iter(|| sign_manifest(&m, &key)));
    c.bench_function("verify manifest (once per agent)", |b| {
        b.iter(|| verify_manifest(&manifest, &vk, NOW, 0).unwrap())
    });
    let escape = seal_escape(&order(), &f.psk, &mut rng).unwrap();
    let (_, ack) = f.verify(&escape).acknowledge(&mut rng).unwrap();
    c.bench_function("respond to ack, signed (the per-consumer signature avoided)", |b| {
        b.iter(|| respond(&escape, &ack, &f.psk, Some(&key), &mut rng).unwrap())
    });
}

criterion_group!(benches, orchestrator, agent, whole);
criterion_main!(benches);
