//! The agent's whole verification path on arbitrary bytes.
//!
//! Run twice per input: under the PSK of the published vectors (so that seeds from
//! docs/test-vectors are authentic and the fuzzer reaches the checks after the
//! MAC), and under a PSK nobody has used, where nothing may ever be accepted.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pqescape_message::agent::{AgentPolicy, ConsumerView, verify_escape};
use pqescape_message::secret::SecretKey;
use pqescape_message::types::{ConsumerId, Suite};

const NOW: u64 = 1_767_225_600;

fn verify(data: &[u8], psk: &SecretKey, last_sequence: u64) -> bool {
    let keys = [(1, psk)];
    let view = ConsumerView {
        consumer: ConsumerId([0x11; 16]),
        psks: &keys,
        tls_exporter: None,
        last_sequence,
        current_suite: Suite::Classical,
    };
    verify_escape(data, &view, &AgentPolicy::default(), None, NOW).is_ok()
}

fuzz_target!(|data: &[u8]| {
    verify(data, &SecretKey::from_bytes([0x5a; 32]), 0);
    // Forging a MAC under an unknown key by chance would be a finding in itself.
    assert!(!verify(data, &SecretKey::from_bytes([0xa5; 32]), 0));
});
