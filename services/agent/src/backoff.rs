//! Reconnection delays: exponential, capped, with full jitter, so that a fleet
//! that lost its orchestrator does not come back in one synchronised wave.

use std::time::Duration;

use rand_core::Rng;

/// Exponential backoff with full jitter.
#[derive(Clone, Debug)]
pub struct Backoff {
    attempt: u32,
    base: Duration,
    max: Duration,
}

impl Backoff {
    /// Delays grow from `base` and never exceed `max`.
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { attempt: 0, base, max }
    }

    /// The ceiling of the next delay, before jitter.
    pub fn ceiling(&self) -> Duration {
        let factor = 1u32.checked_shl(self.attempt.min(20)).unwrap_or(u32::MAX);
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The next delay: uniform in [base/2, ceiling], then the ceiling doubles.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let floor = self.base / 2;
        floor + uniform(ceiling.saturating_sub(floor))
    }

    /// After a connection that lasted: start again from `base`.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

/// A delay drawn uniformly from [0, `max`], to the millisecond.
pub fn uniform(max: Duration) -> Duration {
    let span = u64::try_from(max.as_millis()).unwrap_or(u64::MAX).saturating_add(1);
    Duration::from_millis(rand_core::UnwrapErr(getrandom::SysRng).next_u64() % span)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_stay_within_bounds_and_reset() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(60));
        let mut ceilings = Vec::new();
        for _ in 0..10 {
            ceilings.push(b.ceiling());
            let d = b.next_delay();
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_secs(60), "{d:?}");
        }
        assert_eq!(ceilings[..4], [1, 2, 4, 8].map(Duration::from_secs));
        assert_eq!(*ceilings.last().unwrap(), Duration::from_secs(60));
        b.reset();
        assert_eq!(b.ceiling(), Duration::from_secs(1));
    }

    #[test]
    fn uniform_delays_stay_within_their_bound_and_vary() {
        assert_eq!(uniform(Duration::ZERO), Duration::ZERO);
        let max = Duration::from_secs(30);
        let draws: Vec<Duration> = (0..200).map(|_| uniform(max)).collect();
        assert!(draws.iter().all(|d| *d <= max));
        let distinct: std::collections::HashSet<_> = draws.iter().collect();
        assert!(distinct.len() > 100, "{} distinct delays in 200", distinct.len());
    }
}
