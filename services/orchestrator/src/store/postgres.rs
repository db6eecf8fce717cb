//! The production store: PostgreSQL, shared by every orchestrator replica.

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Pool, Postgres};
use std::str::FromStr;

use std::collections::HashSet;

use super::lease::{Leases, PING_WHEN_IDLE};
use super::{Dispatch, StoreResult};

/// PostgreSQL store.
#[derive(Clone, Debug)]
pub struct PgStore {
    pool: Pool<Postgres>,
    /// The escape path's connections, kept between its statements (lease.rs).
    leases: Leases<Postgres>,
}

impl PgStore {
    /// Connects with a `postgres://` URL and applies migrations (under an advisory
    /// lock that sqlx takes, so replicas starting together migrate once).
    pub async fn connect(url: &str, max_connections: u32) -> StoreResult<Self> {
        let options = PgConnectOptions::from_str(url)?.application_name("pqescape-orchestrator");
        let pool = PgPoolOptions::new()
            .max_connections(max_connections)
            // sqlx pings every connection it hands out by default, a round trip per
            // statement; a connection busy a moment ago needs no ping. One that sat
            // idle is checked, so a restarted server costs no failed statement.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_WHEN_IDLE {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
            .connect_with(options)
            .await?;
        sqlx::migrate!("../../migrations/postgres").run(&pool).await?;
        let keep = usize::try_from(max_connections / 2).unwrap_or(0);
        Ok(Self { leases: Leases::new(pool.clone(), keep), pool })
    }
}

impl PgStore {
    /// Records a dispatch's sends in one statement, whatever their number: a
    /// delivery moves to `sent` only from the state the engine read it in. A
    /// dispatch of 500 sends was 500 round trips in one transaction.
    async fn record_sends(
        pool: &Pool<Postgres>,
        campaign_id: &str,
        sends: &[Dispatch],
        now: Timestamp,
    ) -> StoreResult<Vec<bool>> {
        let consumers: Vec<&str> = sends.iter().map(|s| s.consumer_id.as_str()).collect();
        let from: Vec<&str> = sends.iter().map(|s| s.from.as_str()).collect();
        let escapes: Vec<Option<&[u8]>> = sends.iter().map(|s| s.escape.as_deref()).collect();
        let moved: HashSet<String> = sqlx::query_scalar(
            "UPDATE deliveries d SET state = 'sent', \
             escape_message = COALESCE(s.escape, d.escape_message), \
             attempts = d.attempts + 1, updated_at = $1 \
             FROM UNNEST($3::text[], $4::text[], $5::bytea[]) AS s(consumer_id, from_state, escape) \
             WHERE d.campaign_id = $2 AND d.consumer_id = s.consumer_id AND d.state = s.from_state \
             RETURNING d.consumer_id",
        )
        .bind(now)
        .bind(campaign_id)
        .bind(&consumers)
        .bind(&from)
        .bind(&escapes)
        .fetch_all(pool)
        .await?
        .into_iter()
        .collect();
        Ok(sends.iter().map(|s| moved.contains(&s.consumer_id)).collect())
    }
}

// Appends take the table lock so that replicas never fork the chain; readers are not blocked.
// Heartbeat batches skip the rows other transactions hold.
super::sql::sql_store!(
    PgStore,
    Postgres,
    "postgres",
    audit_lock = Some("LOCK TABLE audit_log IN SHARE ROW EXCLUSIVE MODE"),
    migrate_in_one = Some(MIGRATE_IN_ONE),
    skip_locked = " FOR UPDATE SKIP LOCKED"
);

/// A migration as one statement: the delivery ends if it still holds the pending
/// context the finished message was checked against and, only if it did, the
/// consumer takes its new PSK, key id and suite. One statement is atomic.
const MIGRATE_IN_ONE: &str = "WITH ended AS (\
     UPDATE deliveries SET state = $1, pending_sealed = NULL, updated_at = $2 \
     WHERE campaign_id = $3 AND consumer_id = $4 AND state = 'negotiating' AND pending_sealed = $5 \
     RETURNING consumer_id) \
     UPDATE consumers SET psk_sealed = $6, key_id = $7, suite = $8, updated_at = $2 \
     WHERE id IN (SELECT consumer_id FROM ended)";
