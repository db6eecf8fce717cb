//! Shared fixtures: fresh stores on both back ends, and a started orchestrator.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::sync::Arc;

use pqescape_orchestrator::secrets::MasterKey;
use pqescape_orchestrator::store::{PgStore, SqliteStore, Store};
use pqescape_orchestrator::{Limits, Orchestrator};
use sqlx::Connection;

/// The server tests create their databases on: `PQESCAPE_TEST_DATABASE_URL`, or the
/// local server this project's machines run. scripts/test finds or starts one.
pub fn postgres_admin_url() -> String {
    std::env::var("PQESCAPE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// A database of its own for one test, on the real server.
pub struct PgDatabase {
    pub url: String,
    name: String,
}

impl PgDatabase {
    pub async fn create() -> Self {
        let admin = postgres_admin_url();
        let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap_or_else(|e| {
            panic!("PostgreSQL at {admin} is needed by the store tests ({e}); run scripts/test, which starts one")
        });
        let name = format!("pqe_test_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .unwrap();
        let base = admin.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
        Self { url: format!("{base}/{name}"), name }
    }

    /// Drops the database (connections of the test must be closed first).
    pub async fn drop_now(self) {
        let mut conn = sqlx::PgConnection::connect(&postgres_admin_url()).await.unwrap();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut conn).await.unwrap();
    }
}

pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir =
            std::env::temp_dir().join(format!("pqescape-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn sqlite_store(dir: &TempDir) -> Arc<dyn Store> {
    Arc::new(SqliteStore::open(&dir.0.join("store.db")).await.unwrap())
}

pub async fn pg_store(db: &PgDatabase) -> Arc<dyn Store> {
    Arc::new(PgStore::connect(&db.url, 4).await.unwrap())
}

pub async fn orchestrator(store: Arc<dyn Store>) -> Arc<Orchestrator> {
    Arc::new(
        Orchestrator::start(
            store,
            MasterKey::from_hex(&"42".repeat(32)).unwrap(),
            Limits::default(),
        )
        .await
        .unwrap(),
    )
}
