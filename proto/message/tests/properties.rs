//! Property tests of protocol.md §9: every message round-trips, and any single
//! bit flip, truncation, extension or reordering of an authentic message is
//! refused without touching the receiver's state.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use pqescape_message::agent::{AgentHandshake, verify_escape};
use pqescape_message::error::{Error, Malformed, Rejection};
use pqescape_message::freshness::DEFAULT_CLOCK_SKEW_SECS;
use pqescape_message::message::Escape;
use pqescape_message::orchestrator::{EscapeOrder, PendingContext, respond, seal_escape};
use pqescape_message::types::Suite;
use proptest::prelude::*;

fn sealed(o: &EscapeOrder<'_>, seed: &str) -> Vec<u8> {
    seal_escape(o, &psk(), &mut Drbg::new(seed)).unwrap()
}

/// Verifies `bytes` against a consumer whose last sequence is `last`.
fn verify_at(bytes: &[u8], last: u64, now: u64) -> Result<u64, Error> {
    let psk = psk();
    let keys = [(1, &psk)];
    verify_escape(bytes, &view(&keys, last), &policy(), None, now).map(|v| v.sequence())
}

/// A full exchange up to the point where each side holds its pending state.
fn exchange(seed: &str) -> (Vec<u8>, Vec<u8>, Vec<u8>, AgentHandshake, PendingContext) {
    let mut rng = Drbg::new(seed);
    let psk = psk();
    let escape = seal_escape(&order(1), &psk, &mut rng).unwrap();
    let verified = verify_escape(&escape, &view(&[(1, &psk)], 0), &policy(), None, NOW).unwrap();
    let (agent, ack) = verified.acknowledge(&mut rng).unwrap();
    let (pending, response) = respond(&escape, &ack, &psk, Some(&signer()), &mut rng).unwrap();
    (escape, ack, response, agent, pending)
}

fn arb_order() -> impl Strategy<Value = (u64, u64, u64, bool, bool, bool, Vec<u8>)> {
    (
        1..u64::MAX,
        0..u64::MAX / 2,
        1..86_400u64,
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..=512),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn escapes_round_trip((seq, t0, span, drill, encrypt, bound, dirs) in arb_order()) {
        let o = EscapeOrder {
            sequence: seq, issued_at: t0, not_after: t0 + span, drill, encrypt,
            manifest_digest: bound.then_some([7; 32]), directives: &dirs,
            suite: if drill { Suite::X25519MlKem1024 } else { Suite::X25519MlKem768 },
            ..order(seq)
        };
        let bytes = sealed(&o, "round trip");
        let decoded = Escape::decode(&bytes).unwrap();
        prop_assert_eq!(decoded.encode().unwrap(), bytes.clone());
        prop_assert_eq!(decoded.sequence, seq);
        prop_assert_eq!(decoded.flags.drill, drill);
        let psk = psk();
        let keys = [(1, &psk)];
        let v = verify_escape(&bytes, &view(&keys, seq - 1), &policy(), None, t0).unwrap();
        prop_assert_eq!(v.directives(), &dirs[..]);
    }

    #[test]
    fn any_bit_flip_in_an_escape_is_refused(bit in 0usize..120 * 8) {
        let mut bytes = sealed(&order(5), "bit flip");
        bytes[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(verify_at(&bytes, 4, NOW).is_err());
        // The consumer's state is untouched: the authentic escape still verifies.
        prop_assert_eq!(verify_at(&sealed(&order(5), "bit flip"), 4, NOW), Ok(5));
    }

    #[test]
    fn truncation_is_incomplete_and_extension_is_malformed(
        cut in 0usize..120,
        extra in proptest::collection::vec(any::<u8>(), 1..64),
    ) {
        let bytes = sealed(&order(1), "truncate");
        let short = verify_at(&bytes[..cut], 0, NOW).unwrap_err();
        prop_assert!(matches!(short, Error::Incomplete { .. }), "{short:?}");
        let mut long = bytes.clone();
        long.extend_from_slice(&extra);
        prop_assert_eq!(verify_at(&long, 0, NOW), Err(Error::Malformed(Malformed::TrailingBytes)));
    }

    #[test]
    fn swapping_two_different_bytes_is_refused(a in 0usize..120, b in 0usize..120) {
        let mut bytes = sealed(&order(1), "reorder");
        prop_assume!(bytes[a] != bytes[b]);
        bytes.swap(a, b);
        prop_assert!(verify_at(&bytes, 0, NOW).is_err());
    }

    #[test]
    fn replayed_and_stale_escapes_are_refused(last in 1u64..1_000, late in 1u64..1_000_000) {
        let bytes = sealed(&order(last), "replay");
        prop_assert_eq!(verify_at(&bytes, last, NOW), Err(Error::Rejected(Rejection::Replay)));
        let after = NOW + 3600 + DEFAULT_CLOCK_SKEW_SECS + late;
        prop_assert_eq!(verify_at(&bytes, last - 1, after), Err(Error::Rejected(Rejection::Expired)));
        prop_assert_eq!(verify_at(&bytes, last - 1, NOW), Ok(last));
    }
}

proptest! {
    // Each case runs a full hybrid handshake; fewer cases keep the suite quick.
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn any_bit_flip_in_an_ack_is_refused(bit in 0usize..1333 * 8) {
        let (escape, mut ack, ..) = exchange("ack flip");
        ack[bit / 8] ^= 1 << (bit % 8);
        let result = respond(&escape, &ack, &psk(), None, &mut Drbg::new("x"));
        prop_assert!(result.is_err());
    }

    #[test]
    fn any_bit_flip_in_a_response_is_refused(bit in 0usize..4512 * 8) {
        let (_, _, mut response, agent, _) = exchange("response flip");
        response[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(agent.complete(&response, &policy()).is_err());
    }

    #[test]
    fn any_bit_flip_in_a_finished_is_refused(bit in 0usize..80 * 8) {
        let (_, _, response, agent, pending) = exchange("finished flip");
        let (mut finished, _) = agent.complete(&response, &policy()).unwrap();
        finished[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(pending.finish(&finished).is_err());
    }
}
