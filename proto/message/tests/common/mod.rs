//! Shared test fixtures: a reproducible DRBG and a ready-made consumer.
#![allow(dead_code, clippy::unwrap_used, clippy::indexing_slicing)]

use pqescape_message::agent::{AgentPolicy, ConsumerView};
use pqescape_message::orchestrator::EscapeOrder;
use pqescape_message::secret::SecretKey;
use pqescape_message::sign::OrchestratorSigningKey;
use pqescape_message::types::{CampaignId, ConsumerId, KeyMode, Suite};
use rand_core::{Infallible, TryCryptoRng, TryRng};
use sha2::{Digest, Sha256};

/// Deterministic generator for tests and vectors (docs/test-vectors/README.md):
/// block i is SHA-256("pqescape test drbg" || seed || i as u64 big-endian).
/// Every draw is recorded so that vectors can list them.
pub struct Drbg {
    seed: [u8; 32],
    counter: u64,
    buffer: Vec<u8>,
    pub draws: Vec<Vec<u8>>,
}

impl Drbg {
    pub fn new(label: &str) -> Self {
        let seed = Sha256::digest(label.as_bytes()).into();
        Self { seed, counter: 0, buffer: Vec::new(), draws: Vec::new() }
    }

    fn refill(&mut self) {
        let mut h = Sha256::new();
        h.update(b"pqescape test drbg");
        h.update(self.seed);
        h.update(self.counter.to_be_bytes());
        self.counter += 1;
        self.buffer.extend_from_slice(&h.finalize());
    }
}

impl TryRng for Drbg {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        while self.buffer.len() < dst.len() {
            self.refill();
        }
        let rest = self.buffer.split_off(dst.len());
        dst.copy_from_slice(&self.buffer);
        self.draws.push(self.buffer.clone());
        self.buffer = rest;
        Ok(())
    }
}

impl TryCryptoRng for Drbg {}

pub const NOW: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z
pub const CONSUMER: ConsumerId = ConsumerId([0x11; 16]);
pub const CAMPAIGN: CampaignId = CampaignId([0x22; 16]);

pub fn psk() -> SecretKey {
    SecretKey::from_bytes([0x5a; 32])
}

pub fn signer() -> OrchestratorSigningKey {
    OrchestratorSigningKey::from_seed(&[0x0d; 32])
}

pub fn order(sequence: u64) -> EscapeOrder<'static> {
    EscapeOrder {
        consumer: CONSUMER,
        campaign: CAMPAIGN,
        key_id: 1,
        sequence,
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

pub fn view<'a>(psks: &'a [(u32, &'a SecretKey)], last_sequence: u64) -> ConsumerView<'a> {
    ConsumerView {
        consumer: CONSUMER,
        psks,
        tls_exporter: None,
        last_sequence,
        current_suite: Suite::Classical,
    }
}

pub fn policy() -> AgentPolicy {
    AgentPolicy { orchestrator_key: Some(signer().verifying_key()), ..AgentPolicy::default() }
}
