//! The agent's whole verification path on arbitrary bytes: must never accept.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pqescape_message::agent::{AgentPolicy, ConsumerView, verify_escape};
use pqescape_message::secret::SecretKey;
use pqescape_message::types::{ConsumerId, Suite};

fuzz_target!(|data: &[u8]| {
    let psk = SecretKey::from_bytes([0x5a; 32]);
    let keys = [(1, &psk)];
    let view = ConsumerView {
        consumer: ConsumerId([0x11; 16]),
        psks: &keys,
        tls_exporter: None,
        last_sequence: 0,
        current_suite: Suite::Classical,
    };
    // Forging a MAC under an unknown key by chance would be a finding in itself.
    assert!(verify_escape(data, &view, &AgentPolicy::default(), None, 1_767_225_600).is_err());
});
