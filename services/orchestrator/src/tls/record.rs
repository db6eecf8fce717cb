//! The TLS 1.3 record layer of a framed agent channel once its handshake is done.
//!
//! An idle agent's channel is most of what the gateway holds, and rustls keeps a
//! 4 KiB read buffer, its connection state and the stream around it for as long as
//! a connection lives: more than half of an idle channel (docs/performance.md).
//! So once the handshake and the exporter binding are done, the gateway takes the
//! traffic keys out of rustls (the extraction kernel TLS uses) and drops the
//! connection. What is left per channel is the two AEAD keys, two sequence
//! numbers and the socket; a record's buffer lives only while the record is read
//! or written.
//!
//! The cryptography stays rustls's: sealing and opening, the nonce from the
//! sequence number, the additional data and the inner content type are its
//! `MessageEncrypter` and `MessageDecrypter` for the negotiated suite. This module
//! only cuts records out of the byte stream (RFC 8446 §5.1) and decides what each
//! content type means here:
//!
//! - application data is the channel's bytes;
//! - a close_notify alert ends the stream; any other alert fails it;
//! - post-handshake handshake messages fail the channel. A client sends one only
//!   to update its keys, which rustls does after millions of records; an agent's
//!   channel sends a heartbeat every 20 s, and a failed channel is reopened.
//!
//! The writer stops at the suite's confidentiality limit in the same way rather
//! than updating keys.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use rustls::crypto::cipher::{
    InboundOpaqueMessage, MessageDecrypter, MessageEncrypter, OutboundChunks, OutboundPlainMessage,
};
use rustls::{ConnectionTrafficSecrets, ContentType, ProtocolVersion, Tls13CipherSuite};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Bytes of a record header: type, legacy version, length.
pub const HEADER_LEN: usize = 5;

/// The longest record body TLS 1.3 allows: 2^14 bytes of plaintext plus 256.
pub const MAX_CIPHERTEXT: usize = (1 << 14) + 256;

/// The most plaintext one record carries.
const MAX_FRAGMENT: usize = 1 << 14;

/// Empty records accepted in a row; more is a peer wasting our time.
const MAX_EMPTY_RECORDS: u8 = 32;

/// The alert that ends a stream cleanly.
const CLOSE_NOTIFY: [u8; 2] = [1, 0];

/// A record the peer should not have sent, counted and turned into an I/O error.
fn refuse(kind: &'static str) -> io::Error {
    metrics::counter!("pqescape_channel_record_errors_total", "kind" => kind).increment(1);
    io::Error::new(io::ErrorKind::InvalidData, kind)
}

/// Builds the two directions of a connection from the keys rustls handed over;
/// `None` for keys of an AEAD this module does not know.
pub fn split<R, W>(
    suite: &'static Tls13CipherSuite,
    (tx_seq, tx): (u64, ConnectionTrafficSecrets),
    (rx_seq, rx): (u64, ConnectionTrafficSecrets),
    read: R,
    write: W,
) -> Option<(RecordReader<R>, RecordWriter<W>)> {
    let keys = |secrets| match secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv }
        | ConnectionTrafficSecrets::Aes256Gcm { key, iv }
        | ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => Some((key, iv)),
        // The enum is non-exhaustive; every TLS 1.3 suite rustls has is above.
        _ => None,
    };
    let (tx_key, tx_iv) = keys(tx)?;
    let (rx_key, rx_iv) = keys(rx)?;
    let reader = RecordReader {
        io: read,
        decrypter: suite.aead_alg.decrypter(rx_key, rx_iv),
        seq: rx_seq,
        leftover: Vec::new(),
        header: [0; HEADER_LEN],
        have: 0,
        body: Vec::new(),
        body_have: 0,
        plain: Vec::new(),
        taken: 0,
        empty_run: 0,
        closed: false,
    };
    let writer = RecordWriter {
        io: write,
        encrypter: suite.aead_alg.encrypter(tx_key, tx_iv),
        seq: tx_seq,
        limit: suite.common.confidentiality_limit,
        out: Vec::new(),
        written: 0,
        closing: false,
    };
    Some((reader, writer))
}

/// Reads a connection's records and hands out their application data.
///
/// Cancel-safe like any `AsyncRead`: a record half read stays here.
pub struct RecordReader<R> {
    io: R,
    decrypter: Box<dyn MessageDecrypter>,
    seq: u64,
    /// Ciphertext read past the handshake, taken before the socket.
    leftover: Vec<u8>,
    header: [u8; HEADER_LEN],
    have: usize,
    /// The body of the record being read, `body_have` bytes of it so far; empty
    /// between records.
    body: Vec<u8>,
    body_have: usize,
    /// Application data not yet handed out, from `taken` on.
    plain: Vec<u8>,
    taken: usize,
    empty_run: u8,
    closed: bool,
}

impl<R: AsyncRead + Unpin> RecordReader<R> {
    /// Starts with what the handshake read past its end: `plaintext` rustls had
    /// already opened, then `ciphertext` it never saw.
    pub fn with_pending(mut self, plaintext: Vec<u8>, ciphertext: Vec<u8>) -> Self {
        self.plain = plaintext;
        self.leftover = ciphertext;
        self
    }

    /// Fills `dst` from the leftover bytes, else the socket; `Ok(0)` at its end.
    fn poll_some(
        leftover: &mut Vec<u8>,
        io: &mut R,
        cx: &mut Context<'_>,
        dst: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        if !leftover.is_empty() {
            let n = dst.len().min(leftover.len());
            for (to, from) in dst.iter_mut().zip(leftover.drain(..n)) {
                *to = from;
            }
            if leftover.is_empty() {
                *leftover = Vec::new();
            }
            return Poll::Ready(Ok(n));
        }
        let mut buf = ReadBuf::new(dst);
        ready!(Pin::new(io).poll_read(cx, &mut buf))?;
        Poll::Ready(Ok(buf.filled().len()))
    }

    /// Reads and opens the next record; afterwards `plain` holds its data or
    /// `closed` is set.
    fn poll_record(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.have < HEADER_LEN {
            let dst = self.header.get_mut(self.have..).unwrap_or_default();
            match ready!(Self::poll_some(&mut self.leftover, &mut self.io, cx, dst))? {
                // Without close_notify the end may be an attacker's truncation.
                0 => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                n => self.have += n,
            }
        }
        let [kind, major, minor, hi, lo] = self.header;
        let len = usize::from(u16::from_be_bytes([hi, lo]));
        // Every protected record is application data on the outside (RFC 8446 §5.2).
        if kind != u8::from(ContentType::ApplicationData) || [major, minor] != [3, 3] {
            return Poll::Ready(Err(refuse("record_header")));
        }
        if len > MAX_CIPHERTEXT {
            return Poll::Ready(Err(refuse("record_too_large")));
        }
        if self.body.len() != len {
            // A new record; a half-read one already has its buffer.
            self.body = vec![0; len];
            self.body_have = 0;
        }
        while self.body_have < len {
            let dst = self.body.get_mut(self.body_have..).unwrap_or_default();
            match ready!(Self::poll_some(&mut self.leftover, &mut self.io, cx, dst))? {
                0 => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                n => self.body_have += n,
            }
        }
        (self.have, self.body_have) = (0, 0);
        let mut body = std::mem::take(&mut self.body);
        let record = InboundOpaqueMessage::new(
            ContentType::ApplicationData,
            ProtocolVersion::TLSv1_2,
            &mut body,
        );
        let seq = self.seq;
        self.seq = seq.checked_add(1).ok_or_else(|| refuse("sequence_exhausted"))?;
        let opened = self.decrypter.decrypt(record, seq).map_err(|_| refuse("record_mac"))?;
        let (typ, plain_len) = (opened.typ, opened.payload.len());
        // The plaintext is opened in place at the start of the body.
        body.truncate(plain_len);
        match typ {
            ContentType::ApplicationData if body.is_empty() => {
                self.empty_run += 1;
                if self.empty_run > MAX_EMPTY_RECORDS {
                    return Poll::Ready(Err(refuse("empty_records")));
                }
            }
            ContentType::ApplicationData => {
                self.empty_run = 0;
                self.plain = body;
                self.taken = 0;
            }
            ContentType::Alert if body == CLOSE_NOTIFY => self.closed = true,
            ContentType::Alert => return Poll::Ready(Err(refuse("alert"))),
            ContentType::Handshake => return Poll::Ready(Err(refuse("post_handshake_message"))),
            _ => return Poll::Ready(Err(refuse("record_type"))),
        }
        Poll::Ready(Ok(()))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for RecordReader<R> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.taken < this.plain.len() {
                let rest = this.plain.get(this.taken..).unwrap_or_default();
                let n = rest.len().min(buf.remaining());
                buf.put_slice(rest.get(..n).unwrap_or_default());
                this.taken += n;
                if this.taken == this.plain.len() {
                    // Between records the reader holds nothing.
                    this.plain = Vec::new();
                    this.taken = 0;
                }
                return Poll::Ready(Ok(()));
            }
            if this.closed {
                return Poll::Ready(Ok(()));
            }
            ready!(this.poll_record(cx))?;
        }
    }
}

/// Seals writes into records, one per write of up to 16 KiB.
pub struct RecordWriter<W> {
    io: W,
    encrypter: Box<dyn MessageEncrypter>,
    seq: u64,
    /// The suite's confidentiality limit: records this key may seal.
    limit: u64,
    /// Sealed records not yet on the socket, from `written` on.
    out: Vec<u8>,
    written: usize,
    closing: bool,
}

impl<W: AsyncWrite + Unpin> RecordWriter<W> {
    fn seal(&mut self, typ: ContentType, plaintext: &[u8]) -> io::Result<()> {
        if self.seq >= self.limit {
            return Err(refuse("confidentiality_limit"));
        }
        let message = OutboundPlainMessage {
            typ,
            version: ProtocolVersion::TLSv1_2,
            payload: OutboundChunks::Single(plaintext),
        };
        let sealed = self
            .encrypter
            .encrypt(message, self.seq)
            .map_err(|e| io::Error::other(e.to_string()))?;
        self.seq += 1;
        let record = sealed.encode();
        if self.out.is_empty() {
            self.out = record;
        } else {
            self.out.extend_from_slice(&record);
        }
        Ok(())
    }

    /// Writes the sealed records out; `out` is freed once it is all written.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.out.len() {
            let rest = self.out.get(self.written..).unwrap_or_default();
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, rest))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.out = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for RecordWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        let n = buf.len().min(MAX_FRAGMENT);
        this.seal(ContentType::ApplicationData, buf.get(..n).unwrap_or_default())?;
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_flush(cx)
    }

    /// close_notify, then the socket's own shutdown.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.closing {
            this.closing = true;
            this.seal(ContentType::Alert, &CLOSE_NOTIFY)?;
        }
        ready!(this.poll_drain(cx))?;
        Pin::new(&mut this.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_256_GCM_SHA384;
    use rustls::crypto::cipher::{AeadKey, Iv};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream, duplex};

    fn secrets() -> (u64, ConnectionTrafficSecrets) {
        let (key, iv) = (AeadKey::from([7u8; 32]), Iv::new([9u8; 12]));
        (0, ConnectionTrafficSecrets::Aes256Gcm { key, iv })
    }

    /// A writer and the reader at the other end of an in-memory pipe, both keyed
    /// for the same direction.
    fn pipe() -> (RecordWriter<DuplexStream>, RecordReader<DuplexStream>) {
        let suite = TLS13_AES_256_GCM_SHA384.tls13().unwrap();
        let (near, far) = duplex(1 << 20);
        let (_, writer) = split(suite, secrets(), secrets(), tokio::io::empty(), near).unwrap();
        let (reader, _) = split(suite, secrets(), secrets(), far, tokio::io::sink()).unwrap();
        (writer, reader)
    }

    /// Seals one record of `typ` and returns it, as a peer would put it on the wire.
    fn sealed(writer: &mut RecordWriter<DuplexStream>, typ: ContentType, body: &[u8]) -> Vec<u8> {
        writer.seal(typ, body).unwrap();
        std::mem::take(&mut writer.out)
    }

    async fn read_error(reader: &mut RecordReader<DuplexStream>) -> io::Error {
        let mut all = Vec::new();
        reader.read_to_end(&mut all).await.unwrap_err()
    }

    #[tokio::test]
    async fn bytes_come_through_in_records_and_close_notify_ends_the_stream() {
        let (mut writer, mut reader) = pipe();
        let message: Vec<u8> = (0..40_000u32).map(|i| i as u8).collect();
        writer.write_all(&message).await.unwrap();
        writer.write_all(b"").await.unwrap();
        writer.shutdown().await.unwrap();
        // 40,000 bytes take three records, the close_notify a fourth.
        assert_eq!(writer.seq, 4);
        assert!(writer.out.capacity() == 0, "the writer keeps no buffer once written");

        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, message);
        assert!(reader.closed && reader.plain.capacity() == 0 && reader.body.capacity() == 0);
    }

    #[tokio::test]
    async fn a_flipped_bit_a_replayed_record_or_a_stray_record_type_fails_the_stream() {
        type Attack = fn(&mut RecordWriter<DuplexStream>) -> Vec<u8>;
        let cases: [(&str, Attack); 5] = [
            ("record_mac", |w| {
                let mut r = sealed(w, ContentType::ApplicationData, b"hello");
                r[HEADER_LEN + 2] ^= 1;
                r
            }),
            ("record_mac", |w| {
                let r = sealed(w, ContentType::ApplicationData, b"once");
                [r.clone(), r].concat()
            }),
            ("post_handshake_message", |w| sealed(w, ContentType::Handshake, &[24, 0, 0, 1, 0])),
            ("alert", |w| sealed(w, ContentType::Alert, &[2, 40])),
            ("record_header", |_| vec![22, 3, 3, 0, 4, 1, 2, 3, 4]),
        ];
        for (want, make) in cases {
            let (mut writer, mut reader) = pipe();
            let wire = make(&mut writer);
            writer.io.write_all(&wire).await.unwrap();
            let err = read_error(&mut reader).await;
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{want}: {err}");
            assert_eq!(err.to_string(), want);
        }
    }

    #[tokio::test]
    async fn an_oversized_length_is_refused_before_anything_is_allocated() {
        let (mut writer, mut reader) = pipe();
        let len = (MAX_CIPHERTEXT as u16 + 1).to_be_bytes();
        writer.io.write_all(&[23, 3, 3, len[0], len[1]]).await.unwrap();
        assert_eq!(read_error(&mut reader).await.to_string(), "record_too_large");
        assert_eq!(reader.body.capacity(), 0);
    }

    #[tokio::test]
    async fn a_stream_cut_without_close_notify_is_an_unexpected_end() {
        let (mut writer, mut reader) = pipe();
        let record = sealed(&mut writer, ContentType::ApplicationData, b"cut short");
        writer.io.write_all(&record[..record.len() - 3]).await.unwrap();
        drop(writer);
        assert_eq!(read_error(&mut reader).await.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn what_the_handshake_read_ahead_comes_first_in_order() {
        let (mut writer, reader) = pipe();
        let second = sealed(&mut writer, ContentType::ApplicationData, b"second ");
        let third = sealed(&mut writer, ContentType::ApplicationData, b"third");
        // Half of the second record was read past the handshake; the rest follows.
        let (ahead, behind) = second.split_at(9);
        writer.io.write_all(behind).await.unwrap();
        writer.io.write_all(&third).await.unwrap();
        writer.shutdown().await.unwrap();
        let mut reader = reader.with_pending(b"first ".to_vec(), ahead.to_vec());
        let mut got = Vec::new();
        reader.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"first second third");
    }

    #[tokio::test]
    async fn the_writer_stops_at_the_confidentiality_limit() {
        let (mut writer, _reader) = pipe();
        writer.limit = 2;
        writer.write_all(b"one").await.unwrap();
        writer.write_all(b"two").await.unwrap();
        let err = writer.write_all(b"three").await.unwrap_err();
        assert_eq!(err.to_string(), "confidentiality_limit");
    }
}
