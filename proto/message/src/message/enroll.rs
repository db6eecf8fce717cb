//! The enrollment exchange (protocol.md §6.7): hello, accept, confirm.

use crate::error::{Misuse, Result};
use crate::kem::{X25519_LEN, ciphertext_len, encapsulation_key_len};
use crate::sign::{SIGNATURE_LEN, VERIFYING_KEY_LEN};
use crate::types::{ConsumerId, KeyId, Suite};
use crate::wire::{MessageType, Reader, Writer, open_frame};

/// Length of the sealed token secret: 32 bytes of secret and a 16-byte AEAD tag.
pub const SEALED_TOKEN_LEN: usize = 48;

/// First message, agent to orchestrator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollHello {
    /// The public half of the enrollment token: which token is being used.
    pub token_id: [u8; 16],
    /// The suite of the key exchange.
    pub suite: Suite,
    /// The agent's X25519 public key.
    pub x25519: [u8; X25519_LEN],
    /// The agent's ML-KEM encapsulation key.
    pub kem_ek: Vec<u8>,
}

impl EnrollHello {
    /// Decodes one hello.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(open_frame(bytes, MessageType::EnrollHello)?);
        let token_id = r.array()?;
        let suite = Suite::target_from_u8(r.u8()?)?;
        let x25519 = r.array()?;
        let kem_ek = r.take(encapsulation_key_len(suite))?.to_vec();
        r.finish()?;
        Ok(Self { token_id, suite, x25519, kem_ek })
    }

    /// Encodes the hello.
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.kem_ek.len() != encapsulation_key_len(self.suite) {
            return Err(Misuse::InvalidField("kem_ek").into());
        }
        let mut w = Writer::new(MessageType::EnrollHello, 16 + 1 + 32 + self.kem_ek.len());
        w.bytes(&self.token_id).u8(self.suite as u8).bytes(&self.x25519).bytes(&self.kem_ek);
        Ok(w.finish())
    }
}

/// Second message, orchestrator to agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollAccept {
    /// The identifier assigned to the new consumer.
    pub consumer: ConsumerId,
    /// The key id of the agreed PSK.
    pub key_id: KeyId,
    /// Suite of the exchange (echoes the hello).
    pub suite: Suite,
    /// The orchestrator's X25519 public key.
    pub x25519: [u8; X25519_LEN],
    /// ML-KEM ciphertext to the agent's encapsulation key.
    pub kem_ct: Vec<u8>,
    /// The orchestrator's ML-DSA-65 verifying key, which the token pins.
    pub orchestrator_key: Vec<u8>,
    /// ML-DSA-65 signature over hello and every preceding byte of this message.
    pub signature: Vec<u8>,
}

impl EnrollAccept {
    /// Decodes one accept.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(open_frame(bytes, MessageType::EnrollAccept)?);
        let consumer = ConsumerId(r.array()?);
        let key_id = r.u32()?;
        let suite = Suite::target_from_u8(r.u8()?)?;
        let x25519 = r.array()?;
        let kem_ct = r.take(ciphertext_len(suite))?.to_vec();
        let orchestrator_key = r.take(VERIFYING_KEY_LEN)?.to_vec();
        let signature = r.take(SIGNATURE_LEN)?.to_vec();
        r.finish()?;
        Ok(Self { consumer, key_id, suite, x25519, kem_ct, orchestrator_key, signature })
    }

    /// Writes everything the signature covers (after the hello).
    pub(crate) fn signed_part(&self) -> Result<Writer> {
        if self.kem_ct.len() != ciphertext_len(self.suite)
            || self.orchestrator_key.len() != VERIFYING_KEY_LEN
        {
            return Err(Misuse::InvalidField("enroll accept").into());
        }
        let body = 16 + 4 + 1 + 32 + self.kem_ct.len() + VERIFYING_KEY_LEN + SIGNATURE_LEN;
        let mut w = Writer::new(MessageType::EnrollAccept, body);
        w.bytes(&self.consumer.0).u32(self.key_id).u8(self.suite as u8);
        w.bytes(&self.x25519).bytes(&self.kem_ct).bytes(&self.orchestrator_key);
        w.reserve_trailer(SIGNATURE_LEN);
        Ok(w)
    }

    /// Encodes the accept with its current signature.
    pub fn encode(&self) -> Result<Vec<u8>> {
        if self.signature.len() != SIGNATURE_LEN {
            return Err(Misuse::InvalidField("signature").into());
        }
        let mut w = self.signed_part()?;
        w.bytes(&self.signature);
        Ok(w.finish())
    }
}

/// Third message, agent to orchestrator: the token secret, sealed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EnrollConfirm {
    /// The consumer id from the accept.
    pub consumer: ConsumerId,
    /// ChaCha20-Poly1305 ciphertext and tag of the 32-byte token secret.
    pub sealed_token: [u8; SEALED_TOKEN_LEN],
}

impl EnrollConfirm {
    /// Decodes one confirm.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(open_frame(bytes, MessageType::EnrollConfirm)?);
        let consumer = ConsumerId(r.array()?);
        let sealed_token = r.array()?;
        r.finish()?;
        Ok(Self { consumer, sealed_token })
    }

    /// Bytes the AEAD authenticates: header and consumer id.
    pub(crate) fn aad(consumer: ConsumerId) -> Vec<u8> {
        let mut w = Writer::new(MessageType::EnrollConfirm, 16 + SEALED_TOKEN_LEN);
        w.bytes(&consumer.0);
        w.reserve_trailer(SEALED_TOKEN_LEN);
        w.so_far().to_vec()
    }

    /// Encodes the confirm.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new(MessageType::EnrollConfirm, 16 + SEALED_TOKEN_LEN);
        w.bytes(&self.consumer.0).bytes(&self.sealed_token);
        w.finish()
    }
}
