//! Answered acknowledgements, written to the store together.
//!
//! Every consumer of a campaign acknowledges its escape, and the answer may only
//! go once the pending context is stored: one statement per acknowledgement was
//! the largest share of a campaign's store work (docs/performance.md). One writer
//! takes whatever is queued when its previous write has committed, so a lone
//! acknowledgement is written alone and at once, and a burst shares a statement.
//! Each caller still waits for its own row to be stored before it answers.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::clock::now;
use crate::store::{Negotiation, Store, StoreError};

/// Most rows in one statement.
pub const BATCH: usize = 500;
/// Acknowledgements queued before callers wait for room.
const QUEUE: usize = 4 * BATCH;

type Reply = oneshot::Sender<Result<bool, StoreError>>;

/// The queue to the writer.
pub struct Negotiations {
    queue: mpsc::Sender<(Negotiation, Reply)>,
}

impl Negotiations {
    /// Starts the writer on the current runtime; it stops when this is dropped.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (queue, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, rx));
        Self { queue }
    }

    /// Stores `row` (see [`Store::negotiate_deliveries`]); true if the delivery moved
    /// to negotiating.
    pub async fn record(&self, row: Negotiation) -> Result<bool, StoreError> {
        let closed = || StoreError::Database(sqlx::Error::PoolClosed);
        let (reply, answer) = oneshot::channel();
        self.queue.send((row, reply)).await.map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }
}

async fn write(store: Arc<dyn Store>, mut rx: mpsc::Receiver<(Negotiation, Reply)>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        let (rows, replies): (Vec<_>, Vec<_>) = batch.drain(..).unzip();
        metrics::histogram!("pqescape_negotiation_batch_rows").record(rows.len() as f64);
        let at = now();
        match store.negotiate_deliveries(&rows, at).await {
            Ok(moved) => {
                for (reply, moved) in replies.into_iter().zip(moved) {
                    let _ = reply.send(Ok(moved));
                }
            }
            Err(e) if rows.len() == 1 => {
                let _ = replies.into_iter().next().map(|reply| reply.send(Err(e)));
            }
            Err(e) => {
                // One row must not fail the others: each goes again alone, and
                // gets its own answer.
                tracing::warn!(error = %e, rows = rows.len(), "a batch of answered acknowledgements failed; writing them one by one");
                for (row, reply) in rows.into_iter().zip(replies) {
                    let alone = store.negotiate_deliveries(std::slice::from_ref(&row), at).await;
                    let _ = reply.send(alone.map(|moved| moved.first().copied().unwrap_or(false)));
                }
            }
        }
    }
}
