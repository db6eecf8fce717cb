//! The campaign engine: turns a fired campaign into escapes delivered, answered
//! and confirmed, one persisted state per step (docs/architecture.md).
//!
//! Each replica serves the agents connected to it: it sends their open delivery
//! when they attach and on every sweep, and handles what they send back. The
//! sweep also opens waves, pauses a campaign whose failures pass its threshold,
//! expires deliveries past the deadline and completes finished campaigns.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use pqescape_message::context::NewContext;
use pqescape_message::entropy::SystemEntropy;
use pqescape_message::error::Rejection;
use pqescape_message::message::{Ack, Finished, Status, StatusReport};
use pqescape_message::orchestrator::{EscapeOrder, PendingContext, respond, seal_escape};
use pqescape_message::report::{REASON_HOOK_FAILED, verify_status};
use pqescape_message::secret::SecretKey;
use pqescape_message::types::{CampaignId, ConsumerId, KeyMode};
use pqescape_message::wire::{MessageType, peek_frame};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::Orchestrator;
use crate::campaign::{Campaign, CampaignState};
use crate::campaigns::wave_size;
use crate::clock::{now, now_ms};
use crate::delivery::{Delivery, DeliveryState as D, DeliveryTally, Migration, first_wait};
use crate::domain::ConsumerState;
use crate::gateway::pb;
use crate::secrets::Purpose;
use crate::store::{ConsumerQuery, DISPATCH_CHUNK, Dispatch, NewAuditEntry, StoreError};
use crate::tally::Counted;

/// Interval between sweeps.
pub const SWEEP: Duration = Duration::from_millis(500);
/// Most deliveries one dispatch query reads; a dispatch reads page after page.
pub const DISPATCH_PAGE: u32 = 5_000;
/// How often heartbeats are written to the store, all in one batch.
pub const LAST_SEEN_FLUSH: Duration = Duration::from_secs(30);

/// Why the engine could not act on something. Logged and counted, never fatal.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A message from an agent was refused.
    #[error("message refused: {0}")]
    Refused(pqescape_message::error::Error),
    /// A message that matches no open delivery (late, duplicate or foreign).
    #[error("no open delivery for this message")]
    NoDelivery,
    /// A sealed value did not open.
    #[error("sealed state did not open")]
    Sealed,
}

impl From<pqescape_message::error::Error> for EngineError {
    fn from(e: pqescape_message::error::Error) -> Self {
        EngineError::Refused(e)
    }
}

impl EngineError {
    /// Closed label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            EngineError::Store(_) => "store",
            EngineError::Refused(e) => e.kind(),
            EngineError::NoDelivery => "no_delivery",
            EngineError::Sealed => "sealed",
        }
    }
}

/// A campaign's id as the store names it, from its 16 bytes on the wire.
fn campaign_id_of(campaign: [u8; 16]) -> String {
    uuid::Uuid::from_bytes(campaign).to_string()
}

fn uuid_bytes(id: &str) -> [u8; 16] {
    uuid::Uuid::parse_str(id).map(|u| *u.as_bytes()).unwrap_or([0; 16])
}

/// What an agent that attaches is owed (see [`Orchestrator::owed_on_attach`]).
#[derive(Debug)]
pub enum Owed {
    /// No open delivery for it.
    Nothing,
    /// An escape sent before, to send again on the new channel.
    Resend(pb::GatewayFrame),
    /// A pending delivery: the next sweep sends it once the channel is registered.
    Pending,
}

/// The pending context this replica stored for a consumer's acknowledgement, sealed
/// as in the store: the finished message that follows is checked against it without
/// a read, and committed only if the store still holds the same (recent.rs).
pub struct Answered {
    campaign_id: String,
    sequence: u64,
    sealed: Vec<u8>,
}

fn frame(bytes: Vec<u8>) -> pb::GatewayFrame {
    pb::GatewayFrame { frame: Some(pb::gateway_frame::Frame::Message(bytes)) }
}

impl Orchestrator {
    /// Creates a fired campaign's deliveries: its targets now, in id order, each
    /// assigned to the first wave whose cumulative share covers its position.
    pub async fn materialize(&self, c: &Campaign) -> Result<u64, StoreError> {
        let mut q = ConsumerQuery {
            selector: c.spec.selector.clone(),
            state: Some(ConsumerState::Enrolled),
            exclude_suite: Some(c.spec.target_suite.name().to_owned()),
            limit: 500,
            ..ConsumerQuery::default()
        };
        let mut ids = Vec::new();
        loop {
            let page = self.store.list_consumers(&q).await?;
            ids.extend(page.items.into_iter().map(|c| c.id));
            match page.next {
                Some(next) => q.after = Some(next),
                None => break,
            }
        }
        let total = ids.len() as u64;
        let targets: Vec<(String, u32)> = ids
            .into_iter()
            .enumerate()
            .map(|(position, id)| {
                let wave =
                    c.spec.waves.iter().position(|&p| (position as u64) < wave_size(total, p));
                (id, u32::try_from(wave.unwrap_or(0)).unwrap_or(0))
            })
            .collect();
        self.store.create_deliveries(&c.id, &targets, now()).await
    }

    /// What `consumer`, attaching now, is owed: the escape of an open delivery
    /// already sent, again (the agent resumes it), or word that a pending one
    /// waits. A pending escape is never sealed here: it goes out through
    /// [`Self::sweep`], which keeps the campaign's in-flight cap, so a fleet
    /// reconnecting after a restart cannot overrun it.
    pub async fn owed_on_attach(&self, consumer: &str) -> Result<Owed, EngineError> {
        let Some(d) = self.store.open_delivery_for(consumer).await? else {
            return Ok(Owed::Nothing);
        };
        Ok(match (d.state, d.escape) {
            (D::Pending, _) => Owed::Pending,
            (_, Some(escape)) => Owed::Resend(frame(escape)),
            (_, None) => Owed::Nothing,
        })
    }

    fn open_psk(&self, consumer: &str, sealed: &[u8]) -> Result<SecretKey, EngineError> {
        let psk =
            self.master.open32(Purpose::Psk, consumer, sealed).map_err(|_| EngineError::Sealed)?;
        Ok(SecretKey::from_bytes(*psk))
    }

    /// Handles one protocol message from `consumer`'s channel.
    pub async fn on_agent_message(&self, consumer: &str, bytes: &[u8]) -> Result<(), EngineError> {
        match peek_frame(bytes)?.0 {
            MessageType::Ack => self.on_ack(consumer, bytes).await,
            MessageType::Finished => self.on_finished(consumer, bytes).await,
            MessageType::StatusReport => self.on_status(consumer, bytes).await,
            _ => Err(EngineError::NoDelivery),
        }
    }

    async fn delivery_for(
        &self,
        consumer: &str,
        campaign: [u8; 16],
        sequence: u64,
    ) -> Result<Delivery, EngineError> {
        let campaign_id = campaign_id_of(campaign);
        let d =
            self.store.delivery(&campaign_id, consumer).await?.ok_or(EngineError::NoDelivery)?;
        if d.sequence != sequence {
            return Err(EngineError::NoDelivery);
        }
        Ok(d)
    }

    /// Whether campaign `id` signs its handshake responses (read once per campaign).
    async fn signs_handshakes(&self, id: &str) -> Result<bool, EngineError> {
        let cached = |o: &Self| {
            let map = o.signs_handshakes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            map.get(id).copied()
        };
        if let Some(signs) = cached(self) {
            return Ok(signs);
        }
        let c = self.store.campaign(id).await?.ok_or(EngineError::NoDelivery)?;
        let mut map =
            self.signs_handshakes.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        map.insert(c.id, c.spec.sign_handshakes);
        Ok(c.spec.sign_handshakes)
    }

    async fn on_ack(&self, consumer: &str, bytes: &[u8]) -> Result<(), EngineError> {
        let ack = Ack::decode(bytes)?;
        let campaign_id = campaign_id_of(ack.exchange.campaign.0);
        let (d, sealed) = self
            .store
            .delivery_with_psk(&campaign_id, consumer)
            .await?
            .filter(|(d, _)| d.sequence == ack.exchange.sequence)
            .ok_or(EngineError::NoDelivery)?;
        let escape = d
            .escape
            .clone()
            .filter(|_| matches!(d.state, D::Sent | D::Acknowledged | D::Negotiating));
        let escape = escape.ok_or(EngineError::NoDelivery)?;
        // The same ack again (the agent answered a resend that crossed its ack) has
        // its response on the way; answering it anew would replace the pending
        // context the agent is finishing against.
        if d.state == D::Negotiating
            && let Some(sealed) = &d.pending_sealed
            && self.open_pending(&d.campaign_id, consumer, sealed)?.0
                == Sha256::digest(bytes).as_slice()
        {
            metrics::counter!("pqescape_duplicate_acks_total").increment(1);
            return Ok(());
        }
        let sealed = sealed.ok_or(EngineError::NoDelivery)?;
        let psk = self.open_psk(consumer, &sealed.sealed)?;
        let signer = self.signs_handshakes(&d.campaign_id).await?.then_some(&self.signer);
        let (pending, response) = respond(&escape, bytes, &psk, signer, &mut SystemEntropy::new())?;

        // The acknowledgement and the pending context are stored in one write, before
        // the response goes: one row version per step is what a large campaign's
        // store cost is made of (docs/performance.md).
        let sealed_pending = self.seal_pending(&d.campaign_id, consumer, bytes, &pending);
        let open = [D::Sent, D::Acknowledged, D::Negotiating];
        if !self
            .store
            .update_delivery(
                &d.campaign_id,
                consumer,
                &open,
                D::Negotiating,
                None,
                None,
                Some(&sealed_pending),
                now(),
            )
            .await?
        {
            return Err(EngineError::NoDelivery);
        }
        let answered =
            Answered { campaign_id: d.campaign_id, sequence: d.sequence, sealed: sealed_pending };
        self.answered.put(consumer, answered);
        self.connections.send(consumer, frame(response));
        Ok(())
    }

    /// Seals the pending context of `consumer`'s delivery in `campaign` for the
    /// store, after the SHA-256 of the ack it answers.
    fn seal_pending(
        &self,
        campaign: &str,
        consumer: &str,
        ack: &[u8],
        pending: &PendingContext,
    ) -> Vec<u8> {
        let mut plain = Sha256::digest(ack).to_vec();
        plain.extend_from_slice(&pending.to_bytes());
        self.master.seal(Purpose::PendingContext, &pending_row(campaign, consumer), &plain)
    }

    /// Opens what [`Self::seal_pending`] stored: the ack's digest and the context.
    fn open_pending(
        &self,
        campaign: &str,
        consumer: &str,
        sealed: &[u8],
    ) -> Result<([u8; 32], PendingContext), EngineError> {
        let plain = self
            .master
            .open(Purpose::PendingContext, &pending_row(campaign, consumer), sealed)
            .map_err(|_| EngineError::Sealed)?;
        let (digest, context) = plain.split_at_checked(32).ok_or(EngineError::Sealed)?;
        let digest: [u8; 32] = digest.try_into().map_err(|_| EngineError::Sealed)?;
        Ok((digest, PendingContext::from_bytes(context)?))
    }

    async fn on_finished(&self, consumer: &str, bytes: &[u8]) -> Result<(), EngineError> {
        let finished = Finished::decode(bytes)?;
        let exchange = &finished.exchange;
        // The context this replica answered with, if it did: no read. Anything else
        // (another replica answered, the store holds a newer one) takes the store's.
        if let Some(a) = self.answered.take(consumer)
            && a.sequence == exchange.sequence
            && uuid_bytes(&a.campaign_id) == exchange.campaign.0
            && let Ok((_, pending)) = self.open_pending(&a.campaign_id, consumer, &a.sealed)
            && let Ok(context) = pending.finish(bytes)
            && self.finish(consumer, &a.campaign_id, &a.sealed, &context).await?
        {
            return Ok(());
        }
        let d = self.delivery_for(consumer, exchange.campaign.0, exchange.sequence).await?;
        let sealed = d
            .pending_sealed
            .as_ref()
            .filter(|_| d.state == D::Negotiating)
            .ok_or(EngineError::NoDelivery)?;
        let context = self.open_pending(&d.campaign_id, consumer, sealed)?.1.finish(bytes)?;
        self.finish(consumer, &d.campaign_id, sealed, &context).await?;
        Ok(())
    }

    /// Ends a negotiating delivery whose agent holds the new context, if the store
    /// still holds `pending` (the sealed context it was checked against): the new PSK
    /// and key id become current (not for a drill). False if the delivery had moved on.
    async fn finish(
        &self,
        consumer: &str,
        campaign: &str,
        pending: &[u8],
        context: &NewContext,
    ) -> Result<bool, EngineError> {
        let (to, migration) = if context.drill {
            (D::DrillPassed, None)
        } else {
            let psk_sealed = self.master.seal(Purpose::Psk, consumer, context.next_psk().expose());
            let suite = context.suite.name().to_owned();
            (D::Migrated, Some(Migration { key_id: context.next_key_id, psk_sealed, suite }))
        };
        let at = now();
        let done =
            self.store.finish_delivery(campaign, consumer, pending, to, migration.as_ref(), at);
        if !done.await? {
            return Ok(false);
        }
        self.tallies.ended(campaign);
        metrics::counter!("pqescape_deliveries_finished_total", "state" => to.as_str())
            .increment(1);
        tracing::info!(consumer.id = consumer, campaign.id = %campaign, state = to.as_str(), "delivery finished");
        if let Some(m) = migration {
            let psk = crate::store::SealedPsk { key_id: m.key_id, sealed: m.psk_sealed };
            self.committed.put(consumer, psk);
        }
        Ok(true)
    }

    /// A report under a key id other than the current one: it verifies only under the
    /// pending PSK of its own exchange, and then proves that the agent completed the
    /// handshake, so the migration commits as on a finished message (protocol.md §8.2
    /// step 6). This is how a migration whose finished message was lost (the
    /// orchestrator died before recording it) still completes.
    async fn commit_on_report(
        &self,
        consumer: &str,
        bytes: &[u8],
        report: &StatusReport,
    ) -> Result<(), EngineError> {
        let unknown = || EngineError::Refused(Rejection::UnknownKeyId.into());
        let exchange = &report.exchange;
        let d = self.delivery_for(consumer, exchange.campaign.0, exchange.sequence).await?;
        let sealed =
            d.pending_sealed.as_ref().filter(|_| d.state == D::Negotiating).ok_or_else(unknown)?;
        let pending = self.open_pending(&d.campaign_id, consumer, sealed)?.1;
        let context = pending.context();
        if context.drill || context.next_key_id != report.key_id || context.exchange != *exchange {
            return Err(unknown());
        }
        verify_status(bytes, report, context.next_psk())?;
        tracing::info!(consumer.id = consumer, campaign.id = %d.campaign_id, "a report under the pending key proves the migration");
        self.finish(consumer, &d.campaign_id, sealed, context).await?;
        Ok(())
    }

    async fn on_status(&self, consumer: &str, bytes: &[u8]) -> Result<(), EngineError> {
        let report = StatusReport::decode(bytes)?;
        // The report after a migration this replica committed verifies under the PSK
        // it committed, without a read; anything else reads the current one.
        let fresh = self.committed.take(consumer).filter(|p| p.key_id == report.key_id);
        let verified = fresh.is_some_and(|p| {
            self.open_psk(consumer, &p.sealed)
                .is_ok_and(|psk| verify_status(bytes, &report, &psk).is_ok())
        });
        if !verified {
            let sealed = self.store.consumer_psk(consumer).await?.ok_or(EngineError::NoDelivery)?;
            if sealed.key_id == report.key_id {
                verify_status(bytes, &report, &self.open_psk(consumer, &sealed.sealed)?)?;
            } else {
                // Committed here, the exchange is no longer open: a refusal in the same
                // report (the agent's answer to the re-sent escape) fails nothing below.
                self.commit_on_report(consumer, bytes, &report).await?;
            }
        }
        if report.status == Status::Failed && report.reason == REASON_HOOK_FAILED {
            // The consumer migrated; a hook on its host did not apply the new context.
            // The delivery stays migrated and carries the reason for the operator.
            let d = self
                .delivery_for(consumer, report.exchange.campaign.0, report.exchange.sequence)
                .await?;
            let reason = format!("migrated, but {}", report.detail);
            self.store
                .update_delivery(
                    &d.campaign_id,
                    consumer,
                    &[D::Migrated],
                    D::Migrated,
                    Some(&reason),
                    None,
                    None,
                    now(),
                )
                .await?;
            metrics::counter!("pqescape_hook_failures_total").increment(1);
            tracing::warn!(consumer.id = consumer, campaign.id = %d.campaign_id, reason = %reason, "post-migration hook failed");
            return Ok(());
        }
        if matches!(report.status, Status::Rejected | Status::Failed) {
            let d = self
                .delivery_for(consumer, report.exchange.campaign.0, report.exchange.sequence)
                .await?;
            let reason = format!("{:#06x}: {}", report.reason, report.detail);
            let at = now();
            let failed = self.store.update_delivery(
                &d.campaign_id,
                consumer,
                &D::OPEN,
                D::Failed,
                Some(&reason),
                None,
                None,
                at,
            );
            // A delivery that has already ended stays as it ended.
            if failed.await? {
                tracing::warn!(consumer.id = consumer, campaign.id = %d.campaign_id, reason = %reason, "delivery failed");
            }
        }
        Ok(())
    }

    /// One sweep over the running campaigns: steer each, then send what its
    /// connected agents are owed.
    pub async fn sweep(&self) -> Result<(), EngineError> {
        let running = self.store.running_campaigns().await?;
        if running.is_empty() {
            return Ok(());
        }
        self.tallies.retain(&running);
        let connected: HashSet<String> = self.connections.consumers().into_iter().collect();
        for id in running {
            let Some(c) = self.store.campaign(&id).await? else { continue };
            if c.state != CampaignState::Running {
                continue;
            }
            // A count reads all of a campaign's deliveries: one serves every
            // replica for a second (crate::tally).
            let counted = self.tallies.count(self.store.as_ref(), &id, now_ms()).await?;
            if self.steer(&c, &counted.tally).await? {
                self.dispatch(&c, &counted, &connected).await?;
            }
        }
        Ok(())
    }

    /// Sends campaign `c`'s escapes to the agents connected here: pending ones up
    /// to the in-flight cap, and unanswered ones whose backoff has run out. One
    /// query reads what may be owed (its cost follows the open deliveries, not the
    /// fleet), one transaction per [`DISPATCH_CHUNK`] records the sends, and every
    /// send is recorded before it goes.
    async fn dispatch(
        &self,
        c: &Campaign,
        counted: &Counted,
        connected: &HashSet<String>,
    ) -> Result<(), EngineError> {
        // The count may be a second old: what this replica sent since is out too.
        let in_flight = self.tallies.in_flight(&c.id, counted);
        let mut budget = u64::from(c.spec.max_in_flight).saturating_sub(in_flight);
        let digest = self
            .store
            .campaign_manifest(&c.id)
            .await?
            .as_deref()
            .map(pqescape_message::campaign::manifest_digest);
        let first = first_wait(in_flight);
        let at = now();
        let mut after = String::new();
        loop {
            let page = self.store.dispatch_rows(&c.id, at - first, &after, DISPATCH_PAGE).await?;
            let Some((last, _)) = page.last() else { break };
            after.clone_from(&last.consumer_id);
            let full = page.len() == DISPATCH_PAGE as usize;
            let owed: Vec<_> =
                page.into_iter().filter(|(d, _)| connected.contains(&d.consumer_id)).collect();
            for chunk in owed.chunks(DISPATCH_CHUNK) {
                let left = self.send_chunk(c, chunk, budget, digest, (at, first)).await?;
                self.tallies.sent(&c.id, counted.at_ms, budget.saturating_sub(left));
                budget = left;
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// Records and sends one chunk of a dispatch at time `at`: pending deliveries
    /// while `budget` lasts, unanswered ones whose backoff (from a first wait of
    /// `first` seconds) has run out. Returns what is left of the budget.
    async fn send_chunk(
        &self,
        c: &Campaign,
        chunk: &[(Delivery, crate::store::SealedPsk)],
        mut budget: u64,
        digest: Option<[u8; 32]>,
        (at, first): (i64, i64),
    ) -> Result<u64, EngineError> {
        let mut sends = Vec::new();
        let mut frames = Vec::new();
        for (d, psk) in chunk {
            match (d.state, &d.escape) {
                (D::Pending, _) if budget > 0 => {
                    let escape = self.seal_for(c, d, psk, digest)?;
                    budget -= 1;
                    frames.push((d.consumer_id.clone(), escape.clone()));
                    sends.push(Dispatch {
                        consumer_id: d.consumer_id.clone(),
                        from: D::Pending,
                        escape: Some(escape),
                    });
                }
                (D::Sent, Some(escape)) if d.retry_due(at, first) => {
                    metrics::counter!("pqescape_escape_retries_total").increment(1);
                    tracing::info!(consumer.id = %d.consumer_id, attempts = d.attempts + 1, "escape unanswered; sending it again");
                    frames.push((d.consumer_id.clone(), escape.clone()));
                    sends.push(Dispatch {
                        consumer_id: d.consumer_id.clone(),
                        from: D::Sent,
                        escape: None,
                    });
                }
                _ => {}
            }
        }
        if sends.is_empty() {
            return Ok(budget);
        }
        let moved = self.store.mark_sent(&c.id, &sends, at).await?;
        for ((consumer, escape), moved) in frames.into_iter().zip(moved) {
            if moved && self.connections.send(&consumer, frame(escape)) {
                metrics::counter!("pqescape_escapes_sent_total").increment(1);
            }
        }
        Ok(budget)
    }

    /// Seals the escape of delivery `d` of campaign `c` under the consumer's PSK.
    fn seal_for(
        &self,
        c: &Campaign,
        d: &Delivery,
        psk: &crate::store::SealedPsk,
        manifest_digest: Option<[u8; 32]>,
    ) -> Result<Vec<u8>, EngineError> {
        let key = self.open_psk(&d.consumer_id, &psk.sealed)?;
        let order = EscapeOrder {
            consumer: ConsumerId(uuid_bytes(&d.consumer_id)),
            campaign: CampaignId(uuid_bytes(&c.id)),
            key_id: psk.key_id,
            sequence: d.sequence,
            suite: c.spec.target_suite,
            issued_at: u64::try_from(now()).unwrap_or(0),
            not_after: u64::try_from(c.spec.deadline).unwrap_or(0),
            drill: c.spec.drill,
            manifest_digest,
            directives: c.spec.directives.as_bytes(),
            encrypt: !c.spec.directives.is_empty(),
            mode: KeyMode::DedicatedPsk,
        };
        Ok(seal_escape(&order, &key, &mut rand_core::UnwrapErr(getrandom::SysRng))?)
    }

    /// Expires, pauses, opens the next wave or completes running campaign `c`,
    /// whose deliveries `tally` counts. Whether it still runs, so that its
    /// escapes may go out.
    async fn steer(&self, c: &Campaign, tally: &DeliveryTally) -> Result<bool, EngineError> {
        let at = now();
        if at > c.spec.deadline {
            self.store.expire_deliveries(&c.id, at).await?;
            let why = json!({ "why": "deadline" });
            self.engine_transition(c, CampaignState::Completed, "campaign.complete", why).await?;
            return Ok(false);
        }
        let failed = tally.failed();
        let threshold = u64::from(c.spec.failure_threshold_percent);
        if failed > 0 && failed * 100 > threshold * tally.attempted() {
            let detail = json!({ "why": "failure threshold", "threshold_percent": threshold });
            self.engine_transition(c, CampaignState::Paused, "campaign.pause", detail).await?;
            return Ok(false);
        }
        let current = self.store.current_wave(&c.id).await?;
        if tally.open_up_to(current) > 0 {
            return Ok(true);
        }
        match tally.next_wave_after(current) {
            Some(next) => {
                self.store.set_current_wave(&c.id, next, at).await?;
                Ok(true)
            }
            None => {
                let why = json!({ "why": "all deliveries ended" });
                self.engine_transition(c, CampaignState::Completed, "campaign.complete", why)
                    .await?;
                Ok(false)
            }
        }
    }

    async fn engine_transition(
        &self,
        c: &Campaign,
        to: CampaignState,
        action: &str,
        detail: serde_json::Value,
    ) -> Result<(), EngineError> {
        let from = [CampaignState::Running];
        let at = now();
        let entry = NewAuditEntry {
            at,
            actor: "engine".into(),
            action: action.into(),
            target: c.id.clone(),
            detail: detail.to_string(),
        };
        let changed = self.store.transition_campaign(&c.id, &from, to, at, None, Some(&entry));
        if changed.await?.is_some() {
            tracing::info!(campaign.id = %c.id, state = to.as_str(), "campaign state changed by the engine");
        }
        Ok(())
    }
}

/// Row binding of a sealed pending context: campaign and consumer.
fn pending_row(campaign: &str, consumer: &str) -> String {
    format!("{campaign}/{consumer}")
}

/// Records in one batch the agents seen (heartbeats, connections) since the last flush.
async fn flush_seen(o: &Orchestrator) {
    let seen = o.connections.take_seen();
    if let Err(e) = o.store.touch_consumers(&seen, now()).await {
        tracing::warn!(error = %e, agents = seen.len(), "could not record heartbeats");
    }
}

/// Runs sweeps until `stop` turns true.
pub async fn run(o: Arc<Orchestrator>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(SWEEP);
    let mut flush = tokio::time::interval(LAST_SEEN_FLUSH);
    loop {
        tokio::select! {
            () = o.wake.notified() => {}
            _ = tick.tick() => {}
            _ = flush.tick() => {
                flush_seen(&o).await;
                continue;
            }
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    flush_seen(&o).await;
                    return;
                }
                continue;
            }
        }
        if let Err(e) = o.sweep().await {
            metrics::counter!("pqescape_engine_errors_total", "kind" => e.kind()).increment(1);
            tracing::warn!(error = %e, "engine sweep failed");
        }
    }
}
