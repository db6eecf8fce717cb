//! The REST API (axum): `/api/v1` for administrators, `/enroll/v1` for agents,
//! `/healthz`, `/readyz` and `/metrics` for the platform, and the web dashboard
//! at `/`.
//!
//! Handlers are thin: they parse, call `admin` or `enroll`, and render. Every
//! error is problem+json (problem.rs); bodies are capped at [`MAX_BODY`].

mod access;
mod auth;
mod campaigns;
mod consumers;
mod deliveries;
mod enroll;
mod ops;
pub mod problem;
mod web;

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
        .merge(deliveries::routes())
        .merge(access::routes())
        .merge(ops::api_routes());
    let mut app = Router::new()
        .nest("/api/v1", api)
        .merge(enroll::routes())
        .merge(ops::routes())
        .merge(web::routes())
        .fallback(not_found);
    if let Some(handle) = metrics {
        app = app.route("/metrics", get(move || std::future::ready(handle.render())));
    }
    app.layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(count_requests))
        .layer(TraceLayer::new_for_http())
        .with_state(orchestrator)
}

/// Counts requests by method and status class: a closed label set, never a path.
async fn count_requests(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let method = match *req.method() {
        axum::http::Method::GET => "GET",
        axum::http::Method::POST => "POST",
        axum::http::Method::PATCH => "PATCH",
        _ => "other",
    };
    let started = std::time::Instant::now();
    let response = next.run(req).await;
    let class = match response.status().as_u16() {
        100..=399 => "2xx-3xx",
        400..=499 => "4xx",
        _ => "5xx",
    };
    metrics::counter!("pqescape_http_requests_total", "method" => method, "status" => class)
        .increment(1);
    let seconds = started.elapsed().as_secs_f64();
    metrics::histogram!("pqescape_http_request_duration_seconds", "method" => method)
        .record(seconds);
    response
}

async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "not-found", "Not found", "no such endpoint")
}
