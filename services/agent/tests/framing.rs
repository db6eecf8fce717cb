//! The framed channel (ALPN pqescape/1) as a peer that is not the agent sees it:
//! each way of breaking it ends the channel with a closing frame that says why,
//! and leaves the consumer's registration as it should be.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::time::Duration;

use pqescape_agent::gateway::pb;
use pqescape_agent::tls::{self, Groups};
use pqescape_frames::{FrameReader, write_frame};
use pqescape_message::channel::seal_hello;
use pqescape_message::secret::SecretKey;
use pqescape_message::types::ConsumerId;
use prost::Message;
use support::*;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use pb::closing::Reason;
use pb::gateway_frame::Frame;

/// A raw framed connection and what its TLS session settled.
struct Raw {
    stream: TlsStream<TcpStream>,
    frames: FrameReader,
    binding: [u8; 32],
}

impl Raw {
    async fn open(f: &Fixture) -> Self {
        let (stream, session) =
            tls::open_channel(&f.gateway, &f.ca_file, Groups::Classical, Duration::from_secs(5))
                .await
                .unwrap();
        Self { stream, frames: FrameReader::new(64 * 1024), binding: session.binding }
    }

    async fn recv(&mut self) -> Option<Frame> {
        let next = self.frames.next(&mut self.stream);
        let bytes = tokio::time::timeout(Duration::from_secs(10), next).await.unwrap().unwrap()?;
        pb::GatewayFrame::decode(bytes.as_slice()).unwrap().frame
    }

    async fn challenge(&mut self) -> [u8; 16] {
        match self.recv().await {
            Some(Frame::Challenge(c)) => c.try_into().unwrap(),
            other => panic!("no challenge: {other:?}"),
        }
    }

    async fn send_message(&mut self, message: Vec<u8>) {
        let frame = pb::AgentFrame { frame: Some(pb::agent_frame::Frame::Message(message)) };
        write_frame(&mut self.stream, &frame.encode_to_vec()).await.unwrap();
    }

    /// Answers the challenge with a hello under `psk`.
    async fn hello(&mut self, consumer: &str, psk: [u8; 32]) {
        let challenge = self.challenge().await;
        let uuid: [u8; 16] = hex::decode(consumer.replace('-', "")).unwrap().try_into().unwrap();
        let psk = SecretKey::from_bytes(psk);
        let hello = seal_hello(ConsumerId(uuid), 1, &psk, challenge, "raw", &self.binding).unwrap();
        self.send_message(hello).await;
    }

    /// The closing frame, then the end of the stream.
    async fn closed_with(&mut self) -> Reason {
        let reason = match self.recv().await {
            Some(Frame::Closing(c)) => c.reason(),
            other => panic!("no closing frame: {other:?}"),
        };
        assert!(self.recv().await.is_none(), "the stream ends after the closing frame");
        reason
    }
}

async fn enrolled(f: &Fixture, name: &str) -> (String, [u8; 32]) {
    let (id, token) = f.register(name).await;
    let state = f.dir.join(name);
    assert!(f.agent(&state, &["enroll"], Some(&token)).await.status.success());
    let psk = hex::decode(stored_psk(&state)).unwrap().try_into().unwrap();
    (id, psk)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hello_under_the_wrong_psk_is_refused_in_a_closing_frame() {
    let f = fixture().await;
    let (id, _) = enrolled(&f, "wrong-psk").await;
    let mut raw = Raw::open(&f).await;
    raw.hello(&id, [0x11; 32]).await;
    assert_eq!(raw.closed_with().await, Reason::Refused);
    assert!(!f.orchestrator.connections().is_connected(&id));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_silly_length_prefix_breaks_the_channel_before_anything_is_read() {
    let f = fixture().await;
    let (id, psk) = enrolled(&f, "huge-frame").await;
    let mut raw = Raw::open(&f).await;
    raw.hello(&id, psk).await;
    eventually("the channel is up", async || f.orchestrator.connections().is_connected(&id)).await;
    // Four gigabytes announced, none sent: the gateway must not wait for them.
    use tokio::io::AsyncWriteExt;
    raw.stream.write_all(&u32::MAX.to_be_bytes()).await.unwrap();
    raw.stream.flush().await.unwrap();
    assert_eq!(raw.closed_with().await, Reason::Broken);
    eventually("the channel is gone", async || !f.orchestrator.connections().is_connected(&id))
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frame_that_is_not_protobuf_breaks_the_channel() {
    let f = fixture().await;
    let (id, _) = enrolled(&f, "garbage").await;
    let mut raw = Raw::open(&f).await;
    raw.challenge().await;
    // A field tag with wire type 7, which protobuf does not have.
    write_frame(&mut raw.stream, &[0x0f, 0xff, 0xff]).await.unwrap();
    assert_eq!(raw.closed_with().await, Reason::Broken);
    assert!(!f.orchestrator.connections().is_connected(&id));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_channel_replaces_the_older_one_which_is_told_so() {
    let f = fixture().await;
    let (id, psk) = enrolled(&f, "twice").await;
    let mut first = Raw::open(&f).await;
    first.hello(&id, psk).await;
    eventually("the first channel is up", async || f.orchestrator.connections().is_connected(&id))
        .await;
    let mut second = Raw::open(&f).await;
    second.hello(&id, psk).await;
    assert_eq!(first.closed_with().await, Reason::Replaced);
    // The second one stays: a heartbeat goes through and it is still registered.
    let beat = pb::AgentFrame { frame: Some(pb::agent_frame::Frame::Heartbeat(pb::Heartbeat {})) };
    write_frame(&mut second.stream, &beat.encode_to_vec()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(f.orchestrator.connections().is_connected(&id));
}
