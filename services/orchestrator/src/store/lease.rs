//! Pooled connections kept between the statements of the escape path.
//!
//! sqlx pings a connection whenever it goes back to its pool: one more round
//! trip for every statement, and the escape path runs one statement per step (an
//! acknowledgement, a finished message, a channel hello). The pings cost the
//! orchestrator about a tenth of its CPU (docs/performance.md). A lease takes a
//! connection from a short list kept here, or else from the pool. It goes back
//! on the list only once its statement has completed. A connection whose
//! statement failed, or whose future was dropped half-way, goes back to the
//! pool instead, where sqlx's ping recovers or discards it.
//!
//! The list is short (half the pool at most) so that the pool's other
//! users are never starved. A kept connection idle for [`PING_WHEN_IDLE`] is
//! not used again: it goes back to the pool and its idle check.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool};

/// A pooled connection idle this long is pinged before use.
pub(super) const PING_WHEN_IDLE: Duration = Duration::from_secs(10);

type Kept<DB> = Arc<Mutex<Vec<(PoolConnection<DB>, Instant)>>>;

/// The pool and the connections kept out of it.
pub(super) struct Leases<DB: Database> {
    pool: Pool<DB>,
    kept: Kept<DB>,
    keep: usize,
}

impl<DB: Database> Clone for Leases<DB> {
    fn clone(&self) -> Self {
        Self { pool: self.pool.clone(), kept: self.kept.clone(), keep: self.keep }
    }
}

impl<DB: Database> std::fmt::Debug for Leases<DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Leases").field("keep", &self.keep).finish_non_exhaustive()
    }
}

fn lock<DB: Database>(kept: &Kept<DB>) -> MutexGuard<'_, Vec<(PoolConnection<DB>, Instant)>> {
    kept.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<DB: Database> Leases<DB> {
    /// Keeps up to `keep` connections of `pool` between leases (0: none, for a
    /// pool of one connection).
    pub(super) fn new(pool: Pool<DB>, keep: usize) -> Self {
        Self { pool, kept: Arc::default(), keep }
    }

    /// A connection: the most recently kept one still fresh, or one from the pool.
    pub(super) async fn lease(&self) -> Result<Lease<DB>, sqlx::Error> {
        let fresh = {
            let mut kept = lock(&self.kept);
            // Stale ones (at the bottom) go back to the pool.
            kept.retain(|(_, at)| at.elapsed() < PING_WHEN_IDLE);
            kept.pop().map(|(conn, _)| conn)
        };
        let conn = match fresh {
            Some(conn) => conn,
            None => self.pool.acquire().await?,
        };
        Ok(Lease { conn, home: self.kept.clone(), keep: self.keep })
    }

    /// How many connections are kept now.
    #[cfg(test)]
    pub(super) fn kept(&self) -> usize {
        lock(&self.kept).len()
    }
}

/// One leased connection. Dropped without [`Lease::give_back`], its connection
/// returns to the pool.
pub(super) struct Lease<DB: Database> {
    conn: PoolConnection<DB>,
    home: Kept<DB>,
    keep: usize,
}

impl<DB: Database> Lease<DB> {
    /// The connection, to run statements on.
    pub(super) fn conn(&mut self) -> &mut DB::Connection {
        &mut self.conn
    }

    /// After a statement that completed: keeps the connection for the next lease,
    /// or returns it to the pool when enough are kept.
    pub(super) fn give_back(self) {
        let mut kept = lock(&self.home);
        if kept.len() < self.keep {
            kept.push((self.conn, Instant::now()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::SqlitePoolOptions;

    #[tokio::test]
    async fn completed_leases_are_kept_up_to_the_limit_and_the_rest_go_back() {
        let pool =
            SqlitePoolOptions::new().max_connections(4).connect("sqlite::memory:").await.unwrap();
        let leases = Leases::new(pool, 2);
        let mut held = Vec::new();
        for _ in 0..3 {
            let mut lease = leases.lease().await.unwrap();
            sqlx::query("SELECT 1").execute(lease.conn()).await.unwrap();
            held.push(lease);
        }
        held.into_iter().for_each(Lease::give_back);
        assert_eq!(leases.kept(), 2, "two kept, the third back in the pool");

        // The next lease takes a kept one; if its statement fails it is not kept.
        let mut lease = leases.lease().await.unwrap();
        assert_eq!(leases.kept(), 1);
        assert!(sqlx::query("SELECT no_such_column").execute(lease.conn()).await.is_err());
        drop(lease);
        assert_eq!(leases.kept(), 1);
    }

    #[tokio::test]
    async fn a_pool_of_one_keeps_nothing() {
        let pool =
            SqlitePoolOptions::new().max_connections(1).connect("sqlite::memory:").await.unwrap();
        let leases = Leases::new(pool.clone(), 0);
        leases.lease().await.unwrap().give_back();
        assert_eq!(leases.kept(), 0);
        // The pool's one connection is free again for its other users.
        let timeout = std::time::Duration::from_secs(5);
        assert!(tokio::time::timeout(timeout, pool.acquire()).await.is_ok());
    }
}
