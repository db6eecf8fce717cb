//! The REST API (axum): `/api/v1` for administrators, `/enroll/v1` for agents,
//! `/healthz`, `/readyz` and `/metrics` for the platform.
//!
//! Handlers are thin: they parse, call `admin` or `enroll`, and render. Every
//! error is problem+json (problem.rs); bodies are capped at [`MAX_BODY`].

mod access;
mod auth;
mod campaigns;
mod consumers;
mod enroll;
mod ops;
pub mod problem;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::trace::TraceLayer;

pub use enroll::SESSION_HEADER;
use problem::Problem;

use crate::Orchestrator;

/// Largest request body accepted (the largest enrollment message is under 2 KiB).
pub const MAX_BODY: usize = 64 * 1024;

/// The whole HTTP surface. `metrics` renders `/metrics` when given.
pub fn router(orchestrator: Arc<Orchestrator>, metrics: Option<PrometheusHandle>) -> Router {
    let api = Router::new()
        .merge(consumers::routes())
        .merge(campaigns::routes())
        .merge(access::routes())
        .merge(ops::api_routes());
    let mut app = Router::new()
        .nest("/api/v1", api)
        .merge(enroll::routes())
        .merge(ops::routes())
        .fallback(not_found);
    if let Some(handle) = metrics {
        app = app.route("/metrics", get(move || std::future::ready(handle.render())));
    }
    app.layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(TraceLayer::new_for_http())
        .with_state(orchestrator)
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no such endpoint")
}
