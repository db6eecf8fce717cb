//! The acknowledgement (protocol.md §6.2): the agent accepts the escape and sends
//! its key shares at once, saving a round trip.

use super::{EXCHANGE_LEN, Exchange};
use crate::error::{Misuse, Result};
use crate::kem::{X25519_LEN, encapsulation_key_len};
use crate::schedule::TAG_LEN;
use crate::types::{KeyId, Suite};
use crate::wire::{MessageType, Reader, Writer, open_frame};

/// A decoded acknowledgement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ack {
    /// Which escape this answers.
    pub exchange: Exchange,
    /// Key id of the escape.
    pub key_id: KeyId,
    /// Suite of the escape, and of the shares below.
    pub suite: Suite,
    /// SHA-256 of the whole escape message.
    pub escape_digest: [u8; 32],
    /// The agent's X25519 public key.
    pub x25519: [u8; X25519_LEN],
    /// The agent's ML-KEM encapsulation key.
    pub kem_ek: Vec<u8>,
    /// HMAC-SHA-256 under the ack key over every preceding byte.
    pub mac: [u8; TAG_LEN],
}

impl Ack {
    /// Decodes one acknowledgement.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(open_frame(bytes, MessageType::Ack)?);
        let exchange = Exchange::read(&mut r)?;
        let key_id = r.u32()?;
        let suite = Suite::target_from_u8(r.u8()?)?;
        let escape_digest = r.array()?;
        let x25519 = r.array()?;
        let kem_ek = r.take(encapsulation_key_len(suite))?.to_vec();
        let mac = r.array()?;
        r.finish()?;
        Ok(Self { exchange, key_id, suite, escape_digest, x25519, kem_ek, mac })
    }

    /// Writes everything but the MAC; the caller reserves and appends it.
    pub(crate) fn write_head(&self, w: &mut Writer) -> Result<()> {
        if self.kem_ek.len() != encapsulation_key_len(self.suite) {
            return Err(Misuse::InvalidField("kem_ek").into());
        }
        self.exchange.write(w);
        w.u32(self.key_id).u8(self.suite as u8).bytes(&self.escape_digest);
        w.bytes(&self.x25519).bytes(&self.kem_ek);
        Ok(())
    }

    /// Encodes the message with its current `mac` field.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new(MessageType::Ack, self.body_len());
        self.write_head(&mut w)?;
        w.bytes(&self.mac);
        Ok(w.finish())
    }

    pub(crate) fn body_len(&self) -> usize {
        EXCHANGE_LEN + 4 + 1 + 32 + X25519_LEN + self.kem_ek.len() + TAG_LEN
    }
}
