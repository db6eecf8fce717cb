//! Framing of the agent channel on its TLS stream (protocol.md §8.5).
//!
//! An agent that negotiates the ALPN protocol [`ALPN`] speaks no HTTP/2: each side
//! writes frames, a 4-byte big-endian length and then that many bytes of protobuf
//! (`AgentFrame` from the agent, `GatewayFrame` from the gateway, proto/agent.proto).
//!
//! The reason is memory. A fleet holds its channels open for months and sends a
//! handful of messages over each, but an HTTP/2 connection keeps about 30 KiB of
//! buffers that h2 allocates when it starts and never gives back
//! (docs/performance.md). Here nothing is kept between frames: [`FrameReader`] lets
//! go of its buffer as soon as a frame is taken, and a frame is written in one call,
//! so TLS seals it as one record.
//!
//! The crate knows bytes only; encoding the protobuf is the caller's.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The ALPN protocol name of the framed agent channel.
pub const ALPN: &[u8] = b"pqescape/1";

/// Bytes of the length prefix.
pub const HEADER: usize = 4;

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The prefix announced more than the reader accepts; nothing was allocated.
    #[error("a frame of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The announced length.
        len: usize,
        /// The reader's limit.
        max: usize,
    },
    /// The stream ended inside a frame.
    #[error("the stream ended inside a frame")]
    Truncated,
    /// The stream failed.
    #[error("transport: {0}")]
    Io(#[from] io::Error),
}

impl FrameError {
    /// A closed set of names, for logs and metric labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::TooLarge { .. } => "frame_too_large",
            Self::Truncated => "truncated",
            Self::Io(_) => "transport",
        }
    }
}

/// Reads frames of at most `max` bytes; cancel-safe, so it can sit in a
/// `tokio::select!` beside timers and queues without losing bytes.
///
/// The prefix is read into the reader itself and the body into a buffer of its
/// exact length, handed out whole: a reader waiting for its next frame holds no
/// heap memory.
#[derive(Debug)]
pub struct FrameReader {
    header: [u8; HEADER],
    have: usize,
    body: Vec<u8>,
    max: usize,
}

impl FrameReader {
    /// A reader that refuses frames longer than `max` bytes.
    pub fn new(max: usize) -> Self {
        Self { header: [0; HEADER], have: 0, body: Vec::new(), max }
    }

    /// The next frame's body; `Ok(None)` when the stream ended between frames.
    ///
    /// Cancel-safe: whatever was read before a cancellation stays buffered for the
    /// next call.
    pub async fn next<R: AsyncRead + Unpin + ?Sized>(
        &mut self,
        io: &mut R,
    ) -> Result<Option<Vec<u8>>, FrameError> {
        // `read` and `read_buf` are cancel-safe: what they read is stored when they
        // return, and nothing is read when they are dropped before.
        while let Some(rest) = self.header.get_mut(self.have..).filter(|r| !r.is_empty()) {
            match io.read(rest).await? {
                0 if self.have == 0 => return Ok(None),
                0 => return Err(FrameError::Truncated),
                n => self.have += n,
            }
        }
        let len = u32::from_be_bytes(self.header) as usize;
        if len > self.max {
            return Err(FrameError::TooLarge { len, max: self.max });
        }
        if self.body.capacity() < len {
            self.body.reserve_exact(len);
        }
        while let Some(lacking) = len.checked_sub(self.body.len()).filter(|n| *n > 0) {
            // Limited to this frame: what follows belongs to the next one.
            if (&mut *io).take(lacking as u64).read_buf(&mut self.body).await? == 0 {
                return Err(FrameError::Truncated);
            }
        }
        self.have = 0;
        Ok(Some(std::mem::take(&mut self.body)))
    }

    /// Bytes held for a frame not yet complete.
    pub fn buffered(&self) -> usize {
        self.have + self.body.len()
    }
}

/// Writes `body` as one frame and flushes it.
pub async fn write_frame<W: AsyncWrite + Unpin + ?Sized>(
    io: &mut W,
    body: &[u8],
) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    // One write, so that TLS seals header and body in a single record.
    let mut frame = Vec::with_capacity(HEADER + body.len());
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(body);
    io.write_all(&frame).await?;
    io.flush().await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::time::Duration;

    fn framed(body: &[u8]) -> Vec<u8> {
        let mut v = (body.len() as u32).to_be_bytes().to_vec();
        v.extend_from_slice(body);
        v
    }

    #[tokio::test]
    async fn frames_come_back_whole_however_the_bytes_are_cut() {
        let bodies: Vec<Vec<u8>> =
            vec![b"one".to_vec(), Vec::new(), vec![7u8; 5000], b"last".to_vec()];
        let wire: Vec<u8> = bodies.iter().flat_map(|b| framed(b)).collect();
        for cut in [1usize, 3, 4, 5, 64, 4099] {
            let (mut client, mut server) = tokio::io::duplex(cut);
            let sending = wire.clone();
            let writer = tokio::spawn(async move {
                for chunk in sending.chunks(cut) {
                    client.write_all(chunk).await.unwrap();
                }
            });
            let mut reader = FrameReader::new(8192);
            for body in &bodies {
                assert_eq!(
                    reader.next(&mut server).await.unwrap().as_ref(),
                    Some(body),
                    "cut {cut}"
                );
            }
            writer.await.unwrap();
            assert!(reader.next(&mut server).await.unwrap().is_none(), "clean end");
            assert_eq!(reader.body.capacity(), 0, "nothing is kept between frames");
        }
    }

    #[tokio::test]
    async fn write_frame_is_what_the_reader_reads() {
        let (mut client, mut server) = tokio::io::duplex(1024);
        write_frame(&mut client, b"hello").await.unwrap();
        write_frame(&mut client, &[]).await.unwrap();
        drop(client);
        let mut reader = FrameReader::new(16);
        assert_eq!(reader.next(&mut server).await.unwrap().unwrap(), b"hello");
        assert_eq!(reader.next(&mut server).await.unwrap().unwrap(), b"");
        assert!(reader.next(&mut server).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn an_oversized_prefix_is_refused_before_anything_is_allocated() {
        let wire = u32::MAX.to_be_bytes();
        let mut reader = FrameReader::new(16 * 1024);
        let err = reader.next(&mut &wire[..]).await.unwrap_err();
        assert!(
            matches!(err, FrameError::TooLarge { len, max: 16384 } if len == u32::MAX as usize)
        );
        assert_eq!(err.kind(), "frame_too_large");
        assert_eq!(reader.body.capacity(), 0);
    }

    #[tokio::test]
    async fn a_stream_that_ends_inside_a_frame_is_truncated() {
        for wire in [vec![0u8, 0], framed(b"abcdef")[..7].to_vec()] {
            let err = FrameReader::new(64).next(&mut &wire[..]).await.unwrap_err();
            assert!(matches!(err, FrameError::Truncated), "{err}");
        }
    }

    #[tokio::test]
    async fn a_cancelled_read_loses_no_bytes() {
        let (mut client, mut server) = tokio::io::duplex(64);
        let mut reader = FrameReader::new(64);
        let wire = framed(b"split across a cancellation");
        client.write_all(&wire[..10]).await.unwrap();
        let first = tokio::time::timeout(Duration::from_millis(50), reader.next(&mut server)).await;
        assert!(first.is_err(), "incomplete: the read waits and is cancelled");
        assert_eq!(reader.buffered(), 10);
        client.write_all(&wire[10..]).await.unwrap();
        let frame = reader.next(&mut server).await.unwrap().unwrap();
        assert_eq!(frame, b"split across a cancellation");
    }
}
