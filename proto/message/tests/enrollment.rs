//! PQ-safe enrollment (protocol.md §8.3).
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

mod common;

use common::*;
use pqescape_message::enrollment::{AgentEnrollment, EnrollmentToken, accept_enrollment};
use pqescape_message::error::{Error, Malformed, Rejection};
use pqescape_message::sign::OrchestratorSigningKey;
use pqescape_message::types::{ConsumerId, Suite};

const CONSUMER_ID: ConsumerId = ConsumerId([0x99; 16]);

#[test]
fn both_sides_agree_on_the_psk_and_the_agent_learns_the_pinned_key() {
    let mut rng = Drbg::new("enroll ok");
    let token = EnrollmentToken::generate(&signer().verifying_key(), &mut rng);
    let (agent, hello) =
        AgentEnrollment::start(token.clone(), Suite::X25519MlKem768, &mut rng).unwrap();
    let (orch, accept) = accept_enrollment(&hello, CONSUMER_ID, 1, &signer(), &mut rng).unwrap();
    let (confirm, agent_side, pinned) = agent.confirm(&accept).unwrap();
    // The orchestrator's half survives a trip through storage (another replica finishes).
    let saved = orch.to_bytes();
    let orch = pqescape_message::enrollment::OrchestratorEnrollment::from_bytes(&saved).unwrap();
    let orch_side = orch.finish(&confirm, &token.verifier()).unwrap();
    assert_eq!(agent_side.psk, orch_side.psk);
    assert_eq!((orch_side.consumer, orch_side.key_id), (CONSUMER_ID, 1));
    assert_eq!(pinned, signer().verifying_key());
}

#[test]
fn an_orchestrator_with_another_key_is_refused_by_the_pin() {
    let mut rng = Drbg::new("enroll pin");
    let token = EnrollmentToken::generate(&signer().verifying_key(), &mut rng);
    let (agent, hello) = AgentEnrollment::start(token, Suite::X25519MlKem768, &mut rng).unwrap();
    let impostor = OrchestratorSigningKey::from_seed(&[0x66; 32]);
    let (_, accept) = accept_enrollment(&hello, CONSUMER_ID, 1, &impostor, &mut rng).unwrap();
    assert_eq!(
        agent.confirm(&accept).map(|_| ()),
        Err(Error::Rejected(Rejection::UntrustedSigner))
    );
}

#[test]
fn a_wrong_token_secret_fails_opaquely_at_the_orchestrator() {
    let mut rng = Drbg::new("enroll secret");
    let token = EnrollmentToken::generate(&signer().verifying_key(), &mut rng);
    let other = EnrollmentToken::generate(&signer().verifying_key(), &mut rng);
    let (agent, hello) = AgentEnrollment::start(token, Suite::X25519MlKem1024, &mut rng).unwrap();
    let (orch, accept) = accept_enrollment(&hello, CONSUMER_ID, 1, &signer(), &mut rng).unwrap();
    let (confirm, _, _) = agent.confirm(&accept).unwrap();
    assert_eq!(orch.finish(&confirm, &other.verifier()).map(|_| ()), Err(Error::Integrity));
}

#[test]
fn tokens_round_trip_as_text_and_bad_text_is_malformed() {
    let token = EnrollmentToken::generate(&signer().verifying_key(), &mut Drbg::new("text"));
    let text = token.reveal();
    let parsed = EnrollmentToken::parse(&text).unwrap();
    assert_eq!(parsed.verifier(), token.verifier());
    assert!(!format!("{token:?}").contains(&text[40..80]), "Debug must not show the secret");
    let bad = Err(Error::Malformed(Malformed::InvalidToken));
    for t in ["", "pqe1.", &text[..text.len() - 1], &text.replace('.', ":"), &format!("{text}.00")]
    {
        assert_eq!(EnrollmentToken::parse(t).map(|_| ()), bad, "{t}");
    }
}
