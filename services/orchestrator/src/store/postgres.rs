//! The production store: PostgreSQL, shared by every orchestrator replica.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};
use std::str::FromStr;

use super::StoreResult;

/// PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: Pool<Postgres>,
}

impl PgStore {
    /// Connects with a `postgres://` URL and applies migrations (under an advisory
    /// lock that sqlx takes, so replicas starting together migrate once).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("pqescape-orchestrator");
        let pool =
            PgPoolOptions::new().max_connections(max_connections).connect_with(options).await?;
        sqlx::migrate!("../../migrations/postgres").run(&pool).await?;
        Ok(Self { pool })
    }
}

// Appends take the table lock so that replicas never fork the chain; readers are not blocked.
super::sql::sql_store!(
    PgStore,
    Postgres,
    "postgres",
    audit_lock = Some("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE")
);
