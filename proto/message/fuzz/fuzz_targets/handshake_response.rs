//! The agent's handshake completion on arbitrary response bytes: must never accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pqescape_message::agent::{AgentPolicy, ConsumerView, verify_escape};
use pqescape_message::orchestrator::{EscapeOrder, seal_escape};
use pqescape_message::secret::SecretKey;
use pqescape_message::types::{CampaignId, ConsumerId, KeyMode, Suite};

/// A fixed, not secret, byte source: the fuzzer is after parsing bugs, not keys.
struct Counter(u8);

impl rand_core::TryRng for Counter {
    type Error = core::convert::Infallible;
    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(u32::from(self.next()))
    }
    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(u64::from(self.next()))
    }
    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        dst.iter_mut().for_each(|b| *b = self.next());
        Ok(())
    }
}

impl rand_core::TryCryptoRng for Counter {}

impl Counter {
    fn next(&mut self) -> u8 {
        self.0 = self.0.wrapping_mul(31).wrapping_add(7);
        self.0
    }
}

fuzz_target!(|data: &[u8]| {
    let psk = SecretKey::from_bytes([0x5a; 32]);
    let consumer = ConsumerId([0x11; 16]);
    let now = 1_767_225_600;
    let order = EscapeOrder {
        consumer,
        campaign: CampaignId([0x22; 16]),
        key_id: 1,
        sequence: 1,
        suite: Suite::X25519MlKem768,
        issued_at: now,
        not_after: now + 60,
        drill: false,
        manifest_digest: None,
        directives: b"",
        encrypt: false,
        mode: KeyMode::DedicatedPsk,
    };
    let mut rng = Counter(1);
    let Ok(escape) = seal_escape(&order, &psk, &mut rng) else { return };
    let keys = [(1, &psk)];
    let view = ConsumerView {
        consumer,
        psks: &keys,
        tls_exporter: None,
        last_sequence: 0,
        current_suite: Suite::Classical,
    };
    let policy = AgentPolicy::default();
    let Ok(verified) = verify_escape(&escape, &view, &policy, None, now) else { return };
    let Ok((agent, _ack)) = verified.acknowledge(&mut rng) else { return };
    assert!(agent.complete(data, &policy).is_err());
});
