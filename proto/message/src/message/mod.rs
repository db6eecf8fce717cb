//! Codecs of the messages of protocol.md §6: bytes to typed fields and back.
//!
//! Codecs check structure only (lengths, flags, enumerations). Whether a message
//! is authentic, fresh and meant for the receiver is decided by the state
//! machines in `agent`, `orchestrator` and `enrollment`, which own the keys.

mod ack;
mod channel;
mod enroll;
mod escape;
mod finished;
mod manifest;
mod response;
mod status;

pub use ack::Ack;
pub use channel::{CHALLENGE_LEN, ChannelHello, MAX_AGENT_VERSION_LEN};
pub use enroll::{EnrollAccept, EnrollConfirm, EnrollHello, SEALED_TOKEN_LEN};
pub use escape::{Escape, EscapeFlags, MAX_DIRECTIVES_LEN, NONCE_LEN};
pub use finished::Finished;
pub use manifest::{CampaignManifest, MAX_SELECTOR_LEN};
pub use response::HandshakeResponse;
pub use status::{MAX_DETAIL_LEN, Status, StatusReport};

use crate::error::Result;
use crate::types::{CampaignId, ConsumerId};
use crate::wire::{Reader, Writer};

/// The triple every message after the escape carries: which consumer, which
/// campaign and which escape (by sequence number) it belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Exchange {
    /// The consumer.
    pub consumer: ConsumerId,
    /// The campaign.
    pub campaign: CampaignId,
    /// The escape's sequence number.
    pub sequence: u64,
}

/// Encoded length of an [`Exchange`].
pub(crate) const EXCHANGE_LEN: usize = 40;

impl Exchange {
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self> {
        Ok(Self {
            consumer: ConsumerId(r.array()?),
            campaign: CampaignId(r.array()?),
            sequence: r.u64()?,
        })
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.bytes(&self.consumer.0).bytes(&self.campaign.0).u64(self.sequence);
    }
}

/// Splits a message into what its trailing 32-byte tag covers, and the tag.
pub(crate) fn split_tag(bytes: &[u8]) -> (&[u8], &[u8]) {
    bytes.split_at(bytes.len().saturating_sub(crate::schedule::TAG_LEN))
}
