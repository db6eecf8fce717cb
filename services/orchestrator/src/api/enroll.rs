//! `/enroll/v1`: the agent's enrollment exchange, binary protocol messages over HTTP.
//!
//! No API token: the enrollment token inside the exchange is the credential, and
//! its secret only ever crosses the wire sealed (protocol.md §8.3).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Router, routing::post};

use super::problem::Problem;
use crate::Orchestrator;

/// Header naming the enrollment session (the token's public id) between the steps.
pub const SESSION_HEADER: &str = "pqescape-enrollment";

pub(super) fn routes() -> Router<Arc<Orchestrator>> {
    Router::new().route("/enroll/v1/hello", post(hello)).route("/enroll/v1/confirm", post(confirm))
}

/// The body, or a problem document when it is too large or unreadable.
fn body(body: Result<Bytes, BytesRejection>) -> Result<Bytes, Problem> {
    body.map_err(|r| {
        let slug =
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE { "too-large" } else { "malformed" };
        Problem::new(r.status(), slug, "Unreadable request body", r.body_text())
    })
}

async fn hello(
    State(o): State<Arc<Orchestrator>>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, Problem> {
    let (accept, session) = o.enroll_hello(&body(raw)?).await?;
    let mut response = accept.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if let Ok(value) = HeaderValue::from_str(&session) {
        headers.insert(SESSION_HEADER, value);
    }
    Ok(response)
}

async fn confirm(
    State(o): State<Arc<Orchestrator>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<StatusCode, Problem> {
    let body = body(raw)?;
    let session = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let consumer = o.enroll_confirm(session, &body).await?;
    tracing::info!(consumer.id = %consumer, "consumer enrolled");
    metrics::counter!("pqescape_enrollments_total").increment(1);
    Ok(StatusCode::NO_CONTENT)
}
