//! The virtual agents. Each registers as a consumer, enrolls exactly as
//! `pqescape-agent enroll` does (`enroll_with`), and runs the agent's own channel
//! loop (`run_with`) over its own TLS connection, with real key exchanges and
//! MACs. Only the state lives in memory instead of a file: [`SimState`], which also
//! notes when the agent's escape ended.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use pqescape_agent::state::{AgentState, StateError, StateStore};

/// How one virtual agent behaves, drawn from the seed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behaviour {
    /// Answers at once.
    Normal,
    /// Never connects.
    Offline,
    /// Pauses before each answer.
    Slow,
    /// Believes it already runs a stronger suite, so it refuses the escape as a
    /// downgrade: a real protocol failure, reported with its reason.
    Failing,
}

/// The shares of each behaviour, from 0 to 1.
#[derive(Clone, Copy, Debug)]
pub struct Mix {
    /// Share offline.
    pub offline: f64,
    /// Share slow.
    pub slow: f64,
    /// Share failing.
    pub failing: f64,
}

impl Mix {
    /// Agent `index`'s behaviour: the same for the same seed, run after run.
    pub fn behaviour(&self, seed: u64, index: usize) -> Behaviour {
        let draw = (splitmix64(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)) >> 11)
            as f64
            / (1u64 << 53) as f64;
        if draw < self.offline {
            Behaviour::Offline
        } else if draw < self.offline + self.slow {
            Behaviour::Slow
        } else if draw < self.offline + self.slow + self.failing {
            Behaviour::Failing
        } else {
            Behaviour::Normal
        }
    }
}

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Counts shared by every agent of a run.
#[derive(Debug, Default)]
pub struct Tally {
    /// Agents whose escape handshake has ended.
    pub ended: AtomicUsize,
}

/// An agent's state in memory; notes when its escape handshake ended (the
/// moment a pending escape is cleared).
pub struct SimState {
    state: Mutex<Option<AgentState>>,
    ended_at: Mutex<Option<Instant>>,
    tally: Arc<Tally>,
}

impl SimState {
    /// Holding `state`.
    pub fn new(state: AgentState, tally: Arc<Tally>) -> Self {
        Self { state: Mutex::new(Some(state)), ended_at: Mutex::new(None), tally }
    }

    /// When the escape ended, if it has.
    pub fn ended_at(&self) -> Option<Instant> {
        self.ended_at.lock().ok().and_then(|t| *t)
    }
}

impl StateStore for SimState {
    fn load(&self) -> Result<Option<AgentState>, StateError> {
        Ok(self.state.lock().map_err(|_| StateError::Poisoned)?.clone())
    }

    fn save(&self, new: &AgentState) -> Result<(), StateError> {
        let mut state = self.state.lock().map_err(|_| StateError::Poisoned)?;
        let was_pending = state.as_ref().is_some_and(|s| s.pending_escape.is_some());
        if was_pending && new.pending_escape.is_none() {
            let mut ended = self.ended_at.lock().map_err(|_| StateError::Poisoned)?;
            if ended.is_none() {
                *ended = Some(Instant::now());
                self.tally.ended.fetch_add(1, Ordering::Relaxed);
            }
        }
        *state = Some(new.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviours_follow_the_seed_and_the_shares() {
        let mix = Mix { offline: 0.1, slow: 0.2, failing: 0.05 };
        let draw = |seed| (0..10_000).map(|i| mix.behaviour(seed, i)).collect::<Vec<_>>();
        assert_eq!(draw(7), draw(7), "the same seed, the same fleet");
        assert_ne!(draw(7), draw(8));
        let share = |b| draw(7).iter().filter(|x| **x == b).count() as f64 / 10_000.0;
        assert!((share(Behaviour::Offline) - 0.1).abs() < 0.02);
        assert!((share(Behaviour::Slow) - 0.2).abs() < 0.02);
        assert!((share(Behaviour::Failing) - 0.05).abs() < 0.01);
    }
}
