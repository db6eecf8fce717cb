//! The escape message (protocol.md §6.1): the order to migrate.

use crate::error::{Malformed, Result};
use crate::schedule::TAG_LEN;
use crate::types::{CampaignId, ConsumerId, KeyId, KeyMode, Suite};
use crate::wire::{HEADER_LEN, MessageType, Reader, Writer, open_frame};

/// Length of the escape nonce.
pub const NONCE_LEN: usize = 16;
/// Largest plaintext directives an escape may carry.
pub const MAX_DIRECTIVES_LEN: usize = 512;
/// AEAD tag length when directives are encrypted.
pub(crate) const AEAD_TAG_LEN: usize = 16;
/// Fixed fields between the header and the optional manifest digest.
const FIXED_LEN: usize = 1 + 1 + 4 + 16 + 16 + 8 + 8 + 8 + NONCE_LEN;

const FLAG_EXPORTER: u8 = 0x01;
const FLAG_ENCRYPTED: u8 = 0x02;
const FLAG_DRILL: u8 = 0x04;
const FLAG_MANIFEST: u8 = 0x08;

/// The flag byte of an escape (§6.1, table 4).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EscapeFlags {
    /// Keyed from a TLS exporter instead of the dedicated PSK.
    pub exporter_mode: bool,
    /// Directives are ChaCha20-Poly1305 ciphertext.
    pub encrypted: bool,
    /// A drill: exercise every step, change nothing.
    pub drill: bool,
    /// A manifest digest is present and binds a signed campaign manifest.
    pub manifest_bound: bool,
}

impl EscapeFlags {
    fn to_byte(self) -> u8 {
        let bit = |on: bool, b: u8| if on { b } else { 0 };
        bit(self.exporter_mode, FLAG_EXPORTER)
            | bit(self.encrypted, FLAG_ENCRYPTED)
            | bit(self.drill, FLAG_DRILL)
            | bit(self.manifest_bound, FLAG_MANIFEST)
    }

    fn from_byte(b: u8) -> Result<Self> {
        if b & !(FLAG_EXPORTER | FLAG_ENCRYPTED | FLAG_DRILL | FLAG_MANIFEST) != 0 {
            return Err(Malformed::ReservedFlags.into());
        }
        Ok(Self {
            exporter_mode: b & FLAG_EXPORTER != 0,
            encrypted: b & FLAG_ENCRYPTED != 0,
            drill: b & FLAG_DRILL != 0,
            manifest_bound: b & FLAG_MANIFEST != 0,
        })
    }

    /// The key mode these flags select.
    pub fn key_mode(self) -> KeyMode {
        if self.exporter_mode { KeyMode::TlsExporter } else { KeyMode::DedicatedPsk }
    }
}

/// A decoded escape message. Fields are as on the wire: `directives` is
/// ciphertext when `flags.encrypted` is set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Escape {
    /// Flags.
    pub flags: EscapeFlags,
    /// The target suite.
    pub suite: Suite,
    /// Which PSK protects the message.
    pub key_id: KeyId,
    /// The addressee.
    pub consumer: ConsumerId,
    /// The campaign.
    pub campaign: CampaignId,
    /// Per-consumer, strictly increasing.
    pub sequence: u64,
    /// Seconds since the Unix epoch.
    pub issued_at: u64,
    /// Seconds since the Unix epoch; the message is void after it.
    pub not_after: u64,
    /// Random, unique per message.
    pub nonce: [u8; NONCE_LEN],
    /// SHA-256 of the signed campaign manifest, when bound.
    pub manifest_digest: Option<[u8; 32]>,
    /// Opaque instructions for the agent's hooks (or their ciphertext).
    pub directives: Vec<u8>,
    /// HMAC-SHA-256 over every preceding byte.
    pub mac: [u8; TAG_LEN],
}

impl Escape {
    /// Decodes one escape message; structure only, no key is involved.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(open_frame(bytes, MessageType::Escape)?);
        let flags = EscapeFlags::from_byte(r.u8()?)?;
        let suite = Suite::target_from_u8(r.u8()?)?;
        let key_id = r.u32()?;
        let consumer = ConsumerId(r.array()?);
        let campaign = CampaignId(r.array()?);
        let (sequence, issued_at, not_after) = (r.u64()?, r.u64()?, r.u64()?);
        let nonce = r.array()?;
        let manifest_digest = if flags.manifest_bound { Some(r.array()?) } else { None };
        let range = if flags.encrypted {
            AEAD_TAG_LEN..=MAX_DIRECTIVES_LEN + AEAD_TAG_LEN
        } else {
            0..=MAX_DIRECTIVES_LEN
        };
        let directives = r.vec16("directives", range)?.to_vec();
        let mac = r.array()?;
        r.finish()?;
        Ok(Self {
            flags,
            suite,
            key_id,
            consumer,
            campaign,
            sequence,
            issued_at,
            not_after,
            nonce,
            manifest_digest,
            directives,
            mac,
        })
    }

    /// Writes every field before the directives, and `directives_len`.
    pub(crate) fn write_head(&self, w: &mut Writer, directives_len: usize) -> Result<()> {
        w.u8(self.flags.to_byte()).u8(self.suite as u8).u32(self.key_id);
        w.bytes(&self.consumer.0).bytes(&self.campaign.0);
        w.u64(self.sequence).u64(self.issued_at).u64(self.not_after).bytes(&self.nonce);
        if let Some(d) = &self.manifest_digest {
            w.bytes(d);
        }
        let len = u16::try_from(directives_len)
            .map_err(|_| crate::error::Misuse::FieldTooLong("directives"))?;
        w.u16(len);
        Ok(())
    }

    /// Encodes the message with its current `mac` field.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = Writer::new(MessageType::Escape, self.body_len());
        self.write_head(&mut w, self.directives.len())?;
        w.bytes(&self.directives).bytes(&self.mac);
        Ok(w.finish())
    }

    /// Body length on the wire.
    pub(crate) fn body_len(&self) -> usize {
        FIXED_LEN + self.digest_len() + 2 + self.directives.len() + TAG_LEN
    }

    /// Length of the bytes an AEAD over the directives authenticates: all before them.
    pub(crate) fn aad_len(&self) -> usize {
        HEADER_LEN + FIXED_LEN + self.digest_len() + 2
    }

    fn digest_len(&self) -> usize {
        if self.manifest_digest.is_some() { 32 } else { 0 }
    }
}
