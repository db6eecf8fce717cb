//! The agent's persistent channel to the orchestrator's gateway (protocol.md §8.4):
//! answer the challenge with a channel hello, keep the channel alive with
//! heartbeats, and come back with backoff and jitter whenever it drops.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pqescape_message::channel::seal_hello;
use pqescape_message::secret::SecretKey;
use pqescape_message::types::{ConsumerId, Suite};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::backoff::Backoff;
use crate::config::Config;
use crate::escape::EscapeHandler;
use crate::gateway::pb;
use crate::gateway::pb::agent_gateway_client::AgentGatewayClient;
use crate::hooks::HookSettings;
use crate::state::{AgentState, StateDir, StateStore};
use crate::tls::{self, Groups};

/// Version string the agent reports in its channel hello.
pub const AGENT_VERSION: &str = concat!("pqescape-agent ", env!("CARGO_PKG_VERSION"));
/// Interval between heartbeats.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// A channel that lived this long resets the backoff.
const STABLE: Duration = Duration::from_secs(60);

/// How one channel ended without an error.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
    /// The orchestrator closed it.
    Closed,
    /// This agent migrated on a classical channel and closed it, to come back at
    /// once on an X25519MLKEM768 one bound to the new PSK.
    Upgrade,
}

/// Why one channel ended.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    /// Not enrolled, or the state does not parse.
    #[error("{0}")]
    State(String),
    /// The gateway could not be reached or the stream broke.
    #[error("transport: {0}")]
    Transport(String),
    /// The gateway refused the channel hello (or anything else).
    #[error("refused by the orchestrator: {0}")]
    Refused(String),
    /// The gateway did not speak the protocol.
    #[error("protocol: {0}")]
    Protocol(String),
}

fn status(s: tonic::Status) -> ChannelError {
    match s.code() {
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied => {
            ChannelError::Refused(s.message().to_owned())
        }
        _ => ChannelError::Transport(format!("{}: {}", s.code(), s.message())),
    }
}

/// What a channel needs besides the agent's state.
#[derive(Clone, Debug)]
pub struct ChannelSettings {
    /// Gateway URL.
    pub orchestrator: String,
    /// CA file for the gateway's certificate.
    pub ca_file: PathBuf,
    /// Connection and call timeout.
    pub timeout: Duration,
    /// Hooks run after a migration.
    pub hooks: HookSettings,
    /// A pause before answering each message: `None` for a real agent; the fleet
    /// simulator uses it to model slow hosts.
    pub pace: Option<Duration>,
    /// Longest random delay between a migration on a classical channel and the
    /// move to an X25519MLKEM768 one.
    pub upgrade_spread: Duration,
}

impl From<&Config> for ChannelSettings {
    fn from(config: &Config) -> Self {
        Self {
            orchestrator: config.orchestrator.clone(),
            ca_file: config.ca_file.clone(),
            timeout: Duration::from_secs(config.timeout_secs),
            hooks: config.hooks(),
            pace: None,
            upgrade_spread: Duration::from_secs(config.channel_upgrade_spread_secs),
        }
    }
}

/// Keeps a channel open until `shutdown` resolves, reconnecting with backoff.
pub async fn run(config: &Config, shutdown: impl std::future::Future<Output = ()>) {
    let store = Arc::new(StateDir(config.state_dir.clone()));
    run_with(&ChannelSettings::from(config), store, shutdown).await;
}

/// [`run`] over any state store.
pub async fn run_with(
    settings: &ChannelSettings,
    store: Arc<dyn StateStore>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
    // After a refusal the next attempt proves the previous PSK: the orchestrator may
    // not have committed a ratchet whose finished message it never received.
    let mut refusals = 0usize;
    tokio::pin!(shutdown);
    loop {
        let started = Instant::now();
        tokio::select! {
            () = &mut shutdown => return,
            result = session(settings, &store, refusals) => match result {
                Ok(Ended::Upgrade) => {
                    tracing::info!("migrated: moving the channel to X25519MLKEM768");
                    refusals = 0;
                    continue;
                }
                Ok(Ended::Closed) => tracing::info!("channel closed by the orchestrator"),
                Err(ChannelError::Refused(why)) => {
                    refusals += 1;
                    tracing::warn!(error = %why, "channel ended: refused by the orchestrator");
                }
                Err(e) => tracing::warn!(error = %e, "channel ended"),
            },
        }
        if started.elapsed() >= STABLE {
            backoff.reset();
        }
        let delay = backoff.next_delay();
        tracing::info!(retry_in_ms = delay.as_millis() as u64, "reconnecting");
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

/// One channel, from connection to its end.
async fn session(
    settings: &ChannelSettings,
    store: &Arc<dyn StateStore>,
    refusals: usize,
) -> Result<Ended, ChannelError> {
    let state = store
        .load()
        .map_err(|e| ChannelError::State(e.to_string()))?
        .ok_or_else(|| ChannelError::State("not enrolled".into()))?;
    let (consumer, key_id, psk) = identity(&state, refusals)?;
    // Once migrated, never again a classical-only channel (protocol.md §8.4).
    let migrated = Suite::from_name(&state.suite).is_some_and(|s| s.is_post_quantum());
    let groups = if migrated { Groups::PostQuantum } else { Groups::Classical };
    let (channel, tls) =
        tls::connect(&settings.orchestrator, &settings.ca_file, groups, settings.timeout)
            .await
            .map_err(|e| ChannelError::Transport(e.to_string()))?;
    let mut client = AgentGatewayClient::new(channel);
    let (tx, rx) = mpsc::channel(16);
    let mut inbound = client.attach(ReceiverStream::new(rx)).await.map_err(status)?.into_inner();

    let challenge = match inbound.message().await.map_err(status)?.and_then(|f| f.frame) {
        Some(pb::gateway_frame::Frame::Challenge(c)) => <[u8; 16]>::try_from(c.as_slice())
            .map_err(|_| ChannelError::Protocol("challenge of the wrong length".into()))?,
        _ => {
            return Err(ChannelError::Protocol("the gateway did not open with a challenge".into()));
        }
    };
    let hello = seal_hello(consumer, key_id, &psk, challenge, AGENT_VERSION, &tls.binding)
        .map_err(|e| ChannelError::Protocol(e.to_string()))?;
    let send = |frame| pb::AgentFrame { frame: Some(frame) };
    let closed = |_| ChannelError::Transport("stream closed".into());
    tx.send(send(pb::agent_frame::Frame::Message(hello))).await.map_err(closed)?;
    tracing::info!(consumer.id = %consumer, tls.post_quantum = tls.post_quantum, "channel open");

    let mut handler = EscapeHandler::new(store.clone());
    let hooks = &settings.hooks;
    // Hooks a crash left owed run now that the orchestrator can hear their outcome.
    report_hooks(&handler, hooks, &tx).await?;
    let mut beat = tokio::time::interval(HEARTBEAT);
    beat.tick().await;
    // Set once this agent migrated on a classical channel. The new context is in
    // force and every message on this channel is already authenticated under the
    // new PSK, so the move can wait: a whole fleet moving at the instant it
    // migrates would load the gateway with reconnections while the rest of the
    // fleet still escapes.
    let mut upgrade_at: Option<tokio::time::Instant> = None;
    loop {
        let upgrade = async {
            match upgrade_at {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = upgrade => break,
            frame = inbound.message() => match frame.map_err(status)?.and_then(|f| f.frame) {
                None => return Ok(Ended::Closed),
                Some(pb::gateway_frame::Frame::Message(bytes)) => {
                    if let Some(pause) = settings.pace {
                        tokio::time::sleep(pause).await;
                    }
                    for reply in handle(&mut handler, &bytes) {
                        tx.send(send(pb::agent_frame::Frame::Message(reply))).await.map_err(closed)?;
                    }
                    report_hooks(&handler, hooks, &tx).await?;
                    if handler.migrated() && !tls.post_quantum && upgrade_at.is_none() {
                        let delay = crate::backoff::uniform(settings.upgrade_spread);
                        if delay.is_zero() {
                            break;
                        }
                        tracing::info!(
                            upgrade_in_ms = delay.as_millis() as u64,
                            "migrated: the channel moves to X25519MLKEM768 shortly"
                        );
                        upgrade_at = Some(tokio::time::Instant::now() + delay);
                    }
                }
                Some(pb::gateway_frame::Frame::Challenge(_)) => {
                    return Err(ChannelError::Protocol("a second challenge".into()));
                }
            },
            _ = beat.tick() => {
                let heartbeat = send(pb::agent_frame::Frame::Heartbeat(pb::Heartbeat {}));
                tx.send(heartbeat).await.map_err(closed)?;
            }
        }
    }
    // Migrated on a classical channel: end it gracefully. Closing our side lets the
    // gateway read everything sent before (finished message, report) and then end
    // the stream; dropping it outright could reset the stream under unread frames.
    drop(tx);
    let drained = async { while let Ok(Some(_)) = inbound.message().await {} };
    let _ = tokio::time::timeout(settings.timeout, drained).await;
    Ok(Ended::Upgrade)
}

/// Runs the hooks a migration left pending and sends their outcome.
async fn report_hooks(
    handler: &EscapeHandler,
    hooks: &HookSettings,
    tx: &mpsc::Sender<pb::AgentFrame>,
) -> Result<(), ChannelError> {
    match handler.run_pending_hooks(hooks).await {
        Ok(None) => Ok(()),
        Ok(Some(report)) => {
            let frame = pb::AgentFrame { frame: Some(pb::agent_frame::Frame::Message(report)) };
            tx.send(frame).await.map_err(|_| ChannelError::Transport("stream closed".into()))
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not run the pending hooks");
            Ok(())
        }
    }
}

/// Consumer id and the PSK to prove: the newest, or an older one after refusals.
fn identity(
    state: &AgentState,
    refusals: usize,
) -> Result<(ConsumerId, u32, SecretKey), ChannelError> {
    let bad = |what: &str| ChannelError::State(format!("state file: {what}"));
    let uuid: Vec<u8> =
        hex::decode(state.consumer_id.replace('-', "")).map_err(|_| bad("consumer id"))?;
    let consumer = ConsumerId(uuid.try_into().map_err(|_| bad("consumer id"))?);
    let mut keys = crate::escape::psks(state).map_err(|_| bad("PSK"))?;
    if keys.is_empty() {
        return Err(bad("no PSK"));
    }
    let (key_id, psk) = keys.swap_remove(refusals % keys.len());
    Ok((consumer, key_id, psk))
}

/// Dispatches one protocol message from the gateway; failures are logged, and
/// whatever must be reported is in the replies.
fn handle(handler: &mut EscapeHandler, bytes: &[u8]) -> Vec<Vec<u8>> {
    use pqescape_message::wire::{MessageType, peek_frame};
    let result = match peek_frame(bytes).map(|(ty, _)| ty) {
        Ok(MessageType::Escape) => handler.on_escape(bytes),
        Ok(MessageType::HandshakeResponse) => handler.on_response(bytes),
        Ok(other) => {
            tracing::warn!(message.type = ?other, "unexpected message from the gateway");
            Ok(Vec::new())
        }
        Err(e) => {
            tracing::warn!(error.kind = e.kind(), "unparseable message from the gateway");
            Ok(Vec::new())
        }
    };
    result.unwrap_or_else(|e| {
        tracing::warn!(error = %e, "escape step failed");
        Vec::new()
    })
}
