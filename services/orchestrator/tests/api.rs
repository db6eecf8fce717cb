//! The REST API through the router, without sockets: every endpoint, the role
//! rules, and bad input answered with 4xx problem documents, never 5xx.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use pqescape_orchestrator::{Orchestrator, api};
use serde_json::{Value, json};
use support::*;
use tower::ServiceExt;

struct Api {
    app: axum::Router,
    orchestrator: Arc<Orchestrator>,
    admin: String,
    _dir: TempDir,
}

impl Api {
    async fn new() -> Self {
        let dir = TempDir::new();
        let orchestrator = orchestrator(sqlite_store(&dir).await).await;
        let admin =
            orchestrator.bootstrap_admin().await.unwrap().expect("first start has no token");
        let app = api::router(orchestrator.clone(), None);
        Self { app, orchestrator, admin, _dir: dir }
    }

    async fn call(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Body>,
        ctype: &str,
    ) -> (StatusCode, Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req =
            req.header(header::CONTENT_TYPE, ctype).body(body.unwrap_or_else(Body::empty)).unwrap();
        let response = self.app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let is_problem = response
            .headers()
            .get(header::CONTENT_TYPE)
            .is_some_and(|v| v == "application/problem+json");
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_client_error() || status.is_server_error() {
            assert!(is_problem, "{status} without problem+json: {value}");
            assert_eq!(value["status"], status.as_u16());
        }
        (status, value)
    }

    async fn get(&self, uri: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, uri, Some(token), None, "application/json").await
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call(method, uri, Some(token), Some(Body::from(body.to_string())), "application/json")
            .await
    }

    async fn token(&self, role: &str) -> String {
        let (status, v) = self
            .send(
                Method::POST,
                "/api/v1/api-tokens",
                &self.admin,
                json!({ "name": role, "role": role }),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED);
        v["secret"].as_str().unwrap().to_owned()
    }
}

#[tokio::test]
async fn consumers_can_be_registered_listed_relabelled_and_revoked() {
    let api = Api::new().await;
    let body = json!({ "name": "web-01", "labels": { "env": "prod" } });
    let (status, created) = api.send(Method::POST, "/api/v1/consumers", &api.admin, body).await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(created["enrollment"]["token"].as_str().unwrap().starts_with("pqe1."));
    let id = created["consumer"]["id"].as_str().unwrap().to_owned();

    let (_, list) = api.get("/api/v1/consumers?selector=env%3Dprod&limit=10", &api.admin).await;
    assert_eq!(list["items"][0]["id"], id.as_str());
    let (_, none) = api.get("/api/v1/consumers?selector=env%3Dtest", &api.admin).await;
    assert_eq!(none["items"], json!([]));

    let relabel = json!({ "labels": { "env": "test" } });
    let (status, updated) =
        api.send(Method::PATCH, &format!("/api/v1/consumers/{id}"), &api.admin, relabel).await;
    assert_eq!((status, updated["labels"]["env"].clone()), (StatusCode::OK, json!("test")));

    let (status, token) = api
        .send(
            Method::POST,
            &format!("/api/v1/consumers/{id}/enrollment-tokens"),
            &api.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert!(token["token"].as_str().unwrap().starts_with("pqe1."));

    let (status, revoked) = api
        .send(Method::POST, &format!("/api/v1/consumers/{id}/revoke"), &api.admin, json!({}))
        .await;
    assert_eq!((status, revoked["state"].clone()), (StatusCode::OK, json!("revoked")));
    let (status, _) = api
        .send(
            Method::POST,
            &format!("/api/v1/consumers/{id}/enrollment-tokens"),
            &api.admin,
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT);

    let (_, summary) = api.get("/api/v1/fleet/summary", &api.admin).await;
    assert_eq!(
        summary["counts"][0],
        json!({ "state": "revoked", "suite": "classical", "count": 1 })
    );
}

#[tokio::test]
async fn roles_limit_what_a_token_may_do() {
    let api = Api::new().await;
    let viewer = api.token("viewer").await;
    let operator = api.token("operator").await;
    let body = json!({ "name": "db-01" });
    let (status, p) = api.send(Method::POST, "/api/v1/consumers", &viewer, body.clone()).await;
    assert_eq!(
        (status, p["type"].clone()),
        (StatusCode::FORBIDDEN, json!("urn:pqescape:problem:forbidden"))
    );
    let (status, created) = api.send(Method::POST, "/api/v1/consumers", &operator, body).await;
    assert_eq!(status, StatusCode::CREATED);
    let id = created["consumer"]["id"].as_str().unwrap();
    assert_eq!(api.get(&format!("/api/v1/consumers/{id}"), &viewer).await.0, StatusCode::OK);
    let revoke = format!("/api/v1/consumers/{id}/revoke");
    assert_eq!(
        api.send(Method::POST, &revoke, &operator, json!({})).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(api.get("/api/v1/api-tokens", &operator).await.0, StatusCode::FORBIDDEN);
    assert_eq!(api.get("/api/v1/audit", &viewer).await.0, StatusCode::OK);
}

#[tokio::test]
async fn bad_credentials_are_401_with_a_challenge() {
    let api = Api::new().await;
    for token in [
        None,
        Some("nonsense"),
        Some("pqe_0000000000000000000000000000000000000000000000000000000000000000"),
    ] {
        let (status, p) =
            api.call(Method::GET, "/api/v1/consumers", token, None, "application/json").await;
        assert_eq!(
            (status, p["type"].clone()),
            (StatusCode::UNAUTHORIZED, json!("urn:pqescape:problem:unauthenticated"))
        );
    }
    let operator = api.token("operator").await;
    let tokens = api.get("/api/v1/api-tokens", &api.admin).await.1;
    let id = tokens["items"].as_array().unwrap().iter().find(|t| t["name"] == "operator").unwrap()
        ["id"]
        .clone();
    let revoke = format!("/api/v1/api-tokens/{}/revoke", id.as_str().unwrap());
    assert_eq!(
        api.send(Method::POST, &revoke, &api.admin, json!({})).await.0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.get("/api/v1/consumers", &operator).await.0, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bad_input_is_a_4xx_problem_never_a_5xx() {
    let api = Api::new().await;
    let post = |body: Body, ctype: &'static str| {
        api.call(Method::POST, "/api/v1/consumers", Some(&api.admin), Some(body), ctype)
    };
    assert_eq!(post(Body::from("{\"name\":"), "application/json").await.0, StatusCode::BAD_REQUEST);
    assert_eq!(
        post(Body::from("{\"name\":\"a\",\"x\":1}"), "application/json").await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );
    assert_eq!(
        post(Body::from("{\"name\":\"a\"}"), "text/plain").await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    let huge = format!("{{\"name\":\"{}\"}}", "a".repeat(api::MAX_BODY));
    assert_eq!(post(Body::from(huge), "application/json").await.0, StatusCode::PAYLOAD_TOO_LARGE);

    let cases = [
        json!({ "name": "" }),
        json!({ "name": " padded" }),
        json!({ "name": "ok", "labels": { "bad key": "v" } }),
        json!({ "name": "ok", "labels": { "k": "" } }),
        json!({ "name": "ok", "token_ttl_secs": 5 }),
        json!({ "name": 7 }),
    ];
    for body in cases {
        let (status, p) =
            api.send(Method::POST, "/api/v1/consumers", &api.admin, body.clone()).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {p}");
    }
    let (status, p) = api
        .send(
            Method::POST,
            "/api/v1/consumers",
            &api.admin,
            json!({ "name": "ok", "token_ttl_secs": 5 }),
        )
        .await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("token_ttl_secs"))
    );

    for uri in [
        "/api/v1/consumers?limit=0",
        "/api/v1/consumers?selector=novalue",
        "/api/v1/consumers?state=gone",
        "/api/v1/consumers?colour=red",
    ] {
        let status = api.get(uri, &api.admin).await.0;
        assert!(
            status == StatusCode::BAD_REQUEST || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{uri}: {status}"
        );
    }
    assert_eq!(api.get("/api/v1/consumers/not-a-uuid", &api.admin).await.0, StatusCode::NOT_FOUND);
    assert_eq!(api.get("/api/v1/nothing-here", &api.admin).await.0, StatusCode::NOT_FOUND);
    let dup = json!({ "name": "same" });
    assert_eq!(
        api.send(Method::POST, "/api/v1/consumers", &api.admin, dup.clone()).await.0,
        StatusCode::CREATED
    );
    assert_eq!(
        api.send(Method::POST, "/api/v1/consumers", &api.admin, dup).await.0,
        StatusCode::CONFLICT
    );
}

#[tokio::test]
async fn every_change_is_audited_and_the_chain_verifies() {
    let api = Api::new().await;
    api.send(Method::POST, "/api/v1/consumers", &api.admin, json!({ "name": "a" })).await;
    api.token("viewer").await;
    let (_, log) = api.get("/api/v1/audit", &api.admin).await;
    let actions: Vec<_> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(actions, ["api_token.bootstrap", "consumer.register", "api_token.create"]);
    let (_, verdict) = api.get("/api/v1/audit/verify", &api.admin).await;
    assert_eq!(verdict, json!({ "valid": true, "entries": 3, "first_invalid_seq": null }));
    assert!(!log.to_string().contains("pqe_"), "no token secret in the audit log");
}

#[tokio::test]
async fn list_responses_never_carry_secrets() {
    let api = Api::new().await;
    let (_, created) =
        api.send(Method::POST, "/api/v1/consumers", &api.admin, json!({ "name": "s" })).await;
    let token_text = created["enrollment"]["token"].as_str().unwrap().to_owned();
    let secret_part = token_text.split('.').nth(2).unwrap().to_owned();
    for uri in ["/api/v1/consumers", "/api/v1/api-tokens", "/api/v1/audit", "/api/v1/orchestrator"]
    {
        let (_, v) = api.get(uri, &api.admin).await;
        let text = v.to_string();
        assert!(!text.contains(&secret_part), "{uri} shows an enrollment secret");
        assert!(!text.contains(&api.admin), "{uri} shows an API token");
    }
    let _ = &api.orchestrator;
}

#[tokio::test]
async fn health_and_readiness() {
    let api = Api::new().await;
    for uri in ["/healthz", "/readyz"] {
        let req = Request::builder().uri(uri).body(Body::empty()).unwrap();
        assert_eq!(api.app.clone().oneshot(req).await.unwrap().status(), StatusCode::OK, "{uri}");
    }
}
