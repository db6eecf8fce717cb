//! The consumer's side (protocol.md §8.1): verify an escape, acknowledge it,
//! complete the handshake. A pure state machine; the agent service drives it,
//! persists what §8.1 says to persist, and does the I/O.
//!
//! Nothing here mutates the caller's state. A check that fails returns an
//! error and leaves everything as it was; the caller advances its persisted
//! sequence only from a [`VerifiedEscape`], which only a successful
//! verification can produce.

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use rand_core::CryptoRng;

use crate::campaign::VerifiedManifest;
use crate::context::NewContext;
use crate::error::{Error, Misuse, Rejection, Result};
use crate::freshness::{DEFAULT_CLOCK_SKEW_SECS, SequenceRule, check_sequence, check_window};
use crate::kem::{self, InitiatorShares, PublicShares};
use crate::message::{Ack, Escape, Exchange, Finished, HandshakeResponse, split_tag};
use crate::schedule::{EscapeKeys, HandshakeSecret, hash, mac, verify_mac};
use crate::secret::SecretKey;
use crate::sign::{OrchestratorVerifyingKey, context};
use crate::types::{ConsumerId, KeyId, KeyMode, Suite};
use crate::wire::{MessageType, Writer};

/// What an agent is configured to accept (§8.1, table 14).
#[derive(Clone, Debug)]
pub struct AgentPolicy {
    /// Clock-skew allowance in seconds.
    pub clock_skew_secs: u64,
    /// Refuse escapes not bound to a verified, signed campaign manifest.
    pub require_manifest: bool,
    /// Accept escapes keyed from a TLS exporter. Off by default: see §5.1.2.
    pub allow_exporter_mode: bool,
    /// Refuse handshake responses without an ML-DSA-65 signature.
    pub require_handshake_signature: bool,
    /// The orchestrator key pinned at enrollment.
    pub orchestrator_key: Option<OrchestratorVerifyingKey>,
}

impl Default for AgentPolicy {
    fn default() -> Self {
        Self {
            clock_skew_secs: DEFAULT_CLOCK_SKEW_SECS,
            require_manifest: false,
            allow_exporter_mode: false,
            require_handshake_signature: false,
            orchestrator_key: None,
        }
    }
}

/// The consumer's persisted state, as the verification needs it.
pub struct ConsumerView<'a> {
    /// This consumer.
    pub consumer: ConsumerId,
    /// The PSKs it holds, by key id: the current one, and the previous one until
    /// a message under the current one has verified (§5.3).
    pub psks: &'a [(KeyId, &'a SecretKey)],
    /// A value exported from the current TLS connection, if the channel offers one.
    pub tls_exporter: Option<&'a SecretKey>,
    /// The last sequence number accepted and persisted (0 before the first escape).
    pub last_sequence: u64,
    /// The suite the consumer runs now: the floor under any target (§7.4).
    pub current_suite: Suite,
}

/// An escape that passed every check of §8.1 step 1. The only way to get one is
/// [`verify_escape`] or [`resume_escape`].
pub struct VerifiedEscape {
    escape: Escape,
    raw: Vec<u8>,
    directives: Vec<u8>,
    keys: EscapeKeys,
}

impl core::fmt::Debug for VerifiedEscape {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VerifiedEscape").field("escape", &self.escape).finish_non_exhaustive()
    }
}

/// Verifies a new escape message for `view`, at time `now` (Unix seconds).
///
/// On success the caller must persist [`VerifiedEscape::sequence`] as its last
/// sequence *before* acting on it (§8.1 step 2).
pub fn verify_escape(
    bytes: &[u8],
    view: &ConsumerView<'_>,
    policy: &AgentPolicy,
    manifest: Option<&VerifiedManifest>,
    now: u64,
) -> Result<VerifiedEscape> {
    verify(bytes, view, policy, manifest, now, SequenceRule::Fresh)
}

/// Re-verifies the escape accepted before a restart (its sequence is the persisted one),
/// so that the handshake can start again with fresh key shares (§8.1, crash recovery).
pub fn resume_escape(
    bytes: &[u8],
    view: &ConsumerView<'_>,
    policy: &AgentPolicy,
    manifest: Option<&VerifiedManifest>,
    now: u64,
) -> Result<VerifiedEscape> {
    verify(bytes, view, policy, manifest, now, SequenceRule::Resume)
}

fn verify(
    bytes: &[u8],
    view: &ConsumerView<'_>,
    policy: &AgentPolicy,
    manifest: Option<&VerifiedManifest>,
    now: u64,
    rule: SequenceRule,
) -> Result<VerifiedEscape> {
    // Structure and addressing first: they need no key and reveal nothing.
    let escape = Escape::decode(bytes)?;
    if escape.consumer != view.consumer {
        return Err(Rejection::WrongConsumer.into());
    }
    let base = select_key(&escape, view, policy)?;

    // Authenticity: one opaque failure whatever went wrong.
    let keys = EscapeKeys::derive(base, escape.consumer, escape.key_id, escape.flags.key_mode());
    let (covered, tag) = split_tag(bytes);
    verify_mac(&keys.escape_mac, &[covered], tag)?;

    // Only an authentic message may be judged for freshness and policy.
    check_window(escape.issued_at, escape.not_after, now, policy.clock_skew_secs)?;
    check_sequence(escape.sequence, view.last_sequence, rule)?;
    if escape.suite < view.current_suite {
        return Err(Rejection::Downgrade.into());
    }
    check_manifest(&escape, policy, manifest, now)?;
    let directives = open_directives(&escape, bytes, &keys)?;
    Ok(VerifiedEscape { escape, raw: bytes.to_vec(), directives, keys })
}

/// Picks the base key the escape names: a held PSK, or the TLS exporter value if allowed.
fn select_key<'a>(
    escape: &Escape,
    view: &ConsumerView<'a>,
    policy: &AgentPolicy,
) -> Result<&'a SecretKey> {
    match escape.flags.key_mode() {
        KeyMode::TlsExporter if !policy.allow_exporter_mode => {
            Err(Rejection::ExporterModeRefused.into())
        }
        KeyMode::TlsExporter => {
            // The key id still names the PSK chain the ratchet continues: the newest
            // held PSK, or 0 for a consumer that holds none yet (§5.1.2).
            let newest = view.psks.iter().map(|(id, _)| *id).max().unwrap_or(0);
            if escape.key_id != newest {
                return Err(Rejection::UnknownKeyId.into());
            }
            view.tls_exporter.ok_or(Rejection::ExporterModeRefused.into())
        }
        KeyMode::DedicatedPsk => view
            .psks
            .iter()
            .find(|(id, _)| *id == escape.key_id)
            .map(|(_, psk)| *psk)
            .ok_or(Rejection::UnknownKeyId.into()),
    }
}

/// §7.3: a required manifest must be bound; a bound manifest must match the escape,
/// cover its whole window, and still be valid now.
fn check_manifest(
    escape: &Escape,
    policy: &AgentPolicy,
    manifest: Option<&VerifiedManifest>,
    now: u64,
) -> Result<()> {
    match (escape.manifest_digest, manifest) {
        (None, _) if policy.require_manifest => Err(Rejection::ManifestRequired.into()),
        (None, _) => Ok(()),
        (Some(_), None) if policy.require_manifest => Err(Rejection::ManifestRequired.into()),
        (Some(_), None) => Ok(()),
        (Some(digest), Some(m)) => {
            let fields = m.manifest();
            let same = m.digest() == digest
                && fields.campaign == escape.campaign
                && fields.suite == escape.suite
                && fields.drill == escape.flags.drill
                && escape.not_after <= fields.not_after;
            if !same {
                return Err(Rejection::ManifestMismatch.into());
            }
            check_window(fields.issued_at, fields.not_after, now, policy.clock_skew_secs)
        }
    }
}

/// Decrypts the directives when the escape carries them encrypted (§6.1.2).
fn open_directives(escape: &Escape, bytes: &[u8], keys: &EscapeKeys) -> Result<Vec<u8>> {
    if !escape.flags.encrypted {
        return Ok(escape.directives.clone());
    }
    let aad = bytes.get(..escape.aad_len()).ok_or(Error::Integrity)?;
    let cipher = ChaCha20Poly1305::new(keys.escape_enc.expose().into());
    let nonce = directives_nonce(&escape.nonce);
    let payload = Payload { msg: &escape.directives, aad };
    cipher.decrypt(&nonce.into(), payload).map_err(|_| Error::Integrity)
}

/// The AEAD nonce: the first 12 bytes of the escape nonce.
pub(crate) fn directives_nonce(nonce: &[u8; 16]) -> [u8; 12] {
    let mut n = [0u8; 12];
    n.copy_from_slice(&nonce[..12]);
    n
}

impl VerifiedEscape {
    /// The decoded escape (directives as on the wire).
    pub fn escape(&self) -> &Escape {
        &self.escape
    }

    /// The sequence number to persist before acting.
    pub fn sequence(&self) -> u64 {
        self.escape.sequence
    }

    /// The directives, decrypted if they were encrypted.
    pub fn directives(&self) -> &[u8] {
        &self.directives
    }

    /// The escape exactly as received: persist it to resume after a crash.
    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Which escape this is, as later messages name it.
    pub fn exchange(&self) -> Exchange {
        Exchange {
            consumer: self.escape.consumer,
            campaign: self.escape.campaign,
            sequence: self.escape.sequence,
        }
    }

    /// Builds the acknowledgement with fresh key shares (§6.2) and the state that awaits
    /// the handshake response.
    pub fn acknowledge<R: CryptoRng + ?Sized + 'static>(
        self,
        rng: &mut R,
    ) -> Result<(AgentHandshake, Vec<u8>)> {
        let (shares, public) = kem::initiate(self.escape.suite, rng)?;
        let ack = Ack {
            exchange: self.exchange(),
            key_id: self.escape.key_id,
            suite: self.escape.suite,
            escape_digest: hash(&[&self.raw]),
            x25519: public.x25519,
            kem_ek: public.kem,
            mac: [0; 32],
        };
        let mut w = Writer::new(MessageType::Ack, ack.body_len());
        ack.write_head(&mut w)?;
        w.reserve_trailer(32);
        let tag = mac(&self.keys.ack_mac, &[w.so_far()]);
        w.bytes(&tag);
        let ack_raw = w.finish();
        let state = AgentHandshake { escape: self, ack: ack_raw.clone(), shares };
        Ok((state, ack_raw))
    }
}

/// The agent after sending its acknowledgement, waiting for the handshake response.
pub struct AgentHandshake {
    escape: VerifiedEscape,
    ack: Vec<u8>,
    shares: InitiatorShares,
}

impl AgentHandshake {
    /// Which escape this handshake answers.
    pub fn exchange(&self) -> Exchange {
        self.escape.exchange()
    }

    /// Verifies the orchestrator's response and returns the finished message and the
    /// new context (§8.1 step 5).
    pub fn complete(self, bytes: &[u8], policy: &AgentPolicy) -> Result<(Vec<u8>, NewContext)> {
        let response = HandshakeResponse::decode(bytes)?;
        let exchange = self.exchange();
        if response.exchange != exchange {
            return Err(Rejection::TranscriptMismatch.into());
        }
        if response.suite != self.escape.escape.suite {
            return Err(Rejection::SuiteMismatch.into());
        }
        let escape_raw = &self.escape.raw;
        check_signature(&response, bytes, escape_raw, &self.ack, policy)?;

        // Key exchange, then the orchestrator's key confirmation over the transcript.
        let peer = PublicShares { x25519: response.x25519, kem: response.kem_ct };
        let shared = self.shares.finish(&peer)?;
        let keys = &self.escape.keys;
        let hs = HandshakeSecret::extract(&keys.context_salt, &shared.kem, &shared.x25519);
        let (covered, tag) = split_tag(bytes);
        let th_response = hash(&[escape_raw, &self.ack, covered]);
        verify_mac(&hs.server_finished_key(), &[&th_response], tag)?;

        let th_full = hash(&[escape_raw, &self.ack, bytes]);
        let finished = finished_message(&exchange, &hs, &th_full);
        let context = new_context(&self.escape.escape, exchange, &hs, &th_full)?;
        Ok((finished, context))
    }
}

/// §6.3: a signature, when present, must come from the pinned key; when policy
/// demands one, it must be present.
fn check_signature(
    response: &HandshakeResponse,
    bytes: &[u8],
    escape: &[u8],
    ack: &[u8],
    policy: &AgentPolicy,
) -> Result<()> {
    let Some(sig) = &response.signature else {
        return match policy.require_handshake_signature {
            true => Err(Rejection::SignatureRequired.into()),
            false => Ok(()),
        };
    };
    let Some(key) = &policy.orchestrator_key else {
        // Nothing pinned to check against: the PSK-derived confirmation still
        // authenticates the response, unless policy demands a signature.
        return match policy.require_handshake_signature {
            true => Err(Rejection::UntrustedSigner.into()),
            false => Ok(()),
        };
    };
    let signed = bytes.get(..response.signed_len()).ok_or(Error::Integrity)?;
    key.verify(&hash(&[escape, ack, signed]), context::HANDSHAKE, sig)
}

/// Builds the finished message: HMAC(client finished key, th_full || finished prefix).
fn finished_message(exchange: &Exchange, hs: &HandshakeSecret, th_full: &[u8; 32]) -> Vec<u8> {
    let mut w = Finished::writer(exchange);
    let tag = mac(&hs.client_finished_key(), &[th_full, w.so_far()]);
    w.bytes(&tag);
    w.finish()
}

pub(crate) fn new_context(
    escape: &Escape,
    exchange: Exchange,
    hs: &HandshakeSecret,
    th_full: &[u8; 32],
) -> Result<NewContext> {
    let next_key_id = escape.key_id.checked_add(1).ok_or(Misuse::KeyIdExhausted)?;
    Ok(NewContext {
        exchange,
        suite: escape.suite,
        next_key_id,
        drill: escape.flags.drill,
        context_secret: hs.context_secret(th_full),
        next_psk: hs.next_psk(th_full),
    })
}
