//! The service provider's side (protocol.md §8.2): seal escapes, answer
//! acknowledgements, check the agent's key confirmation. A pure state machine:
//! the orchestrator service persists each step before acting on it.

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use rand_core::CryptoRng;

use crate::agent::{directives_nonce, new_context};
use crate::context::NewContext;
use crate::error::{Error, Malformed, Misuse, Rejection, Result};
use crate::freshness::MAX_VALIDITY_SECS;
use crate::kem::{self, PublicShares};
use crate::message::{
    Ack, Escape, EscapeFlags, Exchange, Finished, HandshakeResponse, MAX_DIRECTIVES_LEN, split_tag,
};
use crate::schedule::{EscapeKeys, HandshakeSecret, TAG_LEN, hash, mac, verify_mac};
use crate::secret::SecretKey;
use crate::sign::{OrchestratorSigningKey, SIGNATURE_LEN, context};
use crate::types::{CampaignId, ConsumerId, KeyId, KeyMode, Suite};
use crate::wire::{MessageType, Reader, Writer};
use zeroize::Zeroizing;

/// Everything an escape says, before it is sealed.
#[derive(Clone, Debug)]
pub struct EscapeOrder<'a> {
    /// The addressee.
    pub consumer: ConsumerId,
    /// The campaign.
    pub campaign: CampaignId,
    /// Key id of the base key.
    pub key_id: KeyId,
    /// The consumer's next sequence number.
    pub sequence: u64,
    /// Target suite; never `Classical`.
    pub suite: Suite,
    /// Unix seconds.
    pub issued_at: u64,
    /// Unix seconds; at most [`MAX_VALIDITY_SECS`] after `issued_at`.
    pub not_after: u64,
    /// Exercise every step and change nothing.
    pub drill: bool,
    /// SHA-256 of the signed campaign manifest to bind, if any.
    pub manifest_digest: Option<[u8; 32]>,
    /// Instructions for the agent's hooks, at most [`MAX_DIRECTIVES_LEN`] bytes.
    pub directives: &'a [u8],
    /// Encrypt the directives under the escape encryption key.
    pub encrypt: bool,
    /// Dedicated PSK (default) or TLS exporter.
    pub mode: KeyMode,
}

/// Seals an escape under `base` (the consumer's PSK, or the TLS exporter value).
pub fn seal_escape<R: CryptoRng + ?Sized>(
    order: &EscapeOrder<'_>,
    base: &SecretKey,
    rng: &mut R,
) -> Result<Vec<u8>> {
    check_order(order)?;
    let mut nonce = [0u8; 16];
    rng.fill_bytes(&mut nonce);
    let escape = escape_head(order, nonce);
    let keys = EscapeKeys::derive(base, order.consumer, order.key_id, order.mode);
    let tag_len = if order.encrypt { 16 } else { 0 };
    let field_len = order.directives.len() + tag_len;

    let mut w = Writer::new(MessageType::Escape, escape.body_len() + field_len);
    escape.write_head(&mut w, field_len)?;
    w.reserve_trailer(field_len + TAG_LEN);
    let directives = seal_directives(order, &keys, &nonce, w.so_far())?;
    w.bytes(&directives).reserve_trailer(TAG_LEN);
    let tag = mac(&keys.escape_mac, &[w.so_far()]);
    w.bytes(&tag);
    Ok(w.finish())
}

fn check_order(order: &EscapeOrder<'_>) -> Result<()> {
    if !order.suite.is_post_quantum() {
        return Err(Misuse::ClassicalSuite.into());
    }
    let window = order.not_after.saturating_sub(order.issued_at);
    if window == 0 || window > MAX_VALIDITY_SECS {
        return Err(Misuse::InvalidWindow.into());
    }
    if order.directives.len() > MAX_DIRECTIVES_LEN {
        return Err(Misuse::FieldTooLong("directives").into());
    }
    if order.sequence == 0 {
        // Agents start from a persisted 0, so no escape may carry it (§7.1).
        return Err(Misuse::InvalidField("sequence").into());
    }
    Ok(())
}

fn escape_head(order: &EscapeOrder<'_>, nonce: [u8; 16]) -> Escape {
    let flags = EscapeFlags {
        exporter_mode: order.mode == KeyMode::TlsExporter,
        encrypted: order.encrypt,
        drill: order.drill,
        manifest_bound: order.manifest_digest.is_some(),
    };
    Escape {
        flags,
        suite: order.suite,
        key_id: order.key_id,
        consumer: order.consumer,
        campaign: order.campaign,
        sequence: order.sequence,
        issued_at: order.issued_at,
        not_after: order.not_after,
        nonce,
        manifest_digest: order.manifest_digest,
        directives: Vec::new(),
        mac: [0; TAG_LEN],
    }
}

fn seal_directives(
    order: &EscapeOrder<'_>,
    keys: &EscapeKeys,
    nonce: &[u8; 16],
    aad: &[u8],
) -> Result<Vec<u8>> {
    if !order.encrypt {
        return Ok(order.directives.to_vec());
    }
    let cipher = ChaCha20Poly1305::new(keys.escape_enc.expose().into());
    let payload = Payload { msg: order.directives, aad };
    cipher
        .encrypt(&directives_nonce(nonce).into(), payload)
        .map_err(|_| Error::Misuse(Misuse::FieldTooLong("directives")))
}

/// Answers an acknowledgement of `escape` (the bytes the orchestrator sent).
///
/// Returns the handshake response and the state that awaits the agent's finished
/// message. With `signer`, the response carries an ML-DSA-65 signature (§6.3).
pub fn respond<R: CryptoRng + ?Sized + 'static>(
    escape: &[u8],
    ack_bytes: &[u8],
    base: &SecretKey,
    signer: Option<&OrchestratorSigningKey>,
    rng: &mut R,
) -> Result<(PendingContext, Vec<u8>)> {
    let sent = Escape::decode(escape)?;
    let ack = Ack::decode(ack_bytes)?;

    // The ack key follows from the escape we sent, so authenticity comes first:
    // a forged ack is an integrity failure, never a more specific rejection.
    let keys = EscapeKeys::derive(base, sent.consumer, sent.key_id, sent.flags.key_mode());
    let (covered, tag) = split_tag(ack_bytes);
    verify_mac(&keys.ack_mac, &[covered], tag)?;
    check_ack_binding(&sent, &ack, escape)?;

    let peer = PublicShares { x25519: ack.x25519, kem: ack.kem_ek };
    let (ours, shared) = kem::respond(sent.suite, &peer, rng)?;
    let hs = HandshakeSecret::extract(&keys.context_salt, &shared.kem, &shared.x25519);
    let response = build_response(&ack.exchange, sent.suite, ours, &hs, escape, ack_bytes, signer)?;

    let th_full = hash(&[escape, ack_bytes, &response]);
    let context = new_context(&sent, ack.exchange, &hs, &th_full)?;
    let pending =
        PendingContext { client_finished_key: hs.client_finished_key(), th_full, context };
    Ok((pending, response))
}

/// The ack must name exactly the escape it answers (§6.2).
fn check_ack_binding(sent: &Escape, ack: &Ack, escape: &[u8]) -> Result<()> {
    let expected =
        Exchange { consumer: sent.consumer, campaign: sent.campaign, sequence: sent.sequence };
    if ack.exchange.consumer != sent.consumer {
        return Err(Rejection::WrongConsumer.into());
    }
    if ack.exchange != expected || ack.escape_digest != hash(&[escape]) {
        return Err(Rejection::TranscriptMismatch.into());
    }
    if ack.key_id != sent.key_id {
        return Err(Rejection::UnknownKeyId.into());
    }
    if ack.suite != sent.suite {
        return Err(Rejection::SuiteMismatch.into());
    }
    Ok(())
}

fn build_response(
    exchange: &Exchange,
    suite: Suite,
    ours: PublicShares,
    hs: &HandshakeSecret,
    escape: &[u8],
    ack: &[u8],
    signer: Option<&OrchestratorSigningKey>,
) -> Result<Vec<u8>> {
    let response = HandshakeResponse {
        exchange: *exchange,
        suite,
        x25519: ours.x25519,
        kem_ct: ours.kem,
        signature: signer.map(|_| Vec::new()),
        confirm: [0; TAG_LEN],
    };
    let mut w = Writer::new(MessageType::HandshakeResponse, response.body_len());
    response.write_signed_part(&mut w, signer.is_some())?;
    if let Some(key) = signer {
        w.reserve_trailer(SIGNATURE_LEN + TAG_LEN);
        let sig = key.sign(&hash(&[escape, ack, w.so_far()]), context::HANDSHAKE)?;
        w.bytes(&sig);
    }
    w.reserve_trailer(TAG_LEN);
    let th_response = hash(&[escape, ack, w.so_far()]);
    let confirm = mac(&hs.server_finished_key(), &[&th_response]);
    w.bytes(&confirm);
    Ok(w.finish())
}

/// Length of the serialised [`PendingContext`].
pub const PENDING_STATE_LEN: usize = 32 + 32 + 40 + 1 + 4 + 1 + 32 + 32;

/// The orchestrator after sending its response: the new context, held back until
/// the agent proves it derived the same keys.
pub struct PendingContext {
    client_finished_key: SecretKey,
    th_full: [u8; 32],
    context: NewContext,
}

impl core::fmt::Debug for PendingContext {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PendingContext").field("context", &self.context).finish_non_exhaustive()
    }
}

impl PendingContext {
    /// The context awaiting confirmation. The service persists its next PSK as
    /// pending before sending the response (§8.2 step 4).
    pub fn context(&self) -> &NewContext {
        &self.context
    }

    /// The state as bytes, so that a restarted orchestrator can still check the
    /// finished message (§8.2). It holds secrets: store it only encrypted.
    pub fn to_bytes(&self) -> Zeroizing<Vec<u8>> {
        let c = &self.context;
        let mut b = Zeroizing::new(Vec::with_capacity(PENDING_STATE_LEN));
        b.extend_from_slice(self.client_finished_key.expose());
        b.extend_from_slice(&self.th_full);
        b.extend_from_slice(&c.exchange.consumer.0);
        b.extend_from_slice(&c.exchange.campaign.0);
        b.extend_from_slice(&c.exchange.sequence.to_be_bytes());
        b.push(c.suite as u8);
        b.extend_from_slice(&c.next_key_id.to_be_bytes());
        b.push(u8::from(c.drill));
        b.extend_from_slice(c.context_secret.expose());
        b.extend_from_slice(c.next_psk.expose());
        b
    }

    /// Restores the state written by [`PendingContext::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != PENDING_STATE_LEN {
            return Err(Malformed::FieldLength("pending state").into());
        }
        let mut r = Reader::new(bytes);
        let client_finished_key = SecretKey::from_bytes(r.array()?);
        let th_full = r.array()?;
        let exchange = Exchange {
            consumer: ConsumerId(r.array()?),
            campaign: CampaignId(r.array()?),
            sequence: r.u64()?,
        };
        let suite = Suite::target_from_u8(r.u8()?)?;
        let next_key_id = r.u32()?;
        let drill = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(Malformed::FieldLength("pending state").into()),
        };
        let context_secret = SecretKey::from_bytes(r.array()?);
        let next_psk = SecretKey::from_bytes(r.array()?);
        r.finish()?;
        let context = NewContext { exchange, suite, next_key_id, drill, context_secret, next_psk };
        Ok(Self { client_finished_key, th_full, context })
    }

    /// Verifies the agent's finished message and releases the context.
    pub fn finish(self, bytes: &[u8]) -> Result<NewContext> {
        let finished = Finished::decode(bytes)?;
        if finished.exchange != self.context.exchange {
            return Err(Rejection::TranscriptMismatch.into());
        }
        let (covered, tag) = split_tag(bytes);
        verify_mac(&self.client_finished_key, &[&self.th_full, covered], tag)?;
        Ok(self.context)
    }
}
