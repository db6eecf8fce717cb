//! The agent's persistent channel to the orchestrator's gateway (protocol.md §8.4):
//! answer the challenge with a channel hello, keep the channel alive with
//! heartbeats, and come back with backoff and jitter whenever it drops.
//!
//! The channel is the framed transport of protocol.md §8.5 (ALPN `pqescape/1`),
//! not gRPC: it holds no buffers while idle, on either side. The gateway says why
//! it ends a channel in a closing frame, which decides what the agent does next.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pqescape_frames::{FrameError, FrameReader, write_frame};
use pqescape_message::channel::seal_hello;
use pqescape_message::secret::SecretKey;
use pqescape_message::types::{ConsumerId, Suite};
use prost::Message;
use tokio::io::{AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use crate::backoff::Backoff;
use crate::config::Config;
use crate::escape::EscapeHandler;
use crate::gateway::pb;
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

/// The sending half of a channel.
struct Outbound(WriteHalf<TlsStream<TcpStream>>);

impl Outbound {
    async fn send(&mut self, frame: pb::agent_frame::Frame) -> Result<(), ChannelError> {
        let bytes = pb::AgentFrame { frame: Some(frame) }.encode_to_vec();
        write_frame(&mut self.0, &bytes).await.map_err(|e| ChannelError::Transport(e.to_string()))
    }
}

/// The receiving half of a channel; [`Inbound::recv`] is cancel-safe.
struct Inbound {
    read: ReadHalf<TlsStream<TcpStream>>,
    frames: FrameReader,
}

impl Inbound {
    /// The next frame, `Ok(None)` once the gateway closed the stream; a closing
    /// frame comes back as the error or end it announces.
    async fn recv(&mut self) -> Result<Option<pb::gateway_frame::Frame>, ChannelError> {
        let Some(bytes) = self.frames.next(&mut self.read).await.map_err(|e| match e {
            FrameError::Io(e) => ChannelError::Transport(e.to_string()),
            other => ChannelError::Protocol(other.to_string()),
        })?
        else {
            return Ok(None);
        };
        let frame = pb::GatewayFrame::decode(bytes.as_slice())
            .map_err(|_| ChannelError::Protocol("a frame that is not a GatewayFrame".into()))?;
        match frame.frame {
            Some(pb::gateway_frame::Frame::Closing(closing)) => closed(closing.reason()),
            other => Ok(other),
        }
    }
}

/// What a closing frame means for this agent.
fn closed(reason: pb::closing::Reason) -> Result<Option<pb::gateway_frame::Frame>, ChannelError> {
    use pb::closing::Reason;
    match reason {
        Reason::Refused => Err(ChannelError::Refused("channel hello refused".into())),
        Reason::Shutdown => Ok(None),
        Reason::Timeout => Err(ChannelError::Transport("no channel hello in time".into())),
        Reason::Replaced => {
            Err(ChannelError::Transport("replaced by a newer channel of this consumer".into()))
        }
        Reason::Broken | Reason::Unspecified => {
            Err(ChannelError::Protocol("the gateway found the channel broken".into()))
        }
    }
}

/// Largest frame the gateway may send: an escape with its manifest is a few KiB.
const MAX_FRAME: usize = 64 * 1024;

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
    let (stream, tls) =
        tls::open_channel(&settings.orchestrator, &settings.ca_file, groups, settings.timeout)
            .await
            .map_err(|e| ChannelError::Transport(e.to_string()))?;
    let (read, write) = tokio::io::split(stream);
    let mut inbound = Inbound { read, frames: FrameReader::new(MAX_FRAME) };
    let mut outbound = Outbound(write);

    let first = tokio::time::timeout(settings.timeout, inbound.recv())
        .await
        .map_err(|_| ChannelError::Transport("no challenge in time".into()))??;
    let challenge = match first {
        Some(pb::gateway_frame::Frame::Challenge(c)) => <[u8; 16]>::try_from(c.as_slice())
            .map_err(|_| ChannelError::Protocol("challenge of the wrong length".into()))?,
        None => return Ok(Ended::Closed),
        _ => {
            return Err(ChannelError::Protocol("the gateway did not open with a challenge".into()));
        }
    };
    let hello = seal_hello(consumer, key_id, &psk, challenge, AGENT_VERSION, &tls.binding)
        .map_err(|e| ChannelError::Protocol(e.to_string()))?;
    outbound.send(pb::agent_frame::Frame::Message(hello)).await?;
    tracing::info!(consumer.id = %consumer, tls.post_quantum = tls.post_quantum, "channel open");

    let mut handler = EscapeHandler::new(store.clone());
    let hooks = &settings.hooks;
    // Hooks a crash left owed run now that the orchestrator can hear their outcome.
    report_hooks(&handler, hooks, &mut outbound).await?;
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
            frame = inbound.recv() => match frame? {
                None => return Ok(Ended::Closed),
                Some(pb::gateway_frame::Frame::Message(bytes)) => {
                    if let Some(pause) = settings.pace {
                        tokio::time::sleep(pause).await;
                    }
                    for reply in handle(&mut handler, &bytes) {
                        outbound.send(pb::agent_frame::Frame::Message(reply)).await?;
                    }
                    report_hooks(&handler, hooks, &mut outbound).await?;
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
                // A closing frame is an end or an error by now.
                Some(pb::gateway_frame::Frame::Closing(_)) => return Ok(Ended::Closed),
            },
            _ = beat.tick() => {
                outbound.send(pb::agent_frame::Frame::Heartbeat(pb::Heartbeat {})).await?;
            }
        }
    }
    // Migrated on a classical channel: end it gracefully. Closing our side lets the
    // gateway read everything sent before (finished message, report) and then end
    // the channel; dropping the connection could lose frames in flight.
    let _ = outbound.0.shutdown().await;
    let drained = async { while let Ok(Some(_)) = inbound.recv().await {} };
    let _ = tokio::time::timeout(settings.timeout, drained).await;
    Ok(Ended::Upgrade)
}

/// Runs the hooks a migration left pending and sends their outcome.
async fn report_hooks(
    handler: &EscapeHandler,
    hooks: &HookSettings,
    outbound: &mut Outbound,
) -> Result<(), ChannelError> {
    match handler.run_pending_hooks(hooks).await {
        Ok(None) => Ok(()),
        Ok(Some(report)) => outbound.send(pb::agent_frame::Frame::Message(report)).await,
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
