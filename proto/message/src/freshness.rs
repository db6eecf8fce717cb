//! Anti-replay and freshness rules (protocol.md §7.1, §7.2).
//!
//! These checks run only on authenticated messages: an unauthenticated one can
//! never move a consumer's sequence or make it judge time.

use crate::error::{Rejection, Result};

/// Longest validity window an escape or manifest may declare: 90 days.
pub const MAX_VALIDITY_SECS: u64 = 90 * 24 * 3600;
/// Default clock-skew allowance between orchestrator and agent: 5 minutes.
pub const DEFAULT_CLOCK_SKEW_SECS: u64 = 300;
/// Largest jump above the last accepted sequence an agent accepts (§7.1).
pub const MAX_SEQUENCE_GAP: u64 = 1 << 16;

/// Checks `issued_at <= now + skew` and `now <= not_after + skew`, and the window's shape.
pub fn check_window(issued_at: u64, not_after: u64, now: u64, skew: u64) -> Result<()> {
    if not_after <= issued_at || not_after - issued_at > MAX_VALIDITY_SECS {
        return Err(Rejection::BadValidityWindow.into());
    }
    if issued_at > now.saturating_add(skew) {
        return Err(Rejection::NotYetValid.into());
    }
    if now > not_after.saturating_add(skew) {
        return Err(Rejection::Expired.into());
    }
    Ok(())
}

/// How a sequence number is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SequenceRule {
    /// A new escape: strictly above the last accepted, by at most [`MAX_SEQUENCE_GAP`].
    Fresh,
    /// Resuming the escape already accepted and persisted: equal to the last accepted.
    Resume,
}

/// Checks `sequence` against the last one the consumer persisted.
pub fn check_sequence(sequence: u64, last_accepted: u64, rule: SequenceRule) -> Result<()> {
    match rule {
        SequenceRule::Resume if sequence == last_accepted => Ok(()),
        SequenceRule::Resume => Err(Rejection::Replay.into()),
        SequenceRule::Fresh if sequence <= last_accepted => Err(Rejection::Replay.into()),
        SequenceRule::Fresh if sequence - last_accepted > MAX_SEQUENCE_GAP => {
            Err(Rejection::SequenceTooFarAhead.into())
        }
        SequenceRule::Fresh => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn window_edges_honour_the_skew() {
        let (t0, t1, skew) = (1_000, 2_000, 60);
        assert_eq!(check_window(t0, t1, t0 - 60, skew), Ok(()));
        assert_eq!(check_window(t0, t1, t0 - 61, skew), Err(Rejection::NotYetValid.into()));
        assert_eq!(check_window(t0, t1, t1 + 60, skew), Ok(()));
        assert_eq!(check_window(t0, t1, t1 + 61, skew), Err(Rejection::Expired.into()));
    }

    #[test]
    fn empty_or_overlong_windows_are_refused() {
        let bad = Err(Error::Rejected(Rejection::BadValidityWindow));
        assert_eq!(check_window(5, 5, 5, 0), bad);
        assert_eq!(check_window(0, MAX_VALIDITY_SECS + 1, 1, 0), bad);
        assert_eq!(check_window(u64::MAX - 1, u64::MAX, u64::MAX, u64::MAX), Ok(()));
    }

    #[test]
    fn sequences_must_rise_but_not_leap() {
        assert_eq!(check_sequence(1, 0, SequenceRule::Fresh), Ok(()));
        assert_eq!(check_sequence(5, 5, SequenceRule::Fresh), Err(Rejection::Replay.into()));
        assert_eq!(check_sequence(4, 5, SequenceRule::Fresh), Err(Rejection::Replay.into()));
        let far = 5 + MAX_SEQUENCE_GAP + 1;
        let refused = Err(Rejection::SequenceTooFarAhead.into());
        assert_eq!(check_sequence(far, 5, SequenceRule::Fresh), refused);
        assert_eq!(check_sequence(5, 5, SequenceRule::Resume), Ok(()));
        assert_eq!(check_sequence(6, 5, SequenceRule::Resume), Err(Rejection::Replay.into()));
    }
}
