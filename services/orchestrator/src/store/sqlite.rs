//! The embedded store: one SQLite file, for a first run and single-node use.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};

use super::StoreResult;
use super::lease::Leases;

/// SQLite store. One connection: SQLite has one writer at a time anyway, and a
/// single connection makes every transaction serial without busy retries.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pool: Pool<Sqlite>,
    /// Keeps nothing: a kept connection would be the pool's only one.
    leases: Leases<Sqlite>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> StoreResult<Self> {
        let options = SqliteConnectOptions::new().filename(path).create_if_missing(true);
        Self::connect(options).await
    }

    /// Opens a database from a `sqlite:` URL.
    pub async fn open_url(url: &str) -> StoreResult<Self> {
        Self::connect(SqliteConnectOptions::from_str(url)?.create_if_missing(true)).await
    }

    async fn connect(options: SqliteConnectOptions) -> StoreResult<Self> {
        let options = options
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(std::time::Duration::from_secs(10));
        // The one in-process connection cannot drop: no ping before each use.
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .connect_with(options)
            .await?;
        sqlx::migrate!("../../migrations/sqlite").run(&pool).await?;
        Ok(Self { leases: Leases::new(pool.clone(), 0), pool })
    }
}

// SQLite has no data-modifying CTE, so a migration takes a transaction (in process,
// it costs no round trip); it has one writer at a time, so no row locks to skip.
super::sql::sql_store!(
    SqliteStore,
    Sqlite,
    "sqlite",
    audit_lock = None::<&str>,
    migrate_in_one = None::<&'static str>,
    skip_locked = ""
);
