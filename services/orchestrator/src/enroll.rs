//! The orchestrator's side of PQ-safe enrollment (protocol.md §8.3), over any
//! transport: a hello in, an accept out; a confirm in, a PSK stored.
//!
//! Between the two, the orchestrator's half of the exchange is sealed into the
//! token's row, so any replica can take the confirm.

use pqescape_message::enrollment::{OrchestratorEnrollment, accept_enrollment};
use pqescape_message::entropy::SystemEntropy;
use pqescape_message::message::EnrollHello;
use pqescape_message::types::ConsumerId;
use serde_json::json;

use crate::Orchestrator;
use crate::clock::now;
use crate::secrets::Purpose;
use crate::store::{NewAuditEntry, SealedPsk};

/// Why an enrollment step failed. Deliberately coarse towards the agent.
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The message does not parse or does not verify.
    #[error("enrollment message refused: {0}")]
    Protocol(pqescape_message::error::Error),
    /// Unknown, expired, used or revoked token.
    #[error("the enrollment token is not valid")]
    Token,
    /// The store failed (logged).
    #[error("internal error")]
    Internal(String),
}

impl EnrollError {
    /// Closed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            EnrollError::Protocol(e) => e.kind(),
            EnrollError::Token => "token",
            EnrollError::Internal(_) => "internal",
        }
    }
}

impl From<crate::store::StoreError> for EnrollError {
    fn from(e: crate::store::StoreError) -> Self {
        EnrollError::Internal(e.to_string())
    }
}

impl From<pqescape_message::error::Error> for EnrollError {
    fn from(e: pqescape_message::error::Error) -> Self {
        EnrollError::Protocol(e)
    }
}

fn consumer_bytes(id: &str) -> Result<ConsumerId, EnrollError> {
    let uuid = uuid::Uuid::parse_str(id).map_err(|e| EnrollError::Internal(e.to_string()))?;
    Ok(ConsumerId(*uuid.as_bytes()))
}

impl Orchestrator {
    /// Answers an enroll hello; returns the accept and the token id naming the session.
    pub async fn enroll_hello(&self, hello: &[u8]) -> Result<(Vec<u8>, String), EnrollError> {
        let token_id = hex::encode(EnrollHello::decode(hello)?.token_id);
        let at = now();
        let token =
            self.store.live_enrollment_token(&token_id, at).await?.ok_or(EnrollError::Token)?;
        let consumer = self.store.consumer(&token.consumer_id).await?.ok_or(EnrollError::Token)?;
        let key_id = consumer.key_id.checked_add(1).ok_or(EnrollError::Token)?;

        let mut rng = SystemEntropy::new();
        let id = consumer_bytes(&consumer.id)?;
        let (state, accept) = accept_enrollment(hello, id, key_id, &self.signer, &mut rng)?;
        let sealed = self.master.seal(Purpose::EnrollmentSession, &token_id, &state.to_bytes());
        self.store.begin_enrollment(&token_id, at, &sealed).await?.ok_or(EnrollError::Token)?;
        Ok((accept, token_id))
    }

    /// Takes the confirm of the session `token_id`; stores the PSK. Returns the consumer id.
    pub async fn enroll_confirm(
        &self,
        token_id: &str,
        confirm: &[u8],
    ) -> Result<String, EnrollError> {
        let at = now();
        let token =
            self.store.live_enrollment_token(token_id, at).await?.ok_or(EnrollError::Token)?;
        let sealed =
            self.store.enrollment_session(token_id, at).await?.ok_or(EnrollError::Token)?;
        let state = self
            .master
            .open(Purpose::EnrollmentSession, token_id, &sealed)
            .map_err(|e| EnrollError::Internal(e.to_string()))?;
        let state = OrchestratorEnrollment::from_bytes(&state)?;
        let verifier: [u8; 32] =
            token.verifier.as_slice().try_into().map_err(|_| EnrollError::Token)?;
        let enrolled = state.finish(confirm, &verifier)?;

        let psk = SealedPsk {
            key_id: enrolled.key_id,
            sealed: self.master.seal(Purpose::Psk, &token.consumer_id, enrolled.psk.expose()),
        };
        if !self.store.complete_enrollment(token_id, &psk, at).await? {
            return Err(EnrollError::Token);
        }
        let entry = NewAuditEntry {
            at,
            actor: format!("agent ({})", token.consumer_id),
            action: "consumer.enroll".into(),
            target: token.consumer_id.clone(),
            detail: json!({ "key_id": enrolled.key_id, "suite": enrolled.suite.name() })
                .to_string(),
        };
        self.store.append_audit(&entry).await?;
        Ok(token.consumer_id)
    }
}
