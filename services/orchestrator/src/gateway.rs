//! The agent gateway (proto/agent.proto): where agents reach the orchestrator.
//!
//! It carries enrollment and each enrolled agent's persistent channel, which opens
//! with a challenge and the agent's channel hello, bound to the connection's TLS
//! session and refused on a classical-only session once the consumer has migrated
//! (protocol.md §8.4). It is a listener of its own, apart from the admin APIs, so
//! the two can be exposed to different networks.
//!
//! The channel comes over either transport of the listener (protocol.md §8.5): the
//! gRPC `Attach` stream, or the framed one of `pqescape/1` ([`framed`]). Both feed
//! the same [`run_channel`]: frames in through [`Inbound`], frames out through the
//! channel's [`Outbound`] queue, ended with a [`pb::Closing`] frame that each
//! transport renders its own way.

pub mod framed;

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use pqescape_message::channel::verify_hello;
use pqescape_message::message::ChannelHello;
use pqescape_message::secret::SecretKey;
use pqescape_message::types::Suite;
use rand_core::Rng;
use tokio::sync::mpsc;
use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::Orchestrator;
use crate::clock::now;
use crate::connections::OUTBOUND_QUEUE;
use crate::domain::ConsumerState;
use crate::engine::Owed;
use crate::enroll::EnrollError;
use crate::secrets::Purpose;
use crate::tls::ChannelSecurity;

/// Code generated from proto/agent.proto.
#[allow(missing_docs, clippy::all, clippy::pedantic, clippy::unwrap_used, clippy::expect_used)]
pub mod pb {
    tonic::include_proto!("pqescape.agent.v1");
}

use pb::agent_gateway_server::{AgentGateway, AgentGatewayServer};

/// How long an agent has to answer the challenge.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest message an agent may send: the largest enrollment message is under 2 KiB.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// The gateway service, ready for `tonic::transport::Server`.
pub fn services(o: Arc<Orchestrator>) -> tonic::service::Routes {
    let server = AgentGatewayServer::new(Gateway(o))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(64 * 1024);
    tonic::service::Routes::new(server)
}

struct Gateway(Arc<Orchestrator>);

fn status(e: EnrollError) -> Status {
    metrics::counter!("pqescape_enrollment_failures_total", "kind" => e.kind()).increment(1);
    match e {
        EnrollError::Protocol(p) => {
            tracing::warn!(error.kind = p.kind(), "enrollment message refused");
            Status::invalid_argument(format!("enrollment message refused: {}", p.kind()))
        }
        EnrollError::Token => Status::permission_denied(e.to_string()),
        EnrollError::Internal(detail) => {
            tracing::error!(error = %detail, "enrollment failed");
            Status::internal("the request could not be completed")
        }
    }
}

/// The queue of frames towards one agent: the engine's escapes and responses, then
/// at most one closing frame. Boxed, because the queue's first block of slots is
/// allocated with the channel and kept while it lives: 32 pointers rather than 32
/// frames on every idle connection.
pub type Outbound = mpsc::Sender<Box<pb::GatewayFrame>>;

/// A closing frame, boxed as the outbound queue holds it.
pub fn closing(reason: pb::closing::Reason) -> Box<pb::GatewayFrame> {
    let closing = pb::Closing { reason: reason as i32 };
    Box::new(pb::GatewayFrame { frame: Some(pb::gateway_frame::Frame::Closing(closing)) })
}

/// Where an agent's frames come from.
pub trait Inbound: Send {
    /// The next frame: `Ok(None)` once the agent ended the channel, or the kind of
    /// failure when the transport broke.
    fn next(&mut self)
    -> impl Future<Output = Result<Option<pb::AgentFrame>, &'static str>> + Send;
}

impl Inbound for Streaming<pb::AgentFrame> {
    async fn next(&mut self) -> Result<Option<pb::AgentFrame>, &'static str> {
        self.message().await.map_err(|_| "transport")
    }
}

/// The gRPC rendering of an outbound queue: frames until a closing one, which
/// becomes the stream's final status.
fn grpc_stream(
    rx: mpsc::Receiver<Box<pb::GatewayFrame>>,
) -> impl Stream<Item = Result<pb::GatewayFrame, Status>> + Send {
    use pb::closing::Reason;
    futures::stream::unfold(Some(rx), |rx| async move {
        let mut rx = rx?;
        let frame = rx.recv().await?;
        let Some(pb::gateway_frame::Frame::Closing(c)) = &frame.frame else {
            return Some((Ok(*frame), Some(rx)));
        };
        let status = match c.reason() {
            Reason::Refused => Status::unauthenticated("channel hello refused"),
            Reason::Timeout => Status::deadline_exceeded("no channel hello in time"),
            Reason::Replaced => Status::aborted("replaced by a newer channel"),
            Reason::Shutdown => Status::unavailable("the orchestrator is shutting down"),
            Reason::Broken | Reason::Unspecified => Status::invalid_argument("channel broken"),
        };
        Some((Err(status), None))
    })
}

#[tonic::async_trait]
impl AgentGateway for Gateway {
    type AttachStream = Pin<Box<dyn Stream<Item = Result<pb::GatewayFrame, Status>> + Send>>;

    async fn attach(
        &self,
        req: Request<Streaming<pb::AgentFrame>>,
    ) -> Result<Response<Self::AttachStream>, Status> {
        let Some(security) = req.extensions().get::<ChannelSecurity>().cloned() else {
            // Every gateway connection comes through the TLS acceptor (server.rs).
            return Err(Status::unavailable("the agent gateway requires TLS"));
        };
        let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
        tokio::spawn(run_channel(self.0.clone(), req.into_inner(), tx, security));
        Ok(Response::new(Box::pin(grpc_stream(rx))))
    }

    async fn enroll_hello(
        &self,
        req: Request<pb::EnrollHelloRequest>,
    ) -> Result<Response<pb::EnrollHelloResponse>, Status> {
        let (accept, session) =
            self.0.enroll_hello(&req.into_inner().hello).await.map_err(status)?;
        Ok(Response::new(pb::EnrollHelloResponse { accept, session }))
    }

    async fn enroll_confirm(
        &self,
        req: Request<pb::EnrollConfirmRequest>,
    ) -> Result<Response<pb::EnrollConfirmResponse>, Status> {
        let r = req.into_inner();
        let consumer_id = self.0.enroll_confirm(&r.session, &r.confirm).await.map_err(status)?;
        tracing::info!(consumer.id = %consumer_id, "consumer enrolled");
        metrics::counter!("pqescape_enrollments_total").increment(1);
        Ok(Response::new(pb::EnrollConfirmResponse { consumer_id }))
    }
}

/// One agent's channel: challenge, authenticate, register, serve frames, unregister.
pub async fn run_channel(
    o: Arc<Orchestrator>,
    mut inbound: impl Inbound,
    tx: Outbound,
    security: ChannelSecurity,
) {
    let mut challenge = [0u8; 16];
    rand_core::UnwrapErr(getrandom::SysRng).fill_bytes(&mut challenge);
    let frame = pb::gateway_frame::Frame::Challenge(challenge.to_vec());
    if tx.send(Box::new(pb::GatewayFrame { frame: Some(frame) })).await.is_err() {
        return;
    }
    // The store's futures are large and a channel is idle nearly all its life: the
    // steps that await the store are boxed, so that an idle channel's task holds
    // only what waiting for the next frame needs (docs/performance.md).
    let hello = Box::pin(authenticate(&o, &mut inbound, &challenge, &security));
    let (consumer, owed) = match tokio::time::timeout(HELLO_TIMEOUT, hello).await {
        Ok(Ok(authenticated)) => authenticated,
        Ok(Err(Refused)) => {
            let _ = tx.send(closing(pb::closing::Reason::Refused)).await;
            return;
        }
        Err(_) => {
            metrics::counter!("pqescape_channel_rejections_total", "kind" => "timeout")
                .increment(1);
            let _ = tx.send(closing(pb::closing::Reason::Timeout)).await;
            return;
        }
    };
    // The span goes with the future, never entered across an await: an entered
    // guard would leak into whatever else runs on the thread meanwhile.
    let span = tracing::info_span!("agent channel", consumer.id = %consumer);
    serve_channel(o, consumer, owed, inbound, tx, security).instrument(span).await;
}

/// An authenticated channel: catch the agent up, register, serve its frames.
async fn serve_channel(
    o: Arc<Orchestrator>,
    consumer: String,
    owed: bool,
    mut inbound: impl Inbound,
    tx: Outbound,
    security: ChannelSecurity,
) {
    // What the agent may have missed goes out on this channel before the channel is
    // registered: once registered, a sweep may send the same escape, and an escape
    // that arrives twice restarts the agent's handshake under the first response.
    // The hello's read said whether anything is owed; most agents that attach
    // (a fleet connecting, an agent back on its upgraded channel) are owed nothing.
    let owed = if owed {
        Box::pin(o.owed_on_attach(&consumer)).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "could not look up what is owed on attach");
            Owed::Nothing
        })
    } else {
        Owed::Nothing
    };
    let pending = matches!(owed, Owed::Pending);
    if let Owed::Resend(escape) = owed
        && tx.send(Box::new(escape)).await.is_ok()
    {
        metrics::counter!("pqescape_escapes_sent_total").increment(1);
    }
    let channel = o.connections.insert(&consumer, tx, security.post_quantum);
    if pending {
        o.wake.notify_one();
    }
    tracing::info!(tls.group = security.key_exchange, peer = %security.peer, "agent connected");
    while let Ok(Some(frame)) = inbound.next().await {
        match frame.frame {
            Some(pb::agent_frame::Frame::Heartbeat(_)) => o.connections.saw(&consumer),
            Some(pb::agent_frame::Frame::Message(bytes)) => {
                if let Err(e) = Box::pin(o.on_agent_message(&consumer, &bytes)).await {
                    let kind = e.kind();
                    metrics::counter!("pqescape_agent_message_rejections_total", "kind" => kind)
                        .increment(1);
                    tracing::warn!(error = %e, error.kind = kind, "agent message refused");
                }
            }
            None => {}
        }
    }
    o.connections.remove(&consumer, channel);
    o.connections.saw(&consumer);
    tracing::info!("agent disconnected");
}

/// A refused channel hello, already counted and logged with its reason.
struct Refused;

/// Reads the channel hello and checks it (protocol.md §8.4). Returns the consumer and
/// whether an open delivery waits for it. Every refusal looks the same to the peer;
/// the log and the metric say why.
async fn authenticate(
    o: &Orchestrator,
    inbound: &mut impl Inbound,
    challenge: &[u8; 16],
    security: &ChannelSecurity,
) -> Result<(String, bool), Refused> {
    let refuse = |kind: &'static str| {
        metrics::counter!("pqescape_channel_rejections_total", "kind" => kind).increment(1);
        tracing::warn!(error.kind = kind, "channel hello refused");
        Refused
    };
    let first = inbound.next().await.map_err(refuse)?.ok_or_else(|| refuse("closed"))?;
    let Some(pb::agent_frame::Frame::Message(bytes)) = first.frame else {
        return Err(refuse("not_a_hello"));
    };
    let hello = ChannelHello::decode(&bytes).map_err(|e| refuse(e.kind()))?;
    let id = pqescape_message::types::ConsumerId(hello.consumer.0).to_string();
    let credentials = o
        .store
        .channel_credentials(&id)
        .await
        .map_err(|_| refuse("store"))?
        .ok_or_else(|| refuse("unknown_consumer"))?;
    let (consumer, sealed) = (credentials.consumer, credentials.psk);
    if consumer.state != ConsumerState::Enrolled {
        return Err(refuse("not_enrolled"));
    }
    let sealed = sealed.ok_or_else(|| refuse("no_psk"))?;
    if sealed.key_id != hello.key_id {
        return Err(refuse("unknown_key_id"));
    }
    let psk =
        o.master.open32(Purpose::Psk, &id, &sealed.sealed).map_err(|_| refuse("sealed_psk"))?;
    verify_hello(&bytes, &hello, challenge, &SecretKey::from_bytes(*psk), &security.binding)
        .map_err(|e| refuse(e.kind()))?;
    // A migrated consumer's channel must be post-quantum too (protocol.md §8.4).
    if consumer.suite != Suite::Classical.name() && !security.post_quantum {
        return Err(refuse("classical_channel"));
    }
    // A new agent version is written at once; otherwise the connection counts as a
    // heartbeat, recorded with the next batch (a fleet reconnecting after a restart
    // or a channel upgrade would otherwise cost a write per agent).
    let version: String = hello.agent_version.chars().filter(|c| !c.is_control()).collect();
    if consumer.agent_version.as_deref() == Some(version.as_str()) {
        o.connections.saw(&id);
    } else {
        o.store.touch_consumer(&id, now(), Some(&version)).await.map_err(|_| refuse("store"))?;
    }
    Ok((id, credentials.owed))
}
