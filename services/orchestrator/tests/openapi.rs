//! The served OpenAPI document and the router agree: every documented operation is
//! routed, and every route in the source is documented.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::collections::BTreeSet;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use pqescape_orchestrator::api;
use support::*;
use tower::ServiceExt;

/// (method, path) pairs the document declares.
fn documented(doc: &serde_json::Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in ["get", "post", "patch", "put", "delete"] {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

/// (method, path) pairs the router source declares, read from `.route(...)` calls.
/// The dashboard's pages (web.rs) are not API operations.
fn routed() -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src/api");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.ends_with("web.rs") {
            continue;
        }
        let source = std::fs::read_to_string(path).unwrap();
        for call in source.split(".route(\"").skip(1) {
            let (path, rest) = call.split_once('"').unwrap();
            let end = rest
                .find(".route(")
                .unwrap_or(rest.len())
                .min(rest.find(';').unwrap_or(rest.len()));
            let full = match path {
                p if p.starts_with("/enroll")
                    || p == "/healthz"
                    || p == "/readyz"
                    || p == "/metrics" =>
                {
                    p.to_owned()
                }
                p => format!("/api/v1{p}"),
            };
            for method in ["get", "post", "patch"] {
                if rest[..end].contains(&format!("{method}(")) {
                    ops.insert((method.to_uppercase(), full.clone()));
                }
            }
        }
    }
    ops
}

#[tokio::test]
async fn the_document_is_served_and_matches_the_router() {
    let dir = TempDir::new();
    let orchestrator = orchestrator(sqlite_store(&dir).await).await;
    let app = api::router(orchestrator, None);
    let req = Request::builder().uri("/api/v1/openapi.json").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let doc: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");

    let (docs, routes) = (documented(&doc), routed());
    let missing: Vec<_> = routes.difference(&docs).collect();
    let extra: Vec<_> = docs.difference(&routes).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "undocumented: {missing:?}; not routed: {extra:?}"
    );

    // And each documented operation reaches a handler, not the fallback.
    // /metrics is mounted only with a recorder, which is process-wide (tests/process.rs).
    for (method, path) in docs.iter().filter(|(_, p)| p != "/metrics") {
        let uri = path.replace("{id}", "00000000-0000-4000-8000-000000000000");
        let req =
            Request::builder().method(Method::from_bytes(method.as_bytes()).unwrap()).uri(&uri);
        let response = app.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let fallback = String::from_utf8_lossy(&body).contains("no such endpoint");
        assert!(!fallback && status != StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}: {status}");
    }
}
