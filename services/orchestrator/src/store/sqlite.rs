//! The embedded store: one SQLite file, for a first run and single-node use.

use std::path::Path;
use std::str::FromStr;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Pool, Sqlite};

use super::lease::Leases;
use super::{Dispatch, StoreResult};

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

impl SqliteStore {
    /// Records a dispatch's sends in one transaction, a statement each: a delivery
    /// moves to `sent` only from the state the engine read it in.
    async fn record_sends(
        pool: &Pool<Sqlite>,
        campaign_id: &str,
        sends: &[Dispatch],
        now: Timestamp,
    ) -> StoreResult<Vec<bool>> {
        let mut tx = pool.begin().await?;
        let mut moved = Vec::with_capacity(sends.len());
        for send in sends {
            let done = sqlx::query(
                "UPDATE deliveries SET state = 'sent', escape_message = COALESCE($1, escape_message), \
                 attempts = attempts + 1, updated_at = $2 \
                 WHERE campaign_id = $3 AND consumer_id = $4 AND state = $5",
            )
            .bind(send.escape.as_deref())
            .bind(now)
            .bind(campaign_id)
            .bind(&send.consumer_id)
            .bind(send.from.as_str())
            .execute(&mut *tx)
            .await?;
            moved.push(done.rows_affected() == 1);
        }
        tx.commit().await?;
        Ok(moved)
    }
}
