//! What the dashboard reads about one campaign beyond its progress counts: its
//! deliveries with their consumers and failure reasons, and a timeline of the
//! deliveries that ended, for a chart of migrations over time.

use serde::Serialize;

use crate::Orchestrator;
use crate::admin::{AdminError, Caller};
use crate::clock::now;
use crate::delivery::DeliveryState;
use crate::domain::{Invalid, Role};
use crate::store::{DeliveryQuery, DeliveryRow, Page};

/// Widest timeline bucket a caller may ask for: one day.
pub const MAX_BUCKET_SECS: u32 = 86_400;
/// About how many buckets an automatic width aims for.
const TARGET_BUCKETS: u64 = 60;
/// Automatic bucket widths: steps a reader can count in.
const NICE_WIDTHS: [u32; 14] =
    [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, MAX_BUCKET_SECS];

/// Deliveries that ended in one bucket of time, by end state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TimelineBucket {
    /// Start of the bucket, Unix seconds.
    pub at: i64,
    /// Consumers migrated.
    pub migrated: u64,
    /// Drill deliveries that went through every step.
    pub drill_passed: u64,
    /// Deliveries the agent refused or failed.
    pub failed: u64,
    /// Deliveries the deadline overtook.
    pub expired: u64,
}

/// A campaign's ended deliveries over time. Buckets without any are left out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// Campaign id.
    pub campaign: String,
    /// Width of each bucket, seconds.
    pub bucket_secs: u32,
    /// When the campaign was first fired (creation time if it never was).
    pub from: i64,
    /// When it finished, or now while it runs.
    pub to: i64,
    /// Non-empty buckets, in time order.
    pub buckets: Vec<TimelineBucket>,
}

/// The smallest listed width that keeps `span` seconds to about [`TARGET_BUCKETS`].
pub fn auto_bucket(span: i64) -> u32 {
    let wanted = u64::try_from(span).unwrap_or(0).div_ceil(TARGET_BUCKETS);
    NICE_WIDTHS.into_iter().find(|w| u64::from(*w) >= wanted).unwrap_or(MAX_BUCKET_SECS)
}

impl Orchestrator {
    /// A page of a campaign's deliveries, optionally in one state.
    pub async fn deliveries(
        &self,
        caller: &Caller,
        q: &DeliveryQuery,
    ) -> Result<Page<DeliveryRow>, AdminError> {
        self.campaign(caller, &q.campaign_id).await?;
        Ok(self.store.list_deliveries(q).await?)
    }

    /// A campaign's ended deliveries per bucket of `bucket_secs` (chosen from the
    /// campaign's span when not given).
    pub async fn timeline(
        &self,
        caller: &Caller,
        id: &str,
        bucket_secs: Option<u32>,
    ) -> Result<Timeline, AdminError> {
        caller.require(Role::Viewer)?;
        let c = self.campaign(caller, id).await?;
        let from = c.fired_at.unwrap_or(c.created_at);
        let to = c.finished_at.unwrap_or_else(now);
        let width = match bucket_secs {
            None => auto_bucket(to - from),
            Some(w) if (1..=MAX_BUCKET_SECS).contains(&w) => w,
            Some(_) => {
                let rule = format!("between 1 and {MAX_BUCKET_SECS} seconds");
                return Err(Invalid::new("bucket_secs", rule).into());
            }
        };

        let mut buckets: Vec<TimelineBucket> = Vec::new();
        for row in self.store.ended_deliveries_over_time(id, width).await? {
            if buckets.last().is_none_or(|b| b.at != row.at) {
                buckets.push(TimelineBucket { at: row.at, ..TimelineBucket::default() });
            }
            let Some(bucket) = buckets.last_mut() else { continue };
            match row.state {
                DeliveryState::Migrated => bucket.migrated += row.count,
                DeliveryState::DrillPassed => bucket.drill_passed += row.count,
                DeliveryState::Failed => bucket.failed += row.count,
                DeliveryState::Expired => bucket.expired += row.count,
                _ => {}
            }
        }
        Ok(Timeline { campaign: c.id, bucket_secs: width, from, to, buckets })
    }
}

#[cfg(test)]
mod tests {
    use super::auto_bucket;

    #[test]
    fn automatic_buckets_keep_about_sixty_of_them() {
        assert_eq!(auto_bucket(0), 1);
        assert_eq!(auto_bucket(30), 1);
        assert_eq!(auto_bucket(600), 10);
        assert_eq!(auto_bucket(3600), 60);
        assert_eq!(auto_bucket(86_400), 1800);
        assert_eq!(auto_bucket(90 * 86_400), 86_400);
        assert_eq!(auto_bucket(-5), 1, "a clock step back is not an error");
    }
}
