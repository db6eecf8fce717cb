//! One consumer's progress through one campaign: the persisted state machine of
//! the campaign engine (docs/architecture.md).

use serde::Serialize;

/// Where a delivery stands. Each state is stored before the message that leads
/// out of it is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its wave and for the agent to be connected.
    Pending,
    /// The escape was sent.
    Sent,
    /// The agent's acknowledgement arrived and verified. The engine stores an ack
    /// together with its pending context, as `Negotiating`, in one write; this
    /// state remains for rows and API clients that know it.
    Acknowledged,
    /// The handshake response was sent; the agent's finished message is awaited.
    Negotiating,
    /// The new context is in force: PSK ratcheted, suite recorded.
    Migrated,
    /// A drill went through every step without changing anything.
    DrillPassed,
    /// The agent refused or failed; `reason` says why.
    Failed,
    /// The campaign's deadline passed first.
    Expired,
}

impl DeliveryState {
    /// Every state, in order.
    pub const ALL: [DeliveryState; 8] = [
        Self::Pending,
        Self::Sent,
        Self::Acknowledged,
        Self::Negotiating,
        Self::Migrated,
        Self::DrillPassed,
        Self::Failed,
        Self::Expired,
    ];
    /// States from which the delivery can still move.
    pub const OPEN: [DeliveryState; 4] =
        [Self::Pending, Self::Sent, Self::Acknowledged, Self::Negotiating];

    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sent => "sent",
            Self::Acknowledged => "acknowledged",
            Self::Negotiating => "negotiating",
            Self::Migrated => "migrated",
            Self::DrillPassed => "drill_passed",
            Self::Failed => "failed",
            Self::Expired => "expired",
        }
    }

    /// Parses [`DeliveryState::as_str`].
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// A stored delivery.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Campaign.
    pub campaign_id: String,
    /// Consumer.
    pub consumer_id: String,
    /// Wave index (0 is the canary).
    pub wave: u32,
    /// The escape's sequence number, reserved when the delivery was created.
    pub sequence: u64,
    /// State.
    pub state: DeliveryState,
    /// Why it failed, as a reason code name.
    pub reason: Option<String>,
    /// The escape as sent (not secret: MACed, and encrypted where it says so).
    #[serde(skip)]
    pub escape: Option<Vec<u8>>,
    /// The orchestrator's pending handshake state, sealed under the master key.
    #[serde(skip)]
    pub pending_sealed: Option<Vec<u8>>,
    /// How many times the delivery has changed or been sent again.
    pub attempts: u32,
    /// Last change.
    pub updated_at: i64,
}

/// Shortest first wait before an escape that drew no answer is sent again.
pub const RETRY_FIRST: i64 = 5;
/// Longest wait between two sends of the same escape.
pub const RETRY_MAX: i64 = 300;
/// Orchestrator time per answered escape, in milliseconds, rounded up from what a
/// campaign costs (docs/performance.md): how long the answers ahead of an escape
/// keep it waiting.
pub const ANSWER_MS: u64 = 2;

/// The first wait of a campaign with `in_flight` escapes out: [`RETRY_FIRST`], or,
/// when more answers are ahead than the orchestrator gets through in that time,
/// as long as they take. Without it a large campaign sends again what its agents
/// have answered and the orchestrator has not yet read.
pub fn first_wait(in_flight: u64) -> i64 {
    let ahead = i64::try_from(in_flight.saturating_mul(ANSWER_MS) / 1000).unwrap_or(RETRY_MAX);
    ahead.clamp(RETRY_FIRST, RETRY_MAX)
}

impl Delivery {
    /// Whether an escape sent and not yet answered is due to be sent again at `now`:
    /// the wait doubles with each send, from `first` (see [`first_wait`]) to
    /// [`RETRY_MAX`] seconds. The same escape goes again (the agent resumes it),
    /// never a new one.
    pub fn retry_due(&self, now: i64, first: i64) -> bool {
        let sends = self.attempts.saturating_sub(1).min(16);
        let wait = first.saturating_mul(1 << sends).min(RETRY_MAX);
        self.state == DeliveryState::Sent && now - self.updated_at >= wait
    }
}

/// A campaign's deliveries counted by wave and state, as one sweep reads them:
/// the engine steers the campaign and caps what is in flight from this one
/// count, rather than counting the whole campaign once for each decision.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeliveryTally(pub Vec<(u32, DeliveryState, u64)>);

impl DeliveryTally {
    fn count(&self, keep: impl Fn(u32, DeliveryState) -> bool) -> u64 {
        self.0.iter().filter(|(w, s, _)| keep(*w, *s)).map(|(.., n)| n).sum()
    }

    /// Escapes out and not yet answered to the end.
    pub fn in_flight(&self) -> u64 {
        use DeliveryState as D;
        self.count(|_, s| matches!(s, D::Sent | D::Acknowledged | D::Negotiating))
    }

    /// Deliveries that failed.
    pub fn failed(&self) -> u64 {
        self.count(|_, s| s == DeliveryState::Failed)
    }

    /// Deliveries past pending: sent at least once, or ended.
    pub fn attempted(&self) -> u64 {
        self.count(|_, s| s != DeliveryState::Pending)
    }

    /// Open deliveries in waves up to and including `wave`.
    pub fn open_up_to(&self, wave: u32) -> u64 {
        self.count(|w, s| w <= wave && DeliveryState::OPEN.contains(&s))
    }

    /// The first wave after `wave` that has deliveries.
    pub fn next_wave_after(&self, wave: u32) -> Option<u32> {
        self.0.iter().map(|(w, ..)| *w).filter(|w| *w > wave).min()
    }

    /// The stored form: `wave:state:n` items joined by commas.
    pub fn encode(&self) -> String {
        let items: Vec<String> =
            self.0.iter().map(|(w, s, n)| format!("{w}:{}:{n}", s.as_str())).collect();
        items.join(",")
    }

    /// Parses [`DeliveryTally::encode`]; `None` if any item is malformed.
    pub fn decode(s: &str) -> Option<Self> {
        if s.is_empty() {
            return Some(Self::default());
        }
        s.split(',')
            .map(|item| {
                let mut parts = item.split(':');
                let wave = parts.next()?.parse().ok()?;
                let state = DeliveryState::parse(parts.next()?)?;
                let n = parts.next()?.parse().ok()?;
                parts.next().is_none().then_some((wave, state, n))
            })
            .collect::<Option<_>>()
            .map(Self)
    }
}

/// What a successful, non-drill delivery changes on its consumer.
#[derive(Clone, Debug)]
pub struct Migration {
    /// The ratcheted key id.
    pub key_id: u32,
    /// The ratcheted PSK, sealed for the consumer's row.
    pub psk_sealed: Vec<u8>,
    /// The suite now in force.
    pub suite: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tally_reads_back_as_stored_and_refuses_what_it_did_not_write() {
        use DeliveryState as D;
        let t = DeliveryTally(vec![(0, D::Migrated, 9), (0, D::Sent, 1), (3, D::Pending, 12)]);
        assert_eq!(t.encode(), "0:migrated:9,0:sent:1,3:pending:12");
        assert_eq!(DeliveryTally::decode(&t.encode()), Some(t));
        assert_eq!(DeliveryTally::decode(""), Some(DeliveryTally::default()));
        for bad in ["0:sent", "0:sent:1:2", "x:sent:1", "0:gone:1", "0:sent:-1", "0:sent:1,"] {
            assert_eq!(DeliveryTally::decode(bad), None, "{bad}");
        }
    }

    fn sent(attempts: u32, updated_at: i64) -> Delivery {
        Delivery {
            campaign_id: "c".into(),
            consumer_id: "k".into(),
            wave: 0,
            sequence: 1,
            state: DeliveryState::Sent,
            reason: None,
            escape: Some(vec![1]),
            pending_sealed: None,
            attempts,
            updated_at,
        }
    }

    #[test]
    fn an_unanswered_escape_is_sent_again_with_a_doubling_wait() {
        // Sent once (attempts 1): due after 5 s; after a retry (2): 10 s; then 20 s.
        for (attempts, wait) in [(1, 5), (2, 10), (3, 20), (7, 300), (40, 300)] {
            let d = sent(attempts, 1000);
            let first = RETRY_FIRST;
            assert!(
                !d.retry_due(1000 + wait - 1, first),
                "attempts {attempts}: not before {wait} s"
            );
            assert!(d.retry_due(1000 + wait, first), "attempts {attempts}: due at {wait} s");
        }
    }

    #[test]
    fn the_first_wait_grows_with_the_answers_ahead() {
        assert_eq!(first_wait(0), RETRY_FIRST);
        assert_eq!(first_wait(1_000), RETRY_FIRST, "a thousand answers take 2 s");
        assert_eq!(first_wait(19_000), 38);
        assert_eq!(first_wait(u64::MAX), RETRY_MAX);
        let d = sent(1, 1000);
        assert!(!d.retry_due(1000 + 37, first_wait(19_000)));
        assert!(d.retry_due(1000 + 38, first_wait(19_000)));
    }

    #[test]
    fn only_a_sent_delivery_is_retried() {
        for state in DeliveryState::ALL {
            let d = Delivery { state, ..sent(1, 0) };
            assert_eq!(d.retry_due(10_000, RETRY_FIRST), state == DeliveryState::Sent, "{state:?}");
        }
    }
}
