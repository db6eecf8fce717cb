//! The key schedule (protocol.md §5): every key pqescape uses, and how each is derived.
//!
//! All derivations are HKDF-SHA-256 (RFC 5869). Every label starts with
//! `"pqescape/v1 "`, so no key of this protocol can collide with another
//! protocol's use of the same input keying material, and every label is distinct
//! per purpose.
//!
//! The one property that matters most is in [`HandshakeSecret::extract`]: the
//! new context depends on the dedicated PSK *and* on the ML-KEM shared secret
//! *and* on the X25519 shared secret. Recording the classical channel and
//! breaking X25519 later yields neither of the first two.

use hkdf::Hkdf;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, Misuse, Result};
use crate::secret::{SecretKey, tags_equal};
use crate::types::{ConsumerId, KeyId, KeyMode};

/// Length of every MAC tag, hash and derived key in this protocol.
pub const TAG_LEN: usize = 32;

/// TLS exporter label used in [`KeyMode::TlsExporter`] (§5.1.2).
pub const TLS_EXPORTER_LABEL: &[u8] = b"EXPORTER-pqescape-v1-escape";

/// Salt of the extract step over the escape base key (§5.1).
const BASE_SALT: &[u8] = b"pqescape/v1 base";
/// Label of the exporter interface over a new context (§5.4).
const EXPORTER_PREFIX: &[u8] = b"pqescape/v1 exporter ";

/// Per-purpose labels, in the order of table 9 of the specification.
pub mod label {
    /// MAC key of the escape message.
    pub const ESCAPE_MAC: &[u8] = b"pqescape/v1 escape mac";
    /// AEAD key of the escape directives.
    pub const ESCAPE_ENC: &[u8] = b"pqescape/v1 escape enc";
    /// MAC key of the acknowledgement.
    pub const ACK_MAC: &[u8] = b"pqescape/v1 ack mac";
    /// MAC key of status reports.
    pub const STATUS_MAC: &[u8] = b"pqescape/v1 status mac";
    /// MAC key of the channel hello.
    pub const CHANNEL_MAC: &[u8] = b"pqescape/v1 channel mac";
    /// Salt that mixes the PSK into the handshake secret.
    pub const CONTEXT_SALT: &[u8] = b"pqescape/v1 context salt";
    /// Server key confirmation.
    pub const SERVER_FINISHED: &[u8] = b"pqescape/v1 server finished";
    /// Client key confirmation.
    pub const CLIENT_FINISHED: &[u8] = b"pqescape/v1 client finished";
    /// The new context's secret.
    pub const CONTEXT: &[u8] = b"pqescape/v1 context";
    /// The ratcheted PSK.
    pub const PSK_RATCHET: &[u8] = b"pqescape/v1 psk ratchet";
    /// Salt of the enrollment secret.
    pub const ENROLL_SALT: &[u8] = b"pqescape/v1 enroll";
    /// AEAD key sealing the enrollment token secret.
    pub const ENROLL_TOKEN: &[u8] = b"pqescape/v1 enroll token";
    /// The PSK agreed at enrollment.
    pub const ENROLL_PSK: &[u8] = b"pqescape/v1 enroll psk";
    /// Hash input prefix of the stored enrollment token verifier.
    pub const TOKEN_VERIFIER: &[u8] = b"pqescape/v1 token verifier";
}

/// The keys derived from an escape base key (a PSK or a TLS exporter value), §5.1.
pub struct EscapeKeys {
    /// HMAC key of the escape message.
    pub escape_mac: SecretKey,
    /// ChaCha20-Poly1305 key of encrypted directives.
    pub escape_enc: SecretKey,
    /// HMAC key of the acknowledgement.
    pub ack_mac: SecretKey,
    /// HMAC key of status reports.
    pub status_mac: SecretKey,
    /// HKDF salt that carries the base key into the handshake secret.
    pub context_salt: SecretKey,
    /// HMAC key of the channel hello (dedicated-PSK mode only, §6.8).
    pub channel_mac: SecretKey,
}

impl EscapeKeys {
    /// Derives every per-purpose key, bound to consumer, key id and key mode.
    pub fn derive(base: &SecretKey, consumer: ConsumerId, key_id: KeyId, mode: KeyMode) -> Self {
        let hk = Hkdf::<Sha256>::new(Some(BASE_SALT), base.expose());
        let binding = binding(consumer, key_id, mode);
        let key = |label: &[u8]| expand32(&hk, &[label, &binding]);
        Self {
            escape_mac: key(label::ESCAPE_MAC),
            escape_enc: key(label::ESCAPE_ENC),
            ack_mac: key(label::ACK_MAC),
            status_mac: key(label::STATUS_MAC),
            context_salt: key(label::CONTEXT_SALT),
            channel_mac: key(label::CHANNEL_MAC),
        }
    }
}

/// `consumer_id || key_id (4, big-endian) || mode (1)`: what every escape key is bound to.
fn binding(consumer: ConsumerId, key_id: KeyId, mode: KeyMode) -> [u8; 21] {
    let mut b = [0u8; 21];
    b[..16].copy_from_slice(&consumer.0);
    b[16..20].copy_from_slice(&key_id.to_be_bytes());
    b[20] = mode.byte();
    b
}

/// The context passed to the TLS exporter in [`KeyMode::TlsExporter`]: `consumer_id || key_id`.
pub fn tls_exporter_context(consumer: ConsumerId, key_id: KeyId) -> [u8; 20] {
    let mut c = [0u8; 20];
    c[..16].copy_from_slice(&consumer.0);
    c[16..].copy_from_slice(&key_id.to_be_bytes());
    c
}

/// The secret both sides hold after the hybrid key exchange (§5.2).
pub struct HandshakeSecret(SecretKey);

impl HandshakeSecret {
    /// `HKDF-Extract(salt = context_salt, IKM = ss_mlkem || ss_x25519)`.
    ///
    /// The ML-KEM secret comes first, as in the X25519MLKEM768 TLS group.
    pub fn extract(context_salt: &SecretKey, ss_kem: &SecretKey, ss_x: &SecretKey) -> Self {
        let mut ikm = [0u8; 64];
        ikm[..32].copy_from_slice(ss_kem.expose());
        ikm[32..].copy_from_slice(ss_x.expose());
        let (prk, _) = Hkdf::<Sha256>::extract(Some(context_salt.expose()), &ikm);
        zeroize::Zeroize::zeroize(&mut ikm);
        let mut out = [0u8; 32];
        out.copy_from_slice(&prk);
        Self(SecretKey::from_bytes(out))
    }

    fn expand(&self, parts: &[&[u8]]) -> SecretKey {
        #[allow(clippy::expect_used)]
        let hk = Hkdf::<Sha256>::from_prk(self.0.expose())
            .expect("invariant: a 32-byte PRK is always valid for HKDF-SHA-256");
        expand32(&hk, parts)
    }

    /// Key of the orchestrator's confirmation tag.
    pub fn server_finished_key(&self) -> SecretKey {
        self.expand(&[label::SERVER_FINISHED])
    }

    /// Key of the agent's confirmation tag.
    pub fn client_finished_key(&self) -> SecretKey {
        self.expand(&[label::CLIENT_FINISHED])
    }

    /// The new context's secret, bound to the full transcript.
    pub fn context_secret(&self, transcript: &[u8; 32]) -> SecretKey {
        self.expand(&[label::CONTEXT, transcript])
    }

    /// The consumer's next PSK (§5.3), bound to the full transcript.
    pub fn next_psk(&self, transcript: &[u8; 32]) -> SecretKey {
        self.expand(&[label::PSK_RATCHET, transcript])
    }
}

/// HKDF-Expand to 32 bytes; the info is the concatenation of `parts`.
pub(crate) fn expand32(hk: &Hkdf<Sha256>, parts: &[&[u8]]) -> SecretKey {
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA-256's 8160-byte limit: expand cannot fail.
    let _ = hk.expand_multi_info(parts, &mut out);
    SecretKey::from_bytes(out)
}

/// Derives `out.len()` bytes for `label` and `context` from a context secret (§5.4).
///
/// Info is `"pqescape/v1 exporter " || len(label) (1) || label || len(context) (2) || context`.
pub fn export(secret: &SecretKey, label: &str, context: &[u8], out: &mut [u8]) -> Result<()> {
    let label_len = u8::try_from(label.len()).map_err(|_| Misuse::ExporterLength)?;
    let ctx_len = u16::try_from(context.len()).map_err(|_| Misuse::ExporterLength)?;
    if out.is_empty() || out.len() > 255 {
        return Err(Misuse::ExporterLength.into());
    }
    let hk = Hkdf::<Sha256>::from_prk(secret.expose()).map_err(|_| Misuse::ExporterLength)?;
    let parts: [&[u8]; 5] =
        [EXPORTER_PREFIX, &[label_len], label.as_bytes(), &ctx_len.to_be_bytes(), context];
    hk.expand_multi_info(&parts, out).map_err(|_| Error::Misuse(Misuse::ExporterLength))
}

/// HMAC-SHA-256 over the concatenation of `parts`.
pub fn mac(key: &SecretKey, parts: &[&[u8]]) -> [u8; 32] {
    #[allow(clippy::expect_used)]
    let mut m = <Hmac<Sha256> as KeyInit>::new_from_slice(key.expose())
        .expect("invariant: HMAC accepts keys of any length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// Checks an HMAC tag in constant time; the only failure is the opaque [`Error::Integrity`].
pub fn verify_mac(key: &SecretKey, parts: &[&[u8]], tag: &[u8]) -> Result<()> {
    if tags_equal(&mac(key, parts), tag) { Ok(()) } else { Err(Error::Integrity) }
}

/// SHA-256 over the concatenation of `parts`: transcript hashes and digests.
pub fn hash(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_purpose_gets_a_distinct_key() {
        let keys = EscapeKeys::derive(
            &SecretKey::from_bytes([7; 32]),
            ConsumerId([1; 16]),
            1,
            KeyMode::DedicatedPsk,
        );
        let all = [&keys.escape_mac, &keys.escape_enc, &keys.ack_mac, &keys.status_mac];
        for (i, a) in all.iter().enumerate() {
            for b in all.iter().skip(i + 1) {
                assert_ne!(a, b);
            }
        }
    }

    #[test]
    fn keys_are_bound_to_consumer_key_id_and_mode() {
        let psk = SecretKey::from_bytes([7; 32]);
        let base = EscapeKeys::derive(&psk, ConsumerId([1; 16]), 1, KeyMode::DedicatedPsk);
        let other = [
            EscapeKeys::derive(&psk, ConsumerId([2; 16]), 1, KeyMode::DedicatedPsk),
            EscapeKeys::derive(&psk, ConsumerId([1; 16]), 2, KeyMode::DedicatedPsk),
            EscapeKeys::derive(&psk, ConsumerId([1; 16]), 1, KeyMode::TlsExporter),
        ];
        for o in &other {
            assert_ne!(o.escape_mac, base.escape_mac);
        }
    }

    #[test]
    fn mac_verification_is_all_or_nothing() {
        let k = SecretKey::from_bytes([3; 32]);
        let tag = mac(&k, &[b"ab", b"c"]);
        assert_eq!(verify_mac(&k, &[b"abc"], &tag), Ok(()));
        assert_eq!(verify_mac(&k, &[b"abd"], &tag), Err(Error::Integrity));
        assert_eq!(verify_mac(&k, &[b"abc"], &tag[..31]), Err(Error::Integrity));
    }

    #[test]
    fn exporter_outputs_depend_on_label_and_context_and_check_lengths() {
        let s = SecretKey::from_bytes([9; 32]);
        let (mut a, mut b, mut c) = ([0u8; 32], [0u8; 32], [0u8; 32]);
        export(&s, "ikev2 ppk", b"", &mut a).unwrap();
        export(&s, "ikev2 ppk", b"x", &mut b).unwrap();
        export(&s, "tls binding", b"", &mut c).unwrap();
        assert!(a != b && a != c && b != c);
        assert!(export(&s, "l", b"", &mut [0u8; 256]).is_err());
        assert!(export(&s, "l", b"", &mut []).is_err());
    }
}
