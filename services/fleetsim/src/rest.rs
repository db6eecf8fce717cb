//! The few reads the simulator makes over the orchestrator's HTTP API: the
//! connected-agents gauge, campaign progress and failed deliveries. A plain
//! HTTP/1.1 GET per call is all it needs.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A failed read, with what was asked.
#[derive(Debug, thiserror::Error)]
#[error("GET {path}: {detail}")]
pub struct RestError {
    path: String,
    detail: String,
}

/// The orchestrator's HTTP listener and an admin (or viewer) token.
#[derive(Clone)]
pub struct Rest {
    address: String,
    token: String,
}

impl Rest {
    /// From `http://host:port` (any path after it is ignored).
    pub fn new(url: &str, token: &str) -> Self {
        let rest = url.trim_start_matches("http://");
        let address = rest.split('/').next().unwrap_or(rest).to_owned();
        Self { address, token: token.to_owned() }
    }

    /// The body of a 200 answer to `GET path`.
    pub async fn get(&self, path: &str) -> Result<String, RestError> {
        let fail = |detail: String| RestError { path: path.to_owned(), detail };
        let mut stream =
            TcpStream::connect(&self.address).await.map_err(|e| fail(e.to_string()))?;
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
            self.address, self.token
        );
        stream.write_all(request.as_bytes()).await.map_err(|e| fail(e.to_string()))?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.map_err(|e| fail(e.to_string()))?;
        let text = String::from_utf8_lossy(&response);
        let (head, body) = text.split_once("\r\n\r\n").ok_or_else(|| fail("no body".into()))?;
        let status = head.split(' ').nth(1).unwrap_or("");
        if status != "200" {
            return Err(fail(format!("status {status}")));
        }
        Ok(body.to_owned())
    }

    /// The body of `GET path` as JSON.
    pub async fn json(&self, path: &str) -> Result<serde_json::Value, RestError> {
        let body = self.get(path).await?;
        serde_json::from_str(&body)
            .map_err(|e| RestError { path: path.into(), detail: e.to_string() })
    }

    /// `pqescape_agents_connected` from `/metrics`.
    pub async fn connected_agents(&self) -> Result<u64, RestError> {
        self.gauge("pqescape_agents_connected").await
    }

    /// `pqescape_agents_connected_post_quantum` from `/metrics`.
    pub async fn post_quantum_agents(&self) -> Result<u64, RestError> {
        self.gauge("pqescape_agents_connected_post_quantum").await
    }

    /// An unlabelled gauge from `/metrics` (0 until it is first set).
    async fn gauge(&self, name: &str) -> Result<u64, RestError> {
        let text = self.get("/metrics").await?;
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(name).and_then(|rest| rest.strip_prefix(' ')))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        Ok(value as u64)
    }
}
