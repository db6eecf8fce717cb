//! The TCP stream under a gateway handshake, handed to rustls one whole record at a
//! time.
//!
//! A framed connection leaves rustls once its handshake is done
//! ([`super::record`]), and whatever the client sent after its Finished must come
//! along. tokio-rustls keeps reading after the handshake for as long as the socket
//! has bytes, so the client's first records can already be inside rustls by then.
//! Whole records can be taken back out as plaintext; half a record cannot. This
//! reader therefore gives rustls a record only once all of it has arrived, so it
//! returns `Pending` at record boundaries only, and what it read past the last
//! record it gave stays here for the record layer.
//!
//! gRPC connections stay on rustls: [`RecordAligned::release`] turns the reader
//! into a plain pass-through once their handshake is done.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::record::{HEADER_LEN, MAX_CIPHERTEXT};

/// A TCP stream that hands out whole TLS records until released.
pub struct RecordAligned {
    tcp: TcpStream,
    /// Bytes read from the socket and not yet handed out.
    held: Vec<u8>,
    /// Bytes of the record at the front of `held` that are still to be handed out;
    /// zero between records.
    record_left: usize,
    released: bool,
}

impl RecordAligned {
    pub fn new(tcp: TcpStream) -> Self {
        Self { tcp, held: Vec::new(), record_left: 0, released: false }
    }

    /// From now on, bytes pass through as they come (what is held first).
    pub fn release(&mut self) {
        self.released = true;
    }

    /// The socket and the bytes read from it that nobody has taken.
    pub fn into_parts(self) -> (TcpStream, Vec<u8>) {
        (self.tcp, self.held)
    }

    /// Reads what the socket has into `held`; `Ok(0)` at its end.
    fn poll_fill(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<usize>> {
        let mut chunk = [0u8; 4096];
        let mut buf = ReadBuf::new(&mut chunk);
        ready!(Pin::new(&mut self.tcp).poll_read(cx, &mut buf))?;
        self.held.extend_from_slice(buf.filled());
        Poll::Ready(Ok(buf.filled().len()))
    }

    /// Moves up to `limit` held bytes into `buf`, freeing `held` once it is empty.
    fn hand_out(&mut self, buf: &mut ReadBuf<'_>, limit: usize) -> usize {
        let n = limit.min(buf.remaining()).min(self.held.len());
        buf.put_slice(self.held.get(..n).unwrap_or_default());
        self.held.drain(..n);
        if self.held.is_empty() {
            self.held = Vec::new();
        }
        n
    }
}

/// The whole length of the record whose header starts `held`, once the header is
/// there. Lengths beyond TLS's are handed on as they are: rustls refuses them.
fn record_len(held: &[u8]) -> Option<usize> {
    let [_, _, _, hi, lo] = *held.first_chunk::<HEADER_LEN>()?;
    let len = usize::from(u16::from_be_bytes([hi, lo]));
    Some(HEADER_LEN + len.min(MAX_CIPHERTEXT + 1))
}

impl AsyncRead for RecordAligned {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.released {
            if !this.held.is_empty() {
                this.hand_out(buf, usize::MAX);
                return Poll::Ready(Ok(()));
            }
            return Pin::new(&mut this.tcp).poll_read(cx, buf);
        }
        if this.record_left == 0 {
            loop {
                match record_len(&this.held) {
                    Some(len) if this.held.len() >= len => {
                        this.record_left = len;
                        break;
                    }
                    _ => {
                        if ready!(this.poll_fill(cx))? == 0 {
                            // The client went away inside a record: rustls reports it.
                            this.hand_out(buf, usize::MAX);
                            return Poll::Ready(Ok(()));
                        }
                    }
                }
            }
        }
        let limit = this.record_left;
        this.record_left -= this.hand_out(buf, limit);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for RecordAligned {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn record(body_len: usize, fill: u8) -> Vec<u8> {
        let mut r = vec![23, 3, 3];
        r.extend_from_slice(&(body_len as u16).to_be_bytes());
        r.extend(std::iter::repeat_n(fill, body_len));
        r
    }

    async fn pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
        (client.unwrap(), server.unwrap().0)
    }

    #[tokio::test]
    async fn a_record_is_handed_out_only_once_it_is_whole_and_never_with_the_next() {
        let (mut client, server) = pair().await;
        let mut aligned = RecordAligned::new(server);
        let (first, second) = (record(300, 1), record(5000, 2));
        // The first record and half the second arrive in one write.
        let mut wire = first.clone();
        wire.extend_from_slice(&second[..2000]);
        client.write_all(&wire).await.unwrap();

        let mut got = vec![0u8; 8192];
        let n = aligned.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], &first[..], "exactly the first record");
        // Half a record: nothing is handed out, the rest stays held.
        let waiting =
            tokio::time::timeout(std::time::Duration::from_millis(100), aligned.read(&mut got));
        assert!(waiting.await.is_err(), "half a record was handed out");
        assert_eq!(aligned.held.len(), 2000);

        client.write_all(&second[2000..]).await.unwrap();
        let mut whole = Vec::new();
        while whole.len() < second.len() {
            let n = aligned.read(&mut got).await.unwrap();
            whole.extend_from_slice(&got[..n]);
        }
        assert_eq!(whole, second);
        assert!(aligned.held.is_empty() && aligned.held.capacity() == 0);
    }

    #[tokio::test]
    async fn released_it_hands_out_what_it_holds_then_the_socket() {
        let (mut client, server) = pair().await;
        let mut aligned = RecordAligned::new(server);
        let first = record(10, 1);
        let mut wire = first.clone();
        wire.extend_from_slice(b"\x17\x03");
        client.write_all(&wire).await.unwrap();
        let mut got = vec![0u8; 64];
        assert_eq!(aligned.read(&mut got).await.unwrap(), first.len());

        aligned.release();
        client.write_all(b"rest").await.unwrap();
        let mut after = Vec::new();
        while after.len() < 6 {
            let n = aligned.read(&mut got).await.unwrap();
            after.extend_from_slice(&got[..n]);
        }
        assert_eq!(after, b"\x17\x03rest");
    }

    #[tokio::test]
    async fn what_was_read_past_the_last_record_handed_out_stays_for_the_next_owner() {
        let (mut client, server) = pair().await;
        let mut aligned = RecordAligned::new(server);
        let first = record(20, 1);
        let mut wire = first.clone();
        wire.extend_from_slice(&record(40, 2)[..30]);
        client.write_all(&wire).await.unwrap();
        let mut got = vec![0u8; 64];
        assert_eq!(aligned.read(&mut got).await.unwrap(), first.len());
        // Give the rest time to land in `held` on a later read attempt.
        let _ = tokio::time::timeout(std::time::Duration::from_millis(50), aligned.read(&mut got))
            .await;
        let (_tcp, held) = aligned.into_parts();
        assert_eq!(held, record(40, 2)[..30]);
    }
}
