//! TLS 1.3 on the agent gateway (protocol.md §8.4).
//!
//! The gateway offers the hybrid group X25519MLKEM768 first and still accepts the
//! classical X25519 and P-256: before its escape an agent connects the classical
//! way, which is the channel the escape travels on. What each connection
//! negotiated travels with its requests as [`ChannelSecurity`], so the gateway can
//! refuse classical-only channels from consumers that have migrated, and check the
//! channel hello's MAC over this session's exporter value.
//!
//! Certificates come from the operator (`agent_tls_cert`, `agent_tls_key`), or, on
//! a first run without them, are generated into the data directory: a private CA
//! whose key is discarded once it has signed the gateway's certificate, so the CA
//! file (`ca.pem`) is all an agent needs to trust.
//!
//! A framed connection leaves rustls after its handshake for the gateway's own
//! record layer ([`record`]), which holds far less per idle channel; gRPC
//! connections stay on rustls.

mod aligned;
pub mod record;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use pqescape_message::channel::{TLS_BINDING_LABEL, TLS_BINDING_LEN};
use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{NamedGroup, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;

use self::aligned::RecordAligned;
use self::record::{RecordReader, RecordWriter};

/// How long a client has to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Directory, under the data directory, of generated certificates.
pub const GENERATED_DIR: &str = "gateway-tls";

/// A TLS problem at start-up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A certificate or key file could not be read or parsed.
    #[error("{path}: {detail}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// Generating a certificate failed.
    #[error("generating the gateway certificate: {0}")]
    Generate(String),
}

/// What the TLS handshake of one gateway connection settled.
#[derive(Clone, Debug)]
pub struct ChannelSecurity {
    /// Name of the negotiated key exchange group, e.g. `X25519MLKEM768`.
    pub key_exchange: &'static str,
    /// Whether that group resists a quantum attacker (a hybrid with ML-KEM).
    pub post_quantum: bool,
    /// This session's exporter value under `TLS_BINDING_LABEL`; public.
    pub binding: [u8; TLS_BINDING_LEN],
    /// The client's address.
    pub peer: SocketAddr,
}

/// The gateway's TLS acceptor and, when generated, the CA agents must trust.
#[derive(Clone)]
pub struct GatewayTls {
    acceptor: TlsAcceptor,
    ca_file: Option<PathBuf>,
}

impl GatewayTls {
    /// From the operator's PEM certificate chain and private key.
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let file_error = |path: &Path, e: &dyn std::fmt::Display| TlsError::File {
            path: path.into(),
            detail: e.to_string(),
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| file_error(cert, &e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_error(cert, &e))?;
        if chain.is_empty() {
            return Err(file_error(cert, &"no certificate in the file"));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, &e))?;
        Ok(Self { acceptor: acceptor(chain, key)?, ca_file: None })
    }

    /// The generated certificate under `data_dir`, made on the first call: valid
    /// for `localhost`, the loopback addresses, this host's name and `names`.
    pub fn load_or_generate(data_dir: &Path, names: &[String]) -> Result<Self, TlsError> {
        let dir = data_dir.join(GENERATED_DIR);
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        if !cert.exists() || !key.exists() {
            generate(&dir, names)?;
            tracing::warn!(
                ca = %dir.join("ca.pem").display(),
                "generated a private CA and a certificate for the agent gateway; give agents the CA file, or configure agent_tls_cert and agent_tls_key"
            );
        }
        let mut tls = Self::from_files(&cert, &key)?;
        tls.ca_file = Some(dir.join("ca.pem"));
        Ok(tls)
    }

    /// The generated CA file agents must trust, when the certificate was generated.
    pub fn ca_file(&self) -> Option<&Path> {
        self.ca_file.as_deref()
    }

    /// Accepts on `listener` and yields connections whose TLS handshake finished,
    /// sorted by the transport their ALPN protocol chose. Handshakes run
    /// concurrently, each under [`HANDSHAKE_TIMEOUT`], so a slow or silent client
    /// holds up nobody. Stops when the gRPC stream is dropped.
    pub fn incoming(&self, listener: TcpListener) -> Incoming {
        let (tx, rx) = mpsc::channel(256);
        let (framed_tx, framed) = mpsc::channel(256);
        let acceptor = self.acceptor.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    accepted = listener.accept() => accepted,
                    () = tx.closed() => return,
                };
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: wait rather than spin.
                        tracing::warn!(error = %e, "agent gateway accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx, framed_tx) = (acceptor.clone(), tx.clone(), framed_tx.clone());
                tokio::spawn(async move {
                    let handshake = acceptor.accept(RecordAligned::new(tcp));
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(stream)) => match TlsChannel::new(stream, peer) {
                            Some(channel) if channel.framed => match channel.into_framed() {
                                Some(channel) => {
                                    let _ = framed_tx.send(channel).await;
                                }
                                None => failure("extract"),
                            },
                            Some(mut channel) => {
                                channel.stream.get_mut().0.release();
                                let _ = tx.send(Ok(channel)).await;
                            }
                            None => failure("exporter"),
                        },
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, peer = %peer, "TLS handshake failed");
                            failure("handshake");
                        }
                        Err(_) => failure("timeout"),
                    }
                });
            }
        });
        Incoming { grpc: ReceiverStream::new(rx), framed }
    }
}

/// The gateway's connections after their TLS handshake, by transport.
pub struct Incoming {
    /// ALPN `h2`, or none: served by tonic.
    pub grpc: ReceiverStream<io::Result<TlsChannel>>,
    /// ALPN `pqescape/1`: served by [`crate::gateway::framed`].
    pub framed: mpsc::Receiver<FramedChannel>,
}

fn failure(kind: &'static str) {
    metrics::counter!("pqescape_gateway_tls_failures_total", "kind" => kind).increment(1);
}

/// The groups the gateway accepts, hybrid first.
fn acceptor(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<TlsAcceptor, TlsError> {
    let mut provider = default_provider();
    provider.kx_groups = vec![kx_group::X25519MLKEM768, kx_group::X25519, kx_group::SECP256R1];
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    // The framed channel of pqescape agents first, gRPC for everything else.
    config.alpn_protocols = vec![pqescape_frames::ALPN.to_vec(), b"h2".to_vec()];
    // No session resumption: an agent connects with a fresh client configuration
    // each time (its trust anchors re-read from its CA file), so a ticket would
    // never be used, and issuing the default two per connection costs both sides
    // work on every reconnection of a fleet.
    config.send_tls13_tickets = 0;
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    // Framed connections continue on the gateway's record layer (`record`).
    config.enable_secret_extraction = true;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Writes `ca.pem`, `cert.pem` and `key.pem` (mode 0600) into `dir`.
fn generate(dir: &Path, names: &[String]) -> Result<(), TlsError> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    let fail = |e: &dyn std::fmt::Display| TlsError::Generate(e.to_string());
    let (not_before, not_after) = validity();

    let ca_key = KeyPair::generate().map_err(|e| fail(&e))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| fail(&e))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.distinguished_name.push(DnType::CommonName, "pqescape agent gateway CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    (ca.not_before, ca.not_after) = (not_before, not_after);
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| fail(&e))?;

    let mut sans = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        sans.push(host.trim().to_owned());
    }
    sans.extend(names.iter().cloned());
    sans.retain(|s| !s.is_empty());
    sans.dedup();
    let leaf_key = KeyPair::generate().map_err(|e| fail(&e))?;
    let mut leaf = CertificateParams::new(sans).map_err(|e| fail(&e))?;
    leaf.distinguished_name.push(DnType::CommonName, "pqescape agent gateway");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    (leaf.not_before, leaf.not_after) = (not_before, not_after);
    let issuer = Issuer::new(ca, ca_key);
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(|e| fail(&e))?;

    let write = |name: &str, text: String, mode: u32| {
        let path = dir.join(name);
        write_file(&path, text.as_bytes(), mode)
            .map_err(|e| TlsError::File { path, detail: e.to_string() })
    };
    std::fs::create_dir_all(dir)
        .map_err(|e| TlsError::File { path: dir.into(), detail: e.to_string() })?;
    write("key.pem", leaf_key.serialize_pem(), 0o600)?;
    write("cert.pem", leaf_cert.pem(), 0o644)?;
    write("ca.pem", ca_cert.pem(), 0o644)
}

/// From yesterday (clock skew) to five years ahead.
fn validity() -> (time::OffsetDateTime, time::OffsetDateTime) {
    let now = time::OffsetDateTime::now_utc();
    (now - time::Duration::days(1), now + time::Duration::days(5 * 365))
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// One gateway connection after its TLS handshake.
pub struct TlsChannel {
    stream: TlsStream<RecordAligned>,
    security: ChannelSecurity,
    framed: bool,
}

impl TlsChannel {
    fn new(stream: TlsStream<RecordAligned>, peer: SocketAddr) -> Option<Self> {
        let connection = stream.get_ref().1;
        let group = connection.negotiated_key_exchange_group()?.name();
        let binding = connection
            .export_keying_material([0u8; TLS_BINDING_LEN], TLS_BINDING_LABEL, None)
            .ok()?;
        let (key_exchange, post_quantum) = group_name(group);
        let framed = connection.alpn_protocol() == Some(pqescape_frames::ALPN);
        metrics::counter!("pqescape_gateway_tls_handshakes_total", "group" => key_exchange)
            .increment(1);
        Some(Self {
            stream,
            security: ChannelSecurity { key_exchange, post_quantum, binding, peer },
            framed,
        })
    }

    /// What the TLS handshake settled.
    pub fn security(&self) -> &ChannelSecurity {
        &self.security
    }

    /// The connection on the gateway's record layer, with rustls dropped; `None`
    /// when rustls cannot hand its keys over.
    fn into_framed(self) -> Option<FramedChannel> {
        use std::io::Read;
        let (aligned, mut connection) = self.stream.into_inner();
        let suite = connection.negotiated_cipher_suite()?.tls13()?;
        // Whole records the client sent after its Finished, already opened.
        let mut plaintext = Vec::new();
        match connection.reader().read_to_end(&mut plaintext) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // Closed already, or broken: nothing to serve.
            _ => return None,
        }
        let secrets = connection.dangerous_extract_secrets().ok()?;
        // aws-lc's TLS 1.3 sealing key takes its first record's sequence number
        // as zero; the gateway sends nothing before this point (no tickets).
        if secrets.tx.0 != 0 {
            return None;
        }
        let (tcp, ciphertext) = aligned.into_parts();
        let (read, write) = tcp.into_split();
        let (reader, writer) = record::split(suite, secrets.tx, secrets.rx, read, write)?;
        Some(FramedChannel {
            reader: reader.with_pending(plaintext, ciphertext),
            writer,
            security: self.security,
        })
    }
}

/// A framed connection after its handshake, on the gateway's record layer.
pub struct FramedChannel {
    /// Application data from the agent.
    pub reader: RecordReader<OwnedReadHalf>,
    /// Application data to the agent.
    pub writer: RecordWriter<OwnedWriteHalf>,
    /// What the TLS handshake settled.
    pub security: ChannelSecurity,
}

/// A closed set of names, for logs and metric labels.
fn group_name(group: NamedGroup) -> (&'static str, bool) {
    match group {
        NamedGroup::X25519MLKEM768 => ("X25519MLKEM768", true),
        NamedGroup::X25519 => ("x25519", false),
        NamedGroup::secp256r1 => ("secp256r1", false),
        _ => ("other", false),
    }
}

impl tonic::transport::server::Connected for TlsChannel {
    type ConnectInfo = ChannelSecurity;

    fn connect_info(&self) -> ChannelSecurity {
        self.security.clone()
    }
}

impl AsyncRead for TlsChannel {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsChannel {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_certificate_is_written_once_with_a_private_key() {
        let dir = std::env::temp_dir().join(format!("pqescape-tls-{}", std::process::id()));
        let first = GatewayTls::load_or_generate(&dir, &["gateway.example".into()]).unwrap();
        let ca = std::fs::read(first.ca_file().unwrap()).unwrap();
        let key = dir.join(GENERATED_DIR).join("key.pem");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(std::fs::metadata(&key).unwrap().permissions().mode() & 0o777, 0o600);
        // A second start reuses the files rather than minting a new CA.
        let second = GatewayTls::load_or_generate(&dir, &[]).unwrap();
        assert_eq!(std::fs::read(second.ca_file().unwrap()).unwrap(), ca);
        assert!(
            !std::fs::read_to_string(dir.join(GENERATED_DIR).join("ca.pem"))
                .unwrap()
                .contains("PRIVATE")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_gateway_issues_no_session_tickets() {
        use rustls::client::{ClientSessionMemoryCache, ClientSessionStore, Resumption};
        use rustls::pki_types::ServerName;
        let dir = std::env::temp_dir().join(format!("pqescape-tickets-{}", std::process::id()));
        let tls = GatewayTls::load_or_generate(&dir, &[]).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(tls.ca_file().unwrap()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let tickets = Arc::new(ClientSessionMemoryCache::new(8));
        let mut client_config =
            rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth();
        client_config.resumption = Resumption::store(tickets.clone());
        let name = ServerName::try_from("localhost").unwrap();
        let mut client =
            rustls::ClientConnection::new(Arc::new(client_config), name.clone()).unwrap();
        let mut server = rustls::ServerConnection::new(tls.acceptor.config().clone()).unwrap();
        // The two sides in memory, until neither has anything left to send.
        for _ in 0..10 {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.read_tls(&mut wire.as_slice()).unwrap();
            server.process_new_packets().unwrap();
            let mut wire = Vec::new();
            server.write_tls(&mut wire).unwrap();
            client.read_tls(&mut wire.as_slice()).unwrap();
            client.process_new_packets().unwrap();
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
        assert!(tickets.take_tls13_ticket(&name).is_none(), "a ticket no agent would use");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A rustls client trusting the generated CA in `dir`.
    fn client_for(tls: &GatewayTls, alpn: &[u8]) -> rustls::ClientConnection {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(tls.ca_file().unwrap()).unwrap() {
            roots.add(cert.unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(default_provider()))
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![alpn.to_vec()];
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        rustls::ClientConnection::new(Arc::new(config), name).unwrap()
    }

    /// Sends what `client` has queued.
    async fn flush(client: &mut rustls::ClientConnection, tcp: &mut tokio::net::TcpStream) {
        let mut wire = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut wire).unwrap();
        }
        tokio::io::AsyncWriteExt::write_all(tcp, &wire).await.unwrap();
    }

    /// Until `done`: sends what `client` has queued and feeds it what `tcp` brings.
    async fn exchange(
        client: &mut rustls::ClientConnection,
        tcp: &mut tokio::net::TcpStream,
        mut done: impl FnMut(&mut rustls::ClientConnection) -> bool,
    ) {
        while !done(client) {
            flush(client, tcp).await;
            let mut buf = vec![0u8; 16384];
            let n = tokio::io::AsyncReadExt::read(tcp, &mut buf).await.unwrap();
            assert!(n > 0, "the gateway closed the connection");
            client.read_tls(&mut &buf[..n]).unwrap();
            client.process_new_packets().unwrap();
        }
    }

    #[tokio::test]
    async fn a_framed_channel_keeps_what_the_client_sent_with_its_finished() {
        use pqescape_frames::{FrameReader, write_frame};
        use std::io::{Read, Write};
        let dir = std::env::temp_dir().join(format!("pqescape-records-{}", std::process::id()));
        let tls = GatewayTls::load_or_generate(&dir, &[]).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = tls.incoming(listener);

        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let mut client = client_for(&tls, pqescape_frames::ALPN);
        exchange(&mut client, &mut tcp, |c| !c.is_handshaking()).await;
        assert!(client.wants_write(), "the client's Finished waits to go out");
        // The handshake is done on the client's side and its Finished is still
        // queued: three frames go out in the same write, two records after it.
        let frames: [&[u8]; 3] = [b"hello", &[5u8; 6000], b"third"];
        for frame in frames {
            let mut framed = (frame.len() as u32).to_be_bytes().to_vec();
            framed.extend_from_slice(frame);
            client.writer().write_all(&framed).unwrap();
        }
        flush(&mut client, &mut tcp).await;

        let mut channel = incoming.framed.recv().await.unwrap();
        assert_eq!(channel.security.key_exchange, "X25519MLKEM768");
        let mut reader = FrameReader::new(1 << 16);
        for frame in frames {
            assert_eq!(reader.next(&mut channel.reader).await.unwrap().unwrap(), frame);
        }

        // And the other way, then a clean close.
        write_frame(&mut channel.writer, b"welcome").await.unwrap();
        tokio::io::AsyncWriteExt::shutdown(&mut channel.writer).await.unwrap();
        let mut got = Vec::new();
        exchange(&mut client, &mut tcp, |c| {
            let _ = c.reader().read_to_end(&mut got);
            got.len() >= 11
        })
        .await;
        assert_eq!(got, [&7u32.to_be_bytes()[..], b"welcome"].concat());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unreadable_or_empty_files_are_refused_with_their_path() {
        let missing = Path::new("/nonexistent/cert.pem");
        let err = GatewayTls::from_files(missing, missing).err().unwrap();
        assert!(err.to_string().contains("/nonexistent/cert.pem"), "{err}");
    }
}
