//! The agent's TLS 1.3 connection to the gateway (protocol.md §8.4).
//!
//! Before its escape the agent connects the classical way (X25519, P-256), as the
//! fleet did before Q-day. Once migrated it offers X25519MLKEM768 alone, so a
//! gateway, or anything posing as one, that cannot do the hybrid exchange gets no
//! channel at all. Either way the session's exporter value goes into the channel
//! hello's MAC, which binds the TLS session to the consumer's PSK.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper_util::rt::TokioIo;
use pqescape_message::channel::{TLS_BINDING_LABEL, TLS_BINDING_LEN};
use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, NamedGroup, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::{Channel, Endpoint, Uri};

/// Key exchange groups the agent offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Groups {
    /// Before migration: X25519 and P-256.
    Classical,
    /// After migration: X25519MLKEM768 only.
    PostQuantum,
}

/// What the TLS handshake of the channel settled.
#[derive(Clone, Debug)]
pub struct Session {
    /// Whether the negotiated group was X25519MLKEM768.
    pub post_quantum: bool,
    /// The exporter value the channel hello's MAC covers; public.
    pub binding: [u8; TLS_BINDING_LEN],
}

/// A connection problem, with the detail an operator needs.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The CA file could not be read or holds no certificate.
    #[error("ca_file {path}: {detail}")]
    CaFile {
        /// The file.
        path: String,
        /// What went wrong.
        detail: String,
    },
    /// The gateway URL is not `https://host:port`.
    #[error("orchestrator URL: {0}")]
    Url(String),
    /// TCP, TLS or HTTP/2 failed.
    #[error("{0}")]
    Connect(String),
}

/// Where the gateway is: its name for the certificate check, its address.
#[derive(Clone)]
struct Target {
    server_name: ServerName<'static>,
    address: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, TlsError> {
        let uri: Uri = url.parse().map_err(|e| TlsError::Url(format!("{url}: {e}")))?;
        if uri.scheme_str() != Some("https") {
            return Err(TlsError::Url(format!(
                "{url}: the agent gateway speaks TLS; use https://"
            )));
        }
        let host = uri.host().ok_or_else(|| TlsError::Url(format!("{url}: no host")))?;
        let host = host.trim_matches(['[', ']']);
        let server_name = ServerName::try_from(host.to_owned())
            .map_err(|e| TlsError::Url(format!("{url}: {e}")))?;
        let port = uri.port_u16().unwrap_or(443);
        Ok(Self { server_name, address: format!("{host}:{port}") })
    }

    /// TCP, then TLS; the stream and what its session settled.
    async fn handshake(
        &self,
        connector: &TlsConnector,
    ) -> io::Result<(TlsStream<TcpStream>, Session)> {
        let tcp = TcpStream::connect(&self.address).await?;
        tcp.set_nodelay(true)?;
        // An idle channel carries a heartbeat every 20 s and the gateway sends
        // nothing back, so the kernel's probes are what notice a gateway that
        // vanished without a word (a host gone, a partition).
        let probes = socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(30))
            .with_interval(Duration::from_secs(10))
            .with_retries(3);
        socket2::SockRef::from(&tcp).set_tcp_keepalive(&probes)?;
        let stream = connector.connect(self.server_name.clone(), tcp).await?;
        let connection = stream.get_ref().1;
        let post_quantum = connection
            .negotiated_key_exchange_group()
            .is_some_and(|g| g.name() == NamedGroup::X25519MLKEM768);
        let binding = connection
            .export_keying_material([0u8; TLS_BINDING_LEN], TLS_BINDING_LABEL, None)
            .map_err(io::Error::other)?;
        Ok((stream, Session { post_quantum, binding }))
    }
}

/// Opens the agent's persistent channel: TLS with ALPN `pqescape/1`, on which
/// frames travel without HTTP/2 (protocol.md §8.5).
pub async fn open_channel(
    url: &str,
    ca_file: &Path,
    groups: Groups,
    timeout: Duration,
) -> Result<(TlsStream<TcpStream>, Session), TlsError> {
    let config = client_config(ca_file, groups, pqescape_frames::ALPN)?;
    let target = Target::parse(url)?;
    let connector = TlsConnector::from(config);
    let (stream, session) = tokio::time::timeout(timeout, target.handshake(&connector))
        .await
        .map_err(|_| TlsError::Connect(format!("no TLS session within {timeout:?}")))?
        .map_err(|e| TlsError::Connect(error_chain(&e)))?;
    if stream.get_ref().1.alpn_protocol() != Some(pqescape_frames::ALPN) {
        return Err(TlsError::Connect(
            "the gateway does not offer the pqescape/1 channel (an orchestrator older than this agent?)"
                .into(),
        ));
    }
    check_groups(groups, &session)?;
    Ok((stream, session))
}

/// Connects to the gateway's gRPC service at `url` (enrollment), trusting the CA
/// certificates in `ca_file`. Returns the gRPC channel and what its TLS session
/// settled.
pub async fn connect(
    url: &str,
    ca_file: &Path,
    groups: Groups,
    timeout: Duration,
) -> Result<(Channel, Session), TlsError> {
    let config = client_config(ca_file, groups, b"h2")?;
    let target = Target::parse(url)?;
    let settled: Arc<Mutex<Option<Session>>> = Arc::default();
    let slot = settled.clone();
    let connector = TlsConnector::from(config);
    let connect = tower::service_fn(move |_: Uri| {
        let (connector, target, slot) = (connector.clone(), target.clone(), slot.clone());
        async move {
            let (stream, session) = target.handshake(&connector).await?;
            if let Ok(mut s) = slot.lock() {
                *s = Some(session);
            }
            Ok::<_, io::Error>(TokioIo::new(stream))
        }
    });
    let channel = Endpoint::from_shared(url.to_owned())
        .map_err(|e| TlsError::Url(format!("{url}: {e}")))?
        .connect_timeout(timeout)
        // Until a response's headers arrive; a stream's messages have no deadline.
        .timeout(timeout)
        .http2_keep_alive_interval(crate::channel::HEARTBEAT)
        .connect_with_connector(connect)
        .await
        .map_err(|e| TlsError::Connect(error_chain(&e)))?;
    let session = settled
        .lock()
        .ok()
        .and_then(|s| s.clone())
        .ok_or_else(|| TlsError::Connect("no TLS session".into()))?;
    check_groups(groups, &session)?;
    Ok((channel, session))
}

fn check_groups(groups: Groups, session: &Session) -> Result<(), TlsError> {
    if groups == Groups::PostQuantum && !session.post_quantum {
        return Err(TlsError::Connect("the gateway did not negotiate X25519MLKEM768".into()));
    }
    Ok(())
}

fn client_config(
    ca_file: &Path,
    groups: Groups,
    alpn: &[u8],
) -> Result<Arc<ClientConfig>, TlsError> {
    let ca_error =
        |detail: String| TlsError::CaFile { path: ca_file.display().to_string(), detail };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| ca_error(e.to_string()))? {
        roots
            .add(cert.map_err(|e| ca_error(e.to_string()))?)
            .map_err(|e| ca_error(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(ca_error("no certificate in the file".into()));
    }
    let mut provider = default_provider();
    provider.kx_groups = match groups {
        Groups::Classical => vec![kx_group::X25519, kx_group::SECP256R1],
        Groups::PostQuantum => vec![kx_group::X25519MLKEM768],
    };
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Connect(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(Arc::new(config))
}

/// The error and its sources on one line: tonic's own message is often just
/// "transport error", and the reason (a certificate, a refused group) is below it.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
