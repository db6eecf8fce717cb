//! The whole exchange of protocol.md §8 between the two state machines.

#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use pqescape_message::agent::{resume_escape, verify_escape};
use pqescape_message::error::{Error, Rejection};
use pqescape_message::orchestrator::{respond, seal_escape};

#[test]
fn escape_ack_response_finished_yield_the_same_context_on_both_sides() {
    let mut rng = Drbg::new("handshake");
    let psk = psk();
    let escape = seal_escape(&order(1), &psk, &mut rng).unwrap();
    assert_eq!(escape.len(), 120, "compact profile size");

    let verified = verify_escape(&escape, &view(&[(1, &psk)], 0), &policy(), None, NOW).unwrap();
    assert_eq!(verified.sequence(), 1);
    let (agent, ack) = verified.acknowledge(&mut rng).unwrap();
    let (pending, response) = respond(&escape, &ack, &psk, Some(&signer()), &mut rng).unwrap();
    let (finished, agent_ctx) = agent.complete(&response, &policy()).unwrap();
    let orch_ctx = pending.finish(&finished).unwrap();

    assert_eq!(agent_ctx.next_psk(), orch_ctx.next_psk());
    assert_eq!(agent_ctx.channel_binding(), orch_ctx.channel_binding());
    assert_eq!(agent_ctx.next_key_id, 2);
    assert_ne!(agent_ctx.next_psk(), &psk);
}

#[test]
fn a_replayed_escape_is_refused_and_a_resumed_one_is_not() {
    let mut rng = Drbg::new("replay");
    let psk = psk();
    let escape = seal_escape(&order(7), &psk, &mut rng).unwrap();
    let keys = [(1, &psk)];
    let replay = verify_escape(&escape, &view(&keys, 7), &policy(), None, NOW);
    assert_eq!(replay.unwrap_err(), Error::Rejected(Rejection::Replay));
    assert!(resume_escape(&escape, &view(&keys, 7), &policy(), None, NOW).is_ok());
}

#[test]
fn an_escape_under_another_psk_fails_integrity_opaquely() {
    let mut rng = Drbg::new("forgery");
    let escape = seal_escape(&order(1), &psk(), &mut rng).unwrap();
    let other = pqescape_message::secret::SecretKey::from_bytes([1; 32]);
    let err = verify_escape(&escape, &view(&[(1, &other)], 0), &policy(), None, NOW);
    assert_eq!(err.unwrap_err(), Error::Integrity);
}

#[test]
fn a_restarted_orchestrator_still_checks_the_finished_message() {
    use pqescape_message::orchestrator::PendingContext;
    let mut rng = Drbg::new("restart");
    let psk = psk();
    let escape = seal_escape(&order(1), &psk, &mut rng).unwrap();
    let verified = verify_escape(&escape, &view(&[(1, &psk)], 0), &policy(), None, NOW).unwrap();
    let (agent, ack) = verified.acknowledge(&mut rng).unwrap();
    let (pending, response) = respond(&escape, &ack, &psk, None, &mut rng).unwrap();
    let saved = pending.to_bytes();
    drop(pending);

    let (finished, agent_ctx) = agent.complete(&response, &policy()).unwrap();
    let restored = PendingContext::from_bytes(&saved).unwrap();
    let orch_ctx = restored.finish(&finished).unwrap();
    assert_eq!(agent_ctx.next_psk(), orch_ctx.next_psk());
    assert!(PendingContext::from_bytes(&saved[1..]).is_err());
}

#[test]
fn a_forged_ack_is_an_integrity_failure_whatever_it_claims() {
    let mut rng = Drbg::new("forged ack");
    let psk = psk();
    let escape = seal_escape(&order(1), &psk, &mut rng).unwrap();
    let verified = verify_escape(&escape, &view(&[(1, &psk)], 0), &policy(), None, NOW).unwrap();
    let (_, mut ack) = verified.acknowledge(&mut rng).unwrap();
    ack[8] ^= 0xff; // the consumer id
    assert_eq!(respond(&escape, &ack, &psk, None, &mut rng).unwrap_err(), Error::Integrity);
}

#[test]
fn sequence_zero_cannot_be_sealed() {
    let err = seal_escape(&order(0), &psk(), &mut Drbg::new("zero")).unwrap_err();
    assert_eq!(err.kind(), "misuse");
}

#[test]
fn either_side_may_run_either_ml_kem_and_both_agree() {
    use pqescape_message::entropy::SystemEntropy;
    use pqescape_message::types::Suite;
    // The services pass SystemEntropy (aws-lc's ML-KEM); the vectors pass a seeded
    // generator (RustCrypto's). Every pairing must yield one context.
    for suite in [Suite::X25519MlKem768, Suite::X25519MlKem1024] {
        for (agent_system, orchestrator_system) in
            [(true, true), (true, false), (false, true), (false, false)]
        {
            let mut seeded = Drbg::new("both implementations");
            let psk = psk();
            let mut order = order(1);
            order.suite = suite;
            let escape = seal_escape(&order, &psk, &mut seeded).unwrap();
            let verified =
                verify_escape(&escape, &view(&[(1, &psk)], 0), &policy(), None, NOW).unwrap();
            let (agent, ack) = if agent_system {
                verified.acknowledge(&mut SystemEntropy::new()).unwrap()
            } else {
                verified.acknowledge(&mut seeded).unwrap()
            };
            let (pending, response) = if orchestrator_system {
                respond(&escape, &ack, &psk, None, &mut SystemEntropy::new()).unwrap()
            } else {
                respond(&escape, &ack, &psk, None, &mut seeded).unwrap()
            };
            let (finished, agent_ctx) = agent.complete(&response, &policy()).unwrap();
            let orch_ctx = pending.finish(&finished).unwrap();
            let case = format!(
                "{suite:?}, agent system {agent_system}, orchestrator system {orchestrator_system}"
            );
            assert_eq!(agent_ctx.next_psk(), orch_ctx.next_psk(), "{case}");
            assert_ne!(agent_ctx.next_psk(), &psk, "{case}");
        }
    }
}

#[test]
fn system_entropy_gives_fresh_shares_every_time() {
    use pqescape_message::entropy::SystemEntropy;
    let psk = psk();
    let escape = seal_escape(&order(1), &psk, &mut Drbg::new("fresh")).unwrap();
    let ack = || {
        let verified =
            verify_escape(&escape, &view(&[(1, &psk)], 0), &policy(), None, NOW).unwrap();
        verified.acknowledge(&mut SystemEntropy::new()).unwrap().1
    };
    assert_ne!(ack(), ack(), "two acknowledgements of one escape share no key material");
}
