//! PQ-safe enrollment through the HTTP API on both stores, and what ends up in the
//! database afterwards: the PSK sealed, never in clear.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use pqescape_message::enrollment::{AgentEnrollment, EnrollmentToken};
use pqescape_message::types::Suite;
use pqescape_orchestrator::secrets::{MasterKey, Purpose};
use pqescape_orchestrator::store::Store;
use pqescape_orchestrator::{Orchestrator, api};
use rand_core::UnwrapErr;
use serde_json::{Value, json};
use sqlx::Row;
use support::*;
use tower::ServiceExt;

async fn call(
    app: &axum::Router,
    req: Request<Body>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let response = app.clone().oneshot(req).await.unwrap();
    let (parts, body) = response.into_parts();
    (parts.status, parts.headers, body.collect().await.unwrap().to_bytes().to_vec())
}

fn binary(uri: &str, body: Vec<u8>, session: Option<&str>) -> Request<Body> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(uri)
        .header(header::CONTENT_TYPE, "application/octet-stream");
    if let Some(s) = session {
        req = req.header(api::SESSION_HEADER, s);
    }
    req.body(Body::from(body)).unwrap()
}

/// Registers a consumer, enrolls it as an agent would, and returns (consumer id, agent PSK).
async fn enroll(orchestrator: Arc<Orchestrator>) -> (String, [u8; 32]) {
    let app = api::router(orchestrator.clone(), None);
    let admin = orchestrator.bootstrap_admin().await.unwrap().unwrap();
    let req = Request::builder()
        .method(Method::POST)
        .uri("/api/v1/consumers")
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(json!({ "name": "vpn-gw-1", "labels": { "role": "vpn" } }).to_string()))
        .unwrap();
    let (status, _, body) = call(&app, req).await;
    assert_eq!(status, StatusCode::CREATED);
    let created: Value = serde_json::from_slice(&body).unwrap();
    let token = EnrollmentToken::parse(created["enrollment"]["token"].as_str().unwrap()).unwrap();
    let id = created["consumer"]["id"].as_str().unwrap().to_owned();

    let mut rng = UnwrapErr(getrandom::SysRng);
    let (agent, hello) = AgentEnrollment::start(token, Suite::X25519MlKem768, &mut rng).unwrap();
    let (status, headers, accept) =
        call(&app, binary("/enroll/v1/hello", hello.clone(), None)).await;
    assert_eq!(status, StatusCode::OK);
    let session = headers.get(api::SESSION_HEADER).unwrap().to_str().unwrap().to_owned();
    let (confirm, enrolled, pinned) = agent.confirm(&accept).unwrap();
    assert_eq!(pinned, orchestrator.verifying_key(), "the agent pins the orchestrator's key");

    // A tampered confirm is refused and does not consume the token.
    let mut bad = confirm.clone();
    bad[30] ^= 1;
    let (status, _, _) = call(&app, binary("/enroll/v1/confirm", bad, Some(&session))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let (status, _, _) =
        call(&app, binary("/enroll/v1/confirm", confirm.clone(), Some(&session))).await;
    assert_eq!(status, StatusCode::NO_CONTENT);

    // The token is spent: neither step works again.
    let (status, _, _) = call(&app, binary("/enroll/v1/confirm", confirm, Some(&session))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = call(&app, binary("/enroll/v1/hello", hello, None)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) =
        call(&app, binary("/enroll/v1/hello", b"not a message".to_vec(), None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    let consumer = orchestrator.store().consumer(&id).await.unwrap().unwrap();
    assert_eq!((consumer.state.as_str(), consumer.key_id), ("enrolled", 1));
    (id, *enrolled.psk.expose())
}

async fn stored_psk_matches(store: &dyn Store, id: &str, psk: &[u8; 32]) {
    let sealed = store.consumer_psk(id).await.unwrap().unwrap();
    let master = MasterKey::from_hex(&"42".repeat(32)).unwrap();
    let opened = master.open32(Purpose::Psk, id, &sealed.sealed).unwrap();
    assert_eq!(&*opened, psk, "orchestrator and agent hold the same PSK");
    assert!(!contains(&sealed.sealed, psk));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn enrollment_on_sqlite_leaves_no_psk_in_the_database_files() {
    let dir = TempDir::new();
    let store = sqlite_store(&dir).await;
    let (id, psk) = enroll(orchestrator(store.clone()).await).await;
    stored_psk_matches(store.as_ref(), &id, &psk).await;
    let mut scanned = 0;
    for entry in std::fs::read_dir(&dir.0).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        scanned += bytes.len();
        assert!(!contains(&bytes, &psk), "PSK in clear in a database file");
        assert!(!contains(&bytes, hex::encode(psk).as_bytes()), "PSK hex in a database file");
    }
    assert!(scanned > 0);
}

#[tokio::test]
async fn enrollment_on_postgres_leaves_no_psk_in_any_table() {
    let db = PgDatabase::create().await;
    let store = pg_store(&db).await;
    let (id, psk) = enroll(orchestrator(store.clone()).await).await;
    stored_psk_matches(store.as_ref(), &id, &psk).await;

    // Every row of every table as text (bytea renders as hex): the PSK must not appear.
    let pool = sqlx::PgPool::connect(&db.url).await.unwrap();
    let tables = sqlx::query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        .fetch_all(&pool)
        .await
        .unwrap();
    let mut dump = String::new();
    for t in tables {
        let name: String = t.get("tablename");
        let sql = format!(
            "SELECT COALESCE(string_agg(row_to_json(x)::text, E'\\n'), '') AS rows FROM {name} x"
        );
        let rows: String =
            sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_one(&pool).await.unwrap().get("rows");
        dump.push_str(&rows);
    }
    assert!(dump.contains(&id), "the dump covers the consumer");
    assert!(!dump.contains(&hex::encode(psk)), "PSK in clear in the database");
    let key = store.signing_key().await.unwrap().unwrap();
    let master = MasterKey::from_hex(&"42".repeat(32)).unwrap();
    let seed = master.open32(Purpose::SigningKey, &key.id, &key.seed_sealed).unwrap();
    assert!(!dump.contains(&hex::encode(*seed)), "signing key seed in clear in the database");
    assert!(
        dump.contains(&hex::encode(&key.public_key[..32])),
        "the public key is there, as it should"
    );
    pool.close().await;
    db.drop_now().await;
}
