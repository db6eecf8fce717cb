//! The handshake response (protocol.md §6.3): the orchestrator's key shares, an
//! optional ML-DSA-65 signature, and its key confirmation.

use super::{EXCHANGE_LEN, Exchange};
use crate::error::{Malformed, Misuse, Result};
use crate::kem::{X25519_LEN, ciphertext_len};
use crate::schedule::TAG_LEN;
use crate::sign::SIGNATURE_LEN;
use crate::types::Suite;
use crate::wire::{HEADER_LEN, MessageType, Reader, Writer, open_frame};

/// A decoded handshake response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HandshakeResponse {
    /// Which escape this belongs to.
    pub exchange: Exchange,
    /// Suite of the exchange.
    pub suite: Suite,
    /// The orchestrator's X25519 public key.
    pub x25519: [u8; X25519_LEN],
    /// ML-KEM ciphertext to the agent's encapsulation key.
    pub kem_ct: Vec<u8>,
    /// ML-DSA-65 signature over the transcript, when the campaign signs handshakes.
    pub signature: Option<Vec<u8>>,
    /// HMAC under the server finished key over the transcript hash.
    pub confirm: [u8; TAG_LEN],
}

impl HandshakeResponse {
    /// Decodes one handshake response.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(open_frame(bytes, MessageType::HandshakeResponse)?);
        let exchange = Exchange::read(&mut r)?;
        let suite = Suite::target_from_u8(r.u8()?)?;
        let x25519 = r.array()?;
        let kem_ct = r.take(ciphertext_len(suite))?.to_vec();
        let signature = match r.u16()? {
            0 => None,
            n if usize::from(n) == SIGNATURE_LEN => Some(r.take(SIGNATURE_LEN)?.to_vec()),
            _ => return Err(Malformed::FieldLength("signature").into()),
        };
        let confirm = r.array()?;
        r.finish()?;
        Ok(Self { exchange, suite, x25519, kem_ct, signature, confirm })
    }

    /// Writes the fields up to and including the signature length: what is signed.
    pub(crate) fn write_signed_part(&self, w: &mut Writer, signed: bool) -> Result<()> {
        if self.kem_ct.len() != ciphertext_len(self.suite) {
            return Err(Misuse::InvalidField("kem_ct").into());
        }
        self.exchange.write(w);
        w.u8(self.suite as u8).bytes(&self.x25519).bytes(&self.kem_ct);
        w.u16(if signed { SIGNATURE_LEN as u16 } else { 0 });
        Ok(())
    }

    /// Encodes the message with its current signature and confirmation.
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.signature.as_ref().is_some_and(|sig| sig.len() != SIGNATURE_LEN) {
            return Err(Misuse::InvalidField("signature").into());
        }
        let mut w = Writer::new(MessageType::HandshakeResponse, self.body_len());
        self.write_signed_part(&mut w, self.signature.is_some())?;
        if let Some(sig) = &self.signature {
            w.bytes(sig);
        }
        w.bytes(&self.confirm);
        Ok(w.finish())
    }

    pub(crate) fn body_len(&self) -> usize {
        let sig = if self.signature.is_some() { SIGNATURE_LEN } else { 0 };
        EXCHANGE_LEN + 1 + X25519_LEN + self.kem_ct.len() + 2 + sig + TAG_LEN
    }

    /// Length of the prefix the signature covers (header included).
    pub(crate) fn signed_len(&self) -> usize {
        HEADER_LEN + EXCHANGE_LEN + 1 + X25519_LEN + self.kem_ct.len() + 2
    }
}
