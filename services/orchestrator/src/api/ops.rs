//! Liveness, readiness, metrics and the orchestrator's public identity.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router, routing::get};
use serde_json::json;

use super::auth::Auth;
use super::problem::Problem;
use crate::Orchestrator;
use crate::domain::Role;

pub(super) fn routes() -> Router<Arc<Orchestrator>> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz))
}

pub(super) fn api_routes() -> Router<Arc<Orchestrator>> {
    Router::new().route("/orchestrator", get(identity)).route("/openapi.json", get(openapi))
}

/// The OpenAPI 3.1 document of this API (services/orchestrator/openapi.json).
pub const OPENAPI: &str = include_str!("../../openapi.json");

async fn openapi() -> impl IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(o): State<Arc<Orchestrator>>) -> Result<&'static str, Problem> {
    o.store().ping().await.map(|()| "ready").map_err(|e| {
        tracing::warn!(error = %e, "store not reachable");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            "the store is not reachable",
        )
    })
}

async fn identity(
    State(o): State<Arc<Orchestrator>>,
    Auth(caller): Auth,
) -> Result<impl IntoResponse, Problem> {
    caller.require(Role::Viewer)?;
    let key = o.verifying_key();
    Ok(Json(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "store": o.store().backend(),
        "signing_key": {
            "algorithm": "ML-DSA-65",
            "fingerprint_sha256": hex::encode(key.fingerprint()),
        },
    })))
}
