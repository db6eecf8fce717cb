//! The framed transport of the agent channel (ALPN `pqescape/1`, protocol.md §8.5).
//!
//! Each connection is one task: [`run_channel`] reads frames through a
//! [`FramedInbound`], and beside it a writer drains the channel's outbound queue
//! onto the same TLS stream. Whichever side ends first ends the other: the writer
//! stops the reader once it has written a closing frame or failed, and the queue
//! closes once the registry has let go of the channel. Between frames a connection
//! holds no buffer of its own, which is the point of this transport.

use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use pqescape_frames::{FrameError, FrameReader, write_frame};
use prost::Message;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;

use super::pb::closing::Reason;
use super::{Inbound, MAX_MESSAGE, closing, pb, run_channel};
use crate::Orchestrator;
use crate::connections::OUTBOUND_QUEUE;
use crate::tls::FramedChannel;
use crate::tls::record::{RecordReader, RecordWriter};

/// A channel on which nothing arrives for this long is closed. Agents send a
/// heartbeat every 20 s.
pub const IDLE_LIMIT: Duration = Duration::from_secs(90);

/// Serves every framed connection `connections` yields until `stopped` turns true,
/// then waits for them to close (each writes a closing frame and ends).
pub async fn serve(
    o: Arc<Orchestrator>,
    mut connections: mpsc::Receiver<FramedChannel>,
    mut stopped: watch::Receiver<bool>,
) {
    let mut running = JoinSet::new();
    let for_connections = stopped.clone();
    loop {
        tokio::select! {
            next = connections.recv() => match next {
                Some(channel) => {
                    running.spawn(serve_connection(o.clone(), channel, for_connections.clone()));
                }
                None => break,
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
            _ = stopped.wait_for(|stop| *stop) => break,
        }
    }
    while running.join_next().await.is_some() {}
}

/// One connection, from its challenge to its close.
///
/// Not an `async fn`: the channel is taken apart here, outside the future, which
/// would otherwise keep a slot for it all its life.
fn serve_connection(
    o: Arc<Orchestrator>,
    channel: FramedChannel,
    stopped: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send {
    let FramedChannel { reader: read, writer: write, security } = channel;
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (writer_done, writer_ended) = oneshot::channel();
    let inbound = FramedInbound {
        read,
        reader: FrameReader::new(MAX_MESSAGE),
        queue: tx.downgrade(),
        writer_ended,
        writer_gone: false,
    };
    let writer = async move {
        write_all(write, rx, stopped).await;
        let _ = writer_done.send(());
    };
    // Joined outside any async block, which would hold both futures twice.
    futures::future::join(run_channel(o, inbound, tx, security), writer).map(|_| ())
}

/// Writes the queue's frames until it closes, a closing frame is written, the
/// orchestrator stops (the agent is told so) or the connection fails.
async fn write_all(
    mut io: RecordWriter<OwnedWriteHalf>,
    mut rx: mpsc::Receiver<Box<pb::GatewayFrame>>,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        let frame = tokio::select! {
            frame = rx.recv() => match frame {
                Some(frame) => frame,
                None => break,
            },
            _ = stopped.wait_for(|stop| *stop) => closing(Reason::Shutdown),
        };
        let last = matches!(frame.frame, Some(pb::gateway_frame::Frame::Closing(_)));
        if let Err(e) = write_frame(&mut io, &frame.encode_to_vec()).await {
            tracing::debug!(error = %e, "agent channel write failed");
            return;
        }
        if last {
            break;
        }
    }
    // close_notify, then FIN: the agent reads everything written before.
    let _ = io.shutdown().await;
}

/// The reading half of a framed connection, as [`run_channel`] consumes it.
struct FramedInbound {
    read: RecordReader<OwnedReadHalf>,
    reader: FrameReader,
    /// The outbound queue, for the closing frame of a broken channel; weak, so that
    /// the queue still closes when the registry lets go of it.
    queue: mpsc::WeakSender<Box<pb::GatewayFrame>>,
    /// Resolves once the writer is done; the channel has nothing left to say.
    writer_ended: oneshot::Receiver<()>,
    writer_gone: bool,
}

impl FramedInbound {
    /// Counts a broken channel and tells the agent, which ends it.
    fn broken(&self, kind: &'static str) -> &'static str {
        metrics::counter!("pqescape_channel_frame_errors_total", "kind" => kind).increment(1);
        tracing::warn!(error.kind = kind, "agent channel broken");
        if let Some(queue) = self.queue.upgrade() {
            let _ = queue.try_send(closing(Reason::Broken));
        }
        kind
    }
}

impl Inbound for FramedInbound {
    async fn next(&mut self) -> Result<Option<pb::AgentFrame>, &'static str> {
        if self.writer_gone {
            return Ok(None);
        }
        let read = tokio::time::timeout(IDLE_LIMIT, self.reader.next(&mut self.read));
        let bytes = tokio::select! {
            read = read => match read {
                Ok(Ok(Some(bytes))) => bytes,
                Ok(Ok(None)) => return Ok(None),
                // The agent went away without closing: a crash, a network gone.
                Ok(Err(FrameError::Io(e))) => {
                    tracing::debug!(error = %e, "agent channel read failed");
                    return Err("transport");
                }
                Ok(Err(e)) => return Err(self.broken(e.kind())),
                Err(_) => return Err(self.broken("idle")),
            },
            _ = &mut self.writer_ended => {
                self.writer_gone = true;
                return Ok(None);
            }
        };
        pb::AgentFrame::decode(bytes.as_slice()).map(Some).map_err(|_| self.broken("malformed"))
    }
}
