//! What the agent does with an escape (protocol.md §8.1): verify it, persist its
//! sequence before acting, acknowledge, complete the handshake, commit the new
//! PSK and suite (not in a drill), and report.

use pqescape_message::agent::{
    AgentHandshake, AgentPolicy, ConsumerView, resume_escape, verify_escape,
};
use pqescape_message::entropy::SystemEntropy;
use pqescape_message::error::Error;
use pqescape_message::message::{Escape, Exchange, Status};
use pqescape_message::report::{REASON_HOOK_FAILED, seal_status};
use pqescape_message::secret::SecretKey;
use pqescape_message::sign::OrchestratorVerifyingKey;
use pqescape_message::types::{CampaignId, ConsumerId, Suite};
use zeroize::Zeroizing;

use crate::hooks::{self, HookSettings, Outcome};
use crate::state::{AgentState, PendingHooks, StateError, StateStore, StoredPsk};

/// Why an escape step failed on the agent.
#[derive(Debug, thiserror::Error)]
pub enum EscapeError {
    /// The message was refused (and a rejection is reported).
    #[error("refused: {0}")]
    Refused(Error),
    /// The state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The state holds something unusable.
    #[error("state: {0}")]
    Corrupt(&'static str),
}

/// What to send back, in order.
pub type Replies = Vec<Vec<u8>>;

/// The agent's side of escapes, across one channel.
pub struct EscapeHandler {
    store: std::sync::Arc<dyn StateStore>,
    handshake: Option<AgentHandshake>,
    /// The escape being answered and the ack sent for it: the same escape again
    /// (a resend that crossed the ack) gets the same ack, not a new handshake.
    answered: Option<(Vec<u8>, Vec<u8>)>,
    /// A migration was committed on this channel: the channel it runs on was
    /// opened under the old suite.
    migrated: bool,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The PSKs of the state, newest first.
pub fn psks(state: &AgentState) -> Result<Vec<(u32, SecretKey)>, EscapeError> {
    let mut keys = Vec::new();
    for p in &state.psks {
        let bytes =
            Zeroizing::new(hex::decode(p.psk.as_str()).map_err(|_| EscapeError::Corrupt("PSK"))?);
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| EscapeError::Corrupt("PSK"))?;
        keys.push((p.key_id, SecretKey::from_bytes(key)));
    }
    keys.sort_by_key(|k| std::cmp::Reverse(k.0));
    Ok(keys)
}

fn consumer_id(state: &AgentState) -> Result<ConsumerId, EscapeError> {
    let bytes = hex::decode(state.consumer_id.replace('-', ""))
        .map_err(|_| EscapeError::Corrupt("consumer id"))?;
    Ok(ConsumerId(bytes.try_into().map_err(|_| EscapeError::Corrupt("consumer id"))?))
}

fn policy(state: &AgentState) -> Result<AgentPolicy, EscapeError> {
    let key = hex::decode(&state.orchestrator_key)
        .map_err(|_| EscapeError::Corrupt("orchestrator key"))?;
    let key = OrchestratorVerifyingKey::from_bytes(&key)
        .map_err(|_| EscapeError::Corrupt("orchestrator key"))?;
    Ok(AgentPolicy { orchestrator_key: Some(key), ..AgentPolicy::default() })
}

impl EscapeHandler {
    /// A handler over the state in `store`.
    pub fn new(store: std::sync::Arc<dyn StateStore>) -> Self {
        Self { store, handshake: None, answered: None, migrated: false }
    }

    /// Whether a migration was committed since this handler was made.
    pub fn migrated(&self) -> bool {
        self.migrated
    }

    fn load(&self) -> Result<AgentState, EscapeError> {
        self.store.load()?.ok_or(EscapeError::Corrupt("not enrolled"))
    }

    /// An escape arrived: verify, persist, acknowledge; or report the refusal.
    pub fn on_escape(&mut self, bytes: &[u8]) -> Result<Replies, EscapeError> {
        if self.handshake.is_some()
            && let Some((escape, ack)) = &self.answered
            && escape.as_slice() == bytes
        {
            tracing::info!("the escape again, while its handshake is open: the same ack again");
            return Ok(vec![ack.clone()]);
        }
        let mut state = self.load()?;
        let keys = psks(&state)?;
        let refs: Vec<(u32, &SecretKey)> = keys.iter().map(|(id, k)| (*id, k)).collect();
        let current_suite = Suite::from_name(&state.suite).unwrap_or(Suite::Classical);
        let consumer = consumer_id(&state)?;
        let view = ConsumerView {
            consumer,
            psks: &refs,
            tls_exporter: None,
            last_sequence: state.last_sequence,
            current_suite,
        };
        let policy = policy(&state)?;
        let resuming = state.pending_escape.as_deref() == Some(hex::encode(bytes).as_str());
        let verified = if resuming {
            resume_escape(bytes, &view, &policy, None, now())
        } else {
            verify_escape(bytes, &view, &policy, None, now())
        };
        let verified = match verified {
            Ok(v) => v,
            Err(e) => return self.rejection(&state, bytes, e),
        };

        // The sequence is on disk before anything answers the escape.
        state.last_sequence = verified.sequence();
        state.pending_escape = Some(hex::encode(bytes));
        self.store.save(&state)?;
        let (handshake, ack) =
            verified.acknowledge(&mut SystemEntropy::new()).map_err(EscapeError::Refused)?;
        tracing::info!(
            sequence = state.last_sequence,
            resumed = resuming,
            "escape accepted; acknowledged"
        );
        self.handshake = Some(handshake);
        self.answered = Some((bytes.to_vec(), ack.clone()));
        Ok(vec![ack])
    }

    fn rejection(
        &self,
        state: &AgentState,
        bytes: &[u8],
        e: Error,
    ) -> Result<Replies, EscapeError> {
        tracing::warn!(error.kind = e.kind(), "escape refused");
        // Report only what can be tied to an exchange; a message that does not even
        // parse is dropped after logging.
        let Ok(escape) = Escape::decode(bytes) else { return Ok(Vec::new()) };
        let exchange = Exchange {
            consumer: escape.consumer,
            campaign: escape.campaign,
            sequence: escape.sequence,
        };
        let keys = psks(state)?;
        let Some((key_id, psk)) = keys.first() else { return Ok(Vec::new()) };
        let report =
            seal_status(exchange, *key_id, psk, Status::Rejected, e.reason_code(), now(), e.kind())
                .map_err(EscapeError::Refused)?;
        Ok(vec![report])
    }

    /// The handshake response arrived: complete, commit, confirm. A drill reports
    /// at once; a migration leaves its hooks pending, and [`Self::run_pending_hooks`]
    /// reports once they have run.
    pub fn on_response(&mut self, bytes: &[u8]) -> Result<Replies, EscapeError> {
        let handshake =
            self.handshake.take().ok_or(EscapeError::Corrupt("no handshake in progress"))?;
        let mut state = self.load()?;
        let policy = policy(&state)?;
        let (finished, context) =
            handshake.complete(bytes, &policy).map_err(EscapeError::Refused)?;
        let exchange = context.exchange;
        state.pending_escape = None;
        let (status, key_id, psk) = if context.drill {
            let keys = psks(&state)?;
            let (key_id, psk) = keys.into_iter().next().ok_or(EscapeError::Corrupt("no PSK"))?;
            (Status::DrillPassed, key_id, psk)
        } else {
            // The new PSK goes first; the previous one stays until the new one is used.
            let newest = state.psks.iter().max_by_key(|p| p.key_id).cloned();
            let fresh = StoredPsk {
                key_id: context.next_key_id,
                psk: Zeroizing::new(hex::encode(context.next_psk().expose())),
            };
            state.psks = std::iter::once(fresh).chain(newest).collect();
            state.suite = context.suite.name().to_owned();
            let ppk_id = format!("pqescape-{}-k{}", state.consumer_id, context.next_key_id);
            let ppk = context.ikev2_ppk(ppk_id.as_bytes()).map_err(EscapeError::Refused)?;
            state.pending_hooks = Some(PendingHooks {
                campaign: hex::encode(exchange.campaign.0),
                sequence: exchange.sequence,
                key_id: context.next_key_id,
                suite: state.suite.clone(),
                ppk_id,
                ppk: Zeroizing::new(hex::encode(ppk.expose())),
                channel_binding: hex::encode(context.channel_binding()),
            });
            (Status::Migrated, context.next_key_id, context.next_psk().clone())
        };
        self.store.save(&state)?;
        tracing::info!(suite = %state.suite, drill = context.drill, "escape complete");
        if status == Status::Migrated {
            self.migrated = true;
            return Ok(vec![finished]);
        }
        let report = seal_status(exchange, key_id, &psk, status, 0, now(), "")
            .map_err(EscapeError::Refused)?;
        Ok(vec![finished, report])
    }

    /// Runs the hooks a committed migration left pending, if any (also after a
    /// restart), clears them, and returns the status report: `migrated`, or
    /// `failed` with the failing hook named.
    pub async fn run_pending_hooks(
        &self,
        settings: &HookSettings,
    ) -> Result<Option<Vec<u8>>, EscapeError> {
        let mut state = self.load()?;
        let Some(pending) = state.pending_hooks.clone() else { return Ok(None) };
        let outcome = hooks::run(settings, &state.consumer_id, &pending).await;
        let campaign: [u8; 16] = hex::decode(&pending.campaign)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or(EscapeError::Corrupt("pending hooks"))?;
        let exchange = Exchange {
            consumer: consumer_id(&state)?,
            campaign: CampaignId(campaign),
            sequence: pending.sequence,
        };
        let (_, psk) = psks(&state)?
            .into_iter()
            .find(|(id, _)| *id == pending.key_id)
            .ok_or(EscapeError::Corrupt("pending hooks: no PSK"))?;
        let (status, reason) = match outcome {
            Outcome::Succeeded { .. } => (Status::Migrated, 0),
            Outcome::Failed { .. } => (Status::Failed, REASON_HOOK_FAILED),
        };
        let report =
            seal_status(exchange, pending.key_id, &psk, status, reason, now(), &outcome.detail())
                .map_err(EscapeError::Refused)?;
        state.pending_hooks = None;
        self.store.save(&state)?;
        Ok(Some(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{MemoryState, STATE_VERSION};
    use pqescape_message::orchestrator::{EscapeOrder, seal_escape};
    use pqescape_message::sign::OrchestratorSigningKey;
    use pqescape_message::types::KeyMode;

    const CONSUMER: [u8; 16] = [0x11; 16];

    fn handler() -> EscapeHandler {
        let key = OrchestratorSigningKey::from_seed(&[1; 32]).verifying_key();
        let state = AgentState {
            version: STATE_VERSION,
            consumer_id: ConsumerId(CONSUMER).to_string(),
            psks: vec![StoredPsk { key_id: 1, psk: Zeroizing::new("07".repeat(32)) }],
            suite: Suite::Classical.name().into(),
            last_sequence: 0,
            orchestrator_key: hex::encode(key.as_bytes()),
            orchestrator: "https://o".into(),
            pending_escape: None,
            pending_hooks: None,
        };
        EscapeHandler::new(std::sync::Arc::new(MemoryState::new(state)))
    }

    fn escape(sequence: u64) -> Vec<u8> {
        let order = EscapeOrder {
            consumer: ConsumerId(CONSUMER),
            campaign: CampaignId([2; 16]),
            key_id: 1,
            sequence,
            suite: Suite::X25519MlKem768,
            issued_at: now(),
            not_after: now() + 600,
            drill: false,
            manifest_digest: None,
            directives: b"",
            encrypt: false,
            mode: KeyMode::DedicatedPsk,
        };
        let psk = SecretKey::from_bytes([7; 32]);
        seal_escape(&order, &psk, &mut rand_core::UnwrapErr(getrandom::SysRng)).unwrap()
    }

    #[test]
    fn the_same_escape_during_its_handshake_gets_the_same_ack() {
        let mut h = handler();
        let first = escape(1);
        let ack = h.on_escape(&first).unwrap();
        assert_eq!(ack.len(), 1);
        // A resend that crossed the ack: the same answer, the handshake kept.
        assert_eq!(h.on_escape(&first).unwrap(), ack);
        assert!(h.handshake.is_some());
        // A different escape is judged on its own (a replay of an older one would
        // be refused; a newer one starts a new handshake).
        let newer = h.on_escape(&escape(2)).unwrap();
        assert_eq!(newer.len(), 1);
        assert_ne!(newer, ack);
    }
}
