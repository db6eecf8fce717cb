//! Campaigns through the REST API: plan, preview, arm (signed manifest), fire with
//! confirmation, pause, resume, cancel; and every wrong move refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use pqescape_message::campaign::verify_manifest;
use pqescape_orchestrator::clock::now;
use pqescape_orchestrator::store::{EnrollmentTokenRow, NewConsumer, SealedPsk, Store};
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
        let admin = orchestrator.bootstrap_admin().await.unwrap().unwrap();
        Self { app: api::router(orchestrator.clone(), None), orchestrator, admin, _dir: dir }
    }

    async fn send(
        &self,
        method: Method,
        uri: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let req = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty))
            .unwrap();
        let response = self.app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
    }

    /// Registers and marks enrolled `n` consumers with `labels`, straight through the store.
    async fn enrolled(&self, n: usize, env: &str) {
        let store: &dyn Store = self.orchestrator.store().as_ref();
        for i in 0..n {
            let id = uuid::Uuid::new_v4().to_string();
            let labels = serde_json::from_value(json!({ "env": env })).unwrap();
            let consumer =
                NewConsumer { id: id.clone(), name: format!("{env}-{i}"), labels, now: 1 };
            let token = format!("{env}{i}");
            let row = EnrollmentTokenRow {
                id: token.clone(),
                consumer_id: id,
                verifier: vec![0; 32],
                created_at: 1,
                expires_at: i64::MAX,
            };
            store.insert_consumer(&consumer, &row).await.unwrap();
            assert!(
                store
                    .complete_enrollment(&token, &SealedPsk { key_id: 1, sealed: vec![1] }, 2)
                    .await
                    .unwrap()
            );
        }
    }
}

fn plan(name: &str) -> Value {
    json!({
        "name": name, "selector": "env=prod", "target_suite": "x25519-mlkem768",
        "waves": [10, 50, 100], "max_in_flight": 100, "deadline": now() + 3600, "drill": true
    })
}

#[tokio::test]
async fn a_plan_is_previewed_armed_fired_and_steered() {
    let api = Api::new().await;
    api.enrolled(30, "prod").await;
    api.enrolled(5, "test").await;

    let preview = json!({ "selector": "env=prod", "target_suite": "x25519-mlkem768", "first_wave_percent": 10 });
    let (status, p) =
        api.send(Method::POST, "/api/v1/campaigns/preview", &api.admin, Some(preview)).await;
    assert_eq!(
        (status, p["targets"].clone(), p["first_wave"].clone()),
        (StatusCode::OK, json!(30), json!(3))
    );
    assert_eq!(p["sample"].as_array().unwrap().len(), 20);
    assert!(p["sample"].as_array().unwrap().iter().all(|c| c["labels"]["env"] == "prod"));

    let (status, c) =
        api.send(Method::POST, "/api/v1/campaigns", &api.admin, Some(plan("q-day drill"))).await;
    assert_eq!((status, c["state"].clone()), (StatusCode::CREATED, json!("draft")));
    let id = c["id"].as_str().unwrap().to_owned();
    let (_, p) =
        api.send(Method::GET, &format!("/api/v1/campaigns/{id}/preview"), &api.admin, None).await;
    assert_eq!((p["targets"].clone(), p["first_wave"].clone()), (json!(30), json!(3)));

    // Firing a plan that is not armed is refused; arming signs the manifest.
    let fire = |confirm: Value| Some(json!({ "confirm": confirm }));
    let fire_uri = format!("/api/v1/campaigns/{id}/fire");
    assert_eq!(
        api.send(Method::POST, &fire_uri, &api.admin, fire(json!(id))).await.0,
        StatusCode::CONFLICT
    );
    let (status, armed) =
        api.send(Method::POST, &format!("/api/v1/campaigns/{id}/arm"), &api.admin, None).await;
    assert_eq!((status, armed["state"].clone()), (StatusCode::OK, json!("armed")));
    let (_, m) =
        api.send(Method::GET, &format!("/api/v1/campaigns/{id}/manifest"), &api.admin, None).await;
    assert_eq!(m["digest"], armed["manifest_digest"]);
    let bytes = hex::decode(m["manifest"].as_str().unwrap()).unwrap();
    let verified =
        verify_manifest(&bytes, &api.orchestrator.verifying_key(), now().try_into().unwrap(), 60)
            .unwrap();
    assert!(verified.manifest().drill);
    assert_eq!(verified.manifest().selector, "env=prod");

    // Fire needs the campaign id repeated.
    let (status, p) = api.send(Method::POST, &fire_uri, &api.admin, fire(json!("yes"))).await;
    assert_eq!(
        (status, p["errors"][0]["field"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!("confirm"))
    );
    let (status, running) = api.send(Method::POST, &fire_uri, &api.admin, fire(json!(id))).await;
    assert_eq!((status, running["state"].clone()), (StatusCode::OK, json!("running")));
    assert!(running["fired_at"].is_i64());

    for (step, state) in [("pause", "paused"), ("resume", "running"), ("cancel", "cancelled")] {
        let (status, c) = api
            .send(Method::POST, &format!("/api/v1/campaigns/{id}/{step}"), &api.admin, None)
            .await;
        assert_eq!((status, c["state"].clone()), (StatusCode::OK, json!(state)), "{step}");
    }
    assert_eq!(
        api.send(Method::POST, &format!("/api/v1/campaigns/{id}/resume"), &api.admin, None).await.0,
        StatusCode::CONFLICT
    );

    let (_, log) = api.send(Method::GET, "/api/v1/audit?limit=500", &api.admin, None).await;
    let actions: Vec<_> = log["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .filter(|a| a.starts_with("campaign."))
        .collect();
    assert_eq!(
        actions,
        [
            "campaign.create",
            "campaign.arm",
            "campaign.fire",
            "campaign.pause",
            "campaign.resume",
            "campaign.cancel"
        ]
    );
}

#[tokio::test]
async fn bad_plans_are_refused_field_by_field_and_viewers_cannot_fire() {
    let api = Api::new().await;
    let mut bad = plan("x");
    bad["waves"] = json!([100, 10]);
    bad["target_suite"] = json!("classical");
    bad["deadline"] = json!(1);
    let (status, p) = api.send(Method::POST, "/api/v1/campaigns", &api.admin, Some(bad)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let fields: Vec<_> =
        p["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["target_suite", "waves", "deadline"]);
    let mut unknown = plan("x");
    unknown["colour"] = json!("red");
    assert_eq!(
        api.send(Method::POST, "/api/v1/campaigns", &api.admin, Some(unknown)).await.0,
        StatusCode::UNPROCESSABLE_ENTITY
    );

    let (_, viewer) = api
        .send(
            Method::POST,
            "/api/v1/api-tokens",
            &api.admin,
            Some(json!({ "name": "v", "role": "viewer" })),
        )
        .await;
    let viewer = viewer["secret"].as_str().unwrap();
    let (_, c) = api.send(Method::POST, "/api/v1/campaigns", &api.admin, Some(plan("y"))).await;
    let id = c["id"].as_str().unwrap();
    assert_eq!(
        api.send(Method::POST, &format!("/api/v1/campaigns/{id}/arm"), viewer, None).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.send(Method::POST, "/api/v1/campaigns", viewer, Some(plan("z"))).await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.send(Method::GET, &format!("/api/v1/campaigns/{id}"), viewer, None).await.0,
        StatusCode::OK
    );
    assert_eq!(
        api.send(Method::GET, "/api/v1/campaigns/nope", viewer, None).await.0,
        StatusCode::NOT_FOUND
    );
    let (_, list) = api.send(Method::GET, "/api/v1/campaigns", viewer, None).await;
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn progress_is_counted_and_streamed_as_server_sent_events() {
    let api = Api::new().await;
    api.enrolled(4, "prod").await;
    let (_, c) = api.send(Method::POST, "/api/v1/campaigns", &api.admin, Some(plan("live"))).await;
    let id = c["id"].as_str().unwrap().to_owned();
    api.send(Method::POST, &format!("/api/v1/campaigns/{id}/arm"), &api.admin, None).await;
    api.send(
        Method::POST,
        &format!("/api/v1/campaigns/{id}/fire"),
        &api.admin,
        Some(json!({ "confirm": id })),
    )
    .await;
    let (status, p) =
        api.send(Method::GET, &format!("/api/v1/campaigns/{id}/progress"), &api.admin, None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!((p["total"].clone(), p["deliveries"]["pending"].clone()), (json!(4), json!(4)));
    assert_eq!(p["state"], "running");

    api.send(Method::POST, &format!("/api/v1/campaigns/{id}/cancel"), &api.admin, None).await;
    let req = Request::builder()
        .uri(format!("/api/v1/campaigns/{id}/events"))
        .header(header::AUTHORIZATION, format!("Bearer {}", api.admin))
        .body(Body::empty())
        .unwrap();
    let response = api.app.clone().oneshot(req).await.unwrap();
    assert_eq!(response.headers()[header::CONTENT_TYPE], "text/event-stream");
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with("event: progress\ndata: "), "{text}");
    assert!(text.contains("\"state\":\"cancelled\""), "the stream ends on a final state: {text}");
    let (status, _) =
        api.send(Method::GET, "/api/v1/campaigns/nope/events", &api.admin, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn deliveries_are_listed_with_failure_reasons_and_a_timeline() {
    use pqescape_orchestrator::delivery::DeliveryState as D;
    let api = Api::new().await;
    api.enrolled(3, "prod").await;
    let (_, c) = api.send(Method::POST, "/api/v1/campaigns", &api.admin, Some(plan("seen"))).await;
    let id = c["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/campaigns/{id}");
    api.send(Method::POST, &format!("{base}/arm"), &api.admin, None).await;
    let confirm = Some(json!({ "confirm": id }));
    api.send(Method::POST, &format!("{base}/fire"), &api.admin, confirm).await;

    // One agent refuses, as the engine records a status report.
    let (status, page) =
        api.send(Method::GET, &format!("{base}/deliveries"), &api.admin, None).await;
    assert_eq!(status, StatusCode::OK);
    let names: Vec<_> =
        page["items"].as_array().unwrap().iter().map(|d| d["consumer_name"].clone()).collect();
    assert_eq!(names, [json!("prod-0"), json!("prod-1"), json!("prod-2")]);
    let refusing = page["items"][1]["consumer_id"].as_str().unwrap();
    let store = api.orchestrator.store();
    let reason = Some("0x0030: downgrade");
    assert!(
        store
            .update_delivery(&id, refusing, &D::OPEN, D::Failed, reason, None, None, now())
            .await
            .unwrap()
    );

    let (_, failed) =
        api.send(Method::GET, &format!("{base}/deliveries?state=failed"), &api.admin, None).await;
    assert_eq!(failed["items"].as_array().unwrap().len(), 1);
    assert_eq!(failed["items"][0]["reason"], "0x0030: downgrade");
    assert_eq!(failed["items"][0]["consumer_name"], "prod-1");
    assert!(failed["items"][0].get("escape").is_none(), "no message bytes");
    let (_, first) =
        api.send(Method::GET, &format!("{base}/deliveries?limit=2"), &api.admin, None).await;
    assert_eq!(first["next"], "prod-1");
    let (_, rest) =
        api.send(Method::GET, &format!("{base}/deliveries?after=prod-1"), &api.admin, None).await;
    assert_eq!(
        (rest["items"][0]["consumer_name"].clone(), rest["next"].clone()),
        (json!("prod-2"), Value::Null)
    );

    let (status, t) = api.send(Method::GET, &format!("{base}/timeline"), &api.admin, None).await;
    assert_eq!((status, t["bucket_secs"].clone()), (StatusCode::OK, json!(1)));
    let buckets = t["buckets"].as_array().unwrap();
    assert_eq!(buckets.iter().map(|b| b["failed"].as_u64().unwrap()).sum::<u64>(), 1);
    assert_eq!(buckets.iter().map(|b| b["migrated"].as_u64().unwrap()).sum::<u64>(), 0);

    // Bad filters are refused by field; unknown campaigns are not found.
    for uri in [format!("{base}/deliveries?state=lost"), format!("{base}/timeline?bucket_secs=0")] {
        assert_eq!(
            api.send(Method::GET, &uri, &api.admin, None).await.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{uri}"
        );
    }
    let unknown = "/api/v1/campaigns/00000000-0000-4000-8000-000000000000";
    for tail in ["deliveries", "timeline"] {
        let uri = format!("{unknown}/{tail}");
        assert_eq!(api.send(Method::GET, &uri, &api.admin, None).await.0, StatusCode::NOT_FOUND);
    }
}

#[tokio::test]
async fn whoami_names_the_callers_role() {
    let api = Api::new().await;
    let (status, me) = api.send(Method::GET, "/api/v1/whoami", &api.admin, None).await;
    assert_eq!((status, me["role"].clone()), (StatusCode::OK, json!("admin")));
    let body = Some(json!({ "name": "wallboard", "role": "viewer" }));
    let (_, viewer) = api.send(Method::POST, "/api/v1/api-tokens", &api.admin, body).await;
    let (_, me) =
        api.send(Method::GET, "/api/v1/whoami", viewer["secret"].as_str().unwrap(), None).await;
    assert_eq!((me["name"].clone(), me["role"].clone()), (json!("wallboard"), json!("viewer")));
    assert_eq!(me["id"], viewer["token"]["id"]);
    assert!(me.get("secret").is_none());
    let bogus = format!("pqe_{}", "0".repeat(64));
    assert_eq!(
        api.send(Method::GET, "/api/v1/whoami", &bogus, None).await.0,
        StatusCode::UNAUTHORIZED
    );
}
