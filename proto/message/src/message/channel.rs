//! The channel hello (protocol.md §6.8): how an agent proves, on each new
//! connection, that it holds a consumer's PSK, by MACing a fresh challenge of the
//! orchestrator's. It carries nothing secret and cannot be replayed on another
//! connection.

use crate::error::{Malformed, Result};
use crate::schedule::TAG_LEN;
use crate::types::{ConsumerId, KeyId};
use crate::wire::{MessageType, Reader, Writer, open_frame};

/// Length of the orchestrator's challenge.
pub const CHALLENGE_LEN: usize = 16;
/// Longest agent version string.
pub const MAX_AGENT_VERSION_LEN: usize = 64;

/// A decoded channel hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelHello {
    /// The consumer the agent claims to be.
    pub consumer: ConsumerId,
    /// The PSK it proves possession of.
    pub key_id: KeyId,
    /// The orchestrator's challenge, echoed.
    pub challenge: [u8; CHALLENGE_LEN],
    /// The agent's version, for the operator's records.
    pub agent_version: String,
    /// HMAC under the channel key over every preceding byte.
    pub mac: [u8; TAG_LEN],
}

impl ChannelHello {
    /// Decodes one hello; the MAC is checked by `channel::verify_hello`.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(open_frame(bytes, MessageType::ChannelHello)?);
        let consumer = ConsumerId(r.array()?);
        let key_id = r.u32()?;
        let challenge = r.array()?;
        let version = r.vec16("agent_version", 0..=MAX_AGENT_VERSION_LEN)?;
        let agent_version =
            String::from_utf8(version.to_vec()).map_err(|_| Malformed::InvalidUtf8)?;
        let mac = r.array()?;
        r.finish()?;
        Ok(Self { consumer, key_id, challenge, agent_version, mac })
    }

    pub(crate) fn writer(&self) -> Result<Writer> {
        let body = 16 + 4 + CHALLENGE_LEN + 2 + self.agent_version.len() + TAG_LEN;
        let mut w = Writer::new(MessageType::ChannelHello, body);
        w.bytes(&self.consumer.0).u32(self.key_id).bytes(&self.challenge);
        w.vec16("agent_version", self.agent_version.as_bytes(), MAX_AGENT_VERSION_LEN)?;
        w.reserve_trailer(TAG_LEN);
        Ok(w)
    }

    /// Encodes the hello with its current `mac` field.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = self.writer()?;
        w.bytes(&self.mac);
        Ok(w.finish())
    }
}
