//! Bounded randomized run over every parser entry point (the same ones the fuzz
//! targets in proto/message/fuzz drive): arbitrary bytes, and mutations of valid
//! messages, must yield a value or a typed error, never a panic.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use pqescape_message::campaign::verify_manifest;
use pqescape_message::enrollment::EnrollmentToken;
use pqescape_message::message::*;
use pqescape_message::orchestrator::seal_escape;
use pqescape_message::wire::{MAGIC, VERSION, peek_frame};
use proptest::prelude::*;

fn decode_all(bytes: &[u8]) {
    let _ = peek_frame(bytes);
    let _ = Escape::decode(bytes);
    let _ = Ack::decode(bytes);
    let _ = HandshakeResponse::decode(bytes);
    let _ = Finished::decode(bytes);
    let _ = ChannelHello::decode(bytes);
    let _ = StatusReport::decode(bytes);
    let _ = CampaignManifest::decode(bytes);
    let _ = EnrollHello::decode(bytes);
    let _ = EnrollAccept::decode(bytes);
    let _ = EnrollConfirm::decode(bytes);
    let _ = verify_manifest(bytes, &signer().verifying_key(), NOW, 0);
    if let Ok(text) = std::str::from_utf8(bytes) {
        let _ = EnrollmentToken::parse(text);
    }
}

/// Bytes that get past the header check, so the body parsers are exercised.
fn framed() -> impl Strategy<Value = Vec<u8>> {
    let types = prop::sample::select(vec![1u8, 2, 3, 4, 5, 6, 7, 0x10, 0x11, 0x12]);
    (types, proptest::collection::vec(any::<u8>(), 0..2048)).prop_map(|(ty, body)| {
        let mut v = MAGIC.to_vec();
        v.extend_from_slice(&[VERSION, ty]);
        v.extend_from_slice(&(body.len() as u16).to_be_bytes());
        v.extend_from_slice(&body);
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        decode_all(&bytes);
    }

    #[test]
    fn arbitrary_framed_bodies_never_panic(bytes in framed()) {
        decode_all(&bytes);
    }

    #[test]
    fn mutated_escapes_never_panic(
        edits in proptest::collection::vec((0usize..160, any::<u8>()), 1..8),
        cut in 0usize..160,
    ) {
        let mut bytes = seal_escape(&order(3), &psk(), &mut Drbg::new("mutate")).unwrap();
        for (at, value) in edits {
            let at = at % bytes.len();
            bytes[at] = value;
        }
        bytes.truncate(cut.max(1));
        decode_all(&bytes);
    }
}
