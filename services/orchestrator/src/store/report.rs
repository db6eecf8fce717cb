//! What operators read about a running campaign, beyond its counts: each
//! delivery beside its consumer's name, and the deliveries that ended, bucketed
//! over time. Read-only views over the `deliveries` table.

use serde::Serialize;

use super::Timestamp;
use crate::delivery::DeliveryState;

/// A listing of one campaign's deliveries: an optional state, a keyset page.
#[derive(Clone, Debug)]
pub struct DeliveryQuery {
    /// The campaign.
    pub campaign_id: String,
    /// Only deliveries in this state.
    pub state: Option<DeliveryState>,
    /// Return deliveries whose consumer name sorts after this one.
    pub after: Option<String>,
    /// Page size.
    pub limit: u32,
}

/// A delivery as an operator sees it: who, where it stands, why it failed.
/// Never the escape or the sealed handshake state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DeliveryRow {
    /// Consumer id.
    pub consumer_id: String,
    /// Consumer name (unique, the page cursor).
    pub consumer_name: String,
    /// Wave index (0 is the canary).
    pub wave: u32,
    /// The escape's sequence number.
    pub sequence: u64,
    /// State.
    pub state: DeliveryState,
    /// Why it failed: the agent's reason code and its name.
    pub reason: Option<String>,
    /// Last change of state.
    pub updated_at: Timestamp,
}

/// Deliveries that reached one end state within one time bucket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndedInBucket {
    /// Start of the bucket, Unix seconds, a multiple of the bucket width.
    pub at: Timestamp,
    /// The end state.
    pub state: DeliveryState,
    /// How many.
    pub count: u64,
}
