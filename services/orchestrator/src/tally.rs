//! A campaign's deliveries counted once for every replica.
//!
//! The engine steers each running campaign twice a second (failure threshold,
//! waves, completion, in-flight cap) from a count of its deliveries by wave and
//! state, and a count reads every delivery of the campaign: about 45 ms of
//! PostgreSQL for 100,000 of them. With every replica counting for itself, six
//! replicas made twelve such counts a second. Now one replica at a time claims
//! the next count (a compare-and-set on the time of the last claim), makes it
//! and stores it; every replica reads it until it is [`MAX_AGE_MS`] old.
//!
//! A count read this way is at most about two [`MAX_AGE_MS`] old. Deliveries
//! only move forward (pending, then out, then ended), so an old count never
//! shows fewer open deliveries or fewer failures than there are: a wave is never
//! opened nor a campaign completed early, only up to that much late. What an old
//! count misses is what happened since: each replica adds the escapes it sent
//! to what the count says is in flight, so its in-flight cap holds, and takes
//! off the deliveries it ended, so a capped campaign does not wait for the next
//! count to send the next escapes.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::delivery::DeliveryTally;
use crate::store::{Store, StoreResult};

/// How long a count serves before a replica makes the next one.
pub const MAX_AGE_MS: i64 = 1_000;

/// A count and the time (Unix milliseconds) of the claim under which it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Counted {
    /// The deliveries by wave and state.
    pub tally: DeliveryTally,
    /// When its claim was made; it names the count.
    pub at_ms: i64,
}

/// What the store holds for a campaign: the last claim, and the last count made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharedTally {
    /// When the last count was claimed (Unix milliseconds).
    pub claimed_at_ms: i64,
    /// The last count stored; `None` until the first claimer stores one.
    pub counted: Option<Counted>,
}

/// What this replica did to a campaign's deliveries since the count it last used.
#[derive(Clone, Copy, Debug, Default)]
struct Since {
    /// The count's `at_ms`.
    at_ms: i64,
    /// Escapes first sent.
    sent: u64,
    /// Deliveries this replica ended (migrated or drill passed).
    ended: u64,
}

/// This replica's view of the shared counts: what it did since each one.
#[derive(Debug, Default)]
pub struct Tallies {
    since: Mutex<HashMap<String, Since>>,
}

impl Tallies {
    /// Campaign `id`'s count at `now_ms`: the shared one while it is fresh,
    /// otherwise a new one if this replica wins the claim, otherwise the last.
    pub async fn count(&self, store: &dyn Store, id: &str, now_ms: i64) -> StoreResult<Counted> {
        let shared = store.shared_tally(id).await?;
        // Either side of now: a replica whose clock runs ahead does not keep the
        // others from counting for longer than that.
        let fresh = shared
            .as_ref()
            .is_some_and(|s| now_ms.abs_diff(s.claimed_at_ms) < MAX_AGE_MS.unsigned_abs());
        if !fresh {
            let seen = shared.as_ref().map(|s| s.claimed_at_ms);
            if store.claim_tally(id, seen, now_ms).await? {
                let counted = Counted { tally: store.delivery_tally(id).await?, at_ms: now_ms };
                store.save_tally(id, &counted).await?;
                metrics::counter!("pqescape_campaign_counts_total").increment(1);
                return Ok(counted);
            }
        }
        match shared.and_then(|s| s.counted) {
            Some(counted) => Ok(counted),
            // The first count of the campaign is being made elsewhere: make one
            // here for this sweep alone.
            None => Ok(Counted { tally: store.delivery_tally(id).await?, at_ms: now_ms }),
        }
    }

    /// Escapes of campaign `id` in flight, from `counted` and what this replica
    /// did since: the escapes it sent are added, the deliveries it ended taken
    /// off. What another replica did since is not known here; the next count has it.
    pub fn in_flight(&self, id: &str, counted: &Counted) -> u64 {
        let mut since = self.since.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = since.entry(id.to_owned()).or_default();
        if entry.at_ms != counted.at_ms {
            *entry = Since { at_ms: counted.at_ms, ..Since::default() };
        }
        counted.tally.in_flight().saturating_add(entry.sent).saturating_sub(entry.ended)
    }

    /// Records `n` escapes of campaign `id` first sent after count `at_ms`.
    pub fn sent(&self, id: &str, at_ms: i64, n: u64) {
        let mut since = self.since.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = since.entry(id.to_owned()).or_default();
        if entry.at_ms != at_ms {
            *entry = Since { at_ms, ..Since::default() };
        }
        entry.sent = entry.sent.saturating_add(n);
    }

    /// Records a delivery of campaign `id` that this replica ended. One ended
    /// before the count in use but recorded after it is simply not taken off,
    /// which errs on the side of the cap.
    pub fn ended(&self, id: &str) {
        let mut since = self.since.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entry) = since.get_mut(id) {
            entry.ended = entry.ended.saturating_add(1);
        }
    }

    /// Forgets every campaign but the `running` ones.
    pub fn retain(&self, running: &[String]) {
        let mut since = self.since.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        since.retain(|id, _| running.contains(id));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counted(at_ms: i64, sent: u64) -> Counted {
        use crate::delivery::DeliveryState as D;
        Counted { tally: DeliveryTally(vec![(0, D::Pending, 10), (0, D::Sent, sent)]), at_ms }
    }

    #[test]
    fn what_this_replica_did_since_a_count_moves_what_is_in_flight() {
        let t = Tallies::default();
        let first = counted(1_000, 2);
        assert_eq!(t.in_flight("a", &first), 2);
        t.sent("a", 1_000, 3);
        t.sent("a", 1_000, 2);
        t.ended("a");
        assert_eq!(t.in_flight("a", &first), 6);
        // A newer count includes all of it.
        let next = counted(2_000, 6);
        assert_eq!(t.in_flight("a", &next), 6);
        t.sent("a", 2_000, 1);
        assert_eq!(t.in_flight("a", &next), 7);
        // Ended deliveries beyond the count take it to zero, no further.
        for _ in 0..9 {
            t.ended("a");
        }
        assert_eq!(t.in_flight("a", &next), 0);
        t.ended("b");
        t.sent("b", 2_000, 4);
        t.retain(&["b".to_owned()]);
        assert_eq!((t.in_flight("a", &next), t.in_flight("b", &next)), (6, 10));
    }
}
