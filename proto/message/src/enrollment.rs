//! PQ-safe enrollment (protocol.md §6.7, §8.3): the consumer's PSK is agreed
//! through X25519 + ML-KEM, authenticated by the orchestrator's ML-DSA-65 key
//! pinned in the one-time token, and authorised by the token's secret, which
//! crosses the wire only sealed under the new keys. A recording of the exchange
//! is worthless to an attacker who later breaks X25519.

use core::fmt;

use chacha20poly1305::ChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use hkdf::Hkdf;
use rand_core::CryptoRng;
use sha2::Sha256;

use crate::error::{Error, Malformed, Rejection, Result};
use crate::kem::{self, InitiatorShares, PublicShares, SharedSecrets};
use crate::message::{EnrollAccept, EnrollConfirm, EnrollHello};
use crate::schedule::{expand32, hash, label};
use crate::secret::{SecretKey, tags_equal};
use crate::sign::{OrchestratorSigningKey, OrchestratorVerifyingKey, context};
use crate::types::{ConsumerId, KeyId, Suite};

/// Prefix of the text form of a token.
const TOKEN_PREFIX: &str = "pqe1.";

/// A one-time enrollment token: a public id, a secret, and the fingerprint of the
/// orchestrator key the agent must find at the other end (§8.3).
#[derive(Clone)]
pub struct EnrollmentToken {
    /// Public locator of the token.
    pub id: [u8; 16],
    secret: SecretKey,
    /// SHA-256 of the orchestrator's ML-DSA-65 verifying key.
    pub pin: [u8; 32],
}

impl EnrollmentToken {
    /// Generates a token that pins `orchestrator`.
    pub fn generate<R: CryptoRng + ?Sized>(
        orchestrator: &OrchestratorVerifyingKey,
        rng: &mut R,
    ) -> Self {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        Self { id, secret: SecretKey::random(rng), pin: orchestrator.fingerprint() }
    }

    /// What the orchestrator stores instead of the secret: SHA-256 of label and secret.
    pub fn verifier(&self) -> [u8; 32] {
        token_verifier(&self.secret)
    }

    /// The token as text, for an operator to hand to the agent once. This is a secret.
    pub fn reveal(&self) -> String {
        let mut s = String::from(TOKEN_PREFIX);
        push_hex(&mut s, &self.id);
        s.push('.');
        push_hex(&mut s, self.secret.expose());
        s.push('.');
        push_hex(&mut s, &self.pin);
        s
    }

    /// Parses the text form of [`EnrollmentToken::reveal`].
    pub fn parse(text: &str) -> Result<Self> {
        let rest = text.trim().strip_prefix(TOKEN_PREFIX).ok_or(Malformed::InvalidToken)?;
        let mut parts = rest.split('.');
        let (Some(id), Some(secret), Some(pin), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Malformed::InvalidToken.into());
        };
        Ok(Self {
            id: from_hex(id)?,
            secret: SecretKey::from_bytes(from_hex(secret)?),
            pin: from_hex(pin)?,
        })
    }
}

impl fmt::Debug for EnrollmentToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollmentToken").field("id", &self.id).finish_non_exhaustive()
    }
}

fn token_verifier(secret: &SecretKey) -> [u8; 32] {
    hash(&[label::TOKEN_VERIFIER, secret.expose()])
}

fn push_hex(s: &mut String, bytes: &[u8]) {
    for b in bytes {
        for nibble in [b >> 4, b & 0x0f] {
            s.push(char::from_digit(u32::from(nibble), 16).unwrap_or('0'));
        }
    }
}

fn from_hex<const N: usize>(text: &str) -> Result<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return Err(Malformed::InvalidToken.into());
    }
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let digit = |d: &u8| char::from(*d).to_digit(16).ok_or(Malformed::InvalidToken);
        let (hi, lo) = match pair {
            [hi, lo] => (digit(hi)?, digit(lo)?),
            _ => return Err(Malformed::InvalidToken.into()),
        };
        *byte = u8::try_from(hi * 16 + lo).map_err(|_| Malformed::InvalidToken)?;
    }
    Ok(out)
}

/// What both sides hold after enrollment.
pub struct Enrolled {
    /// The new consumer's id.
    pub consumer: ConsumerId,
    /// Key id of the PSK (1 for a first enrollment).
    pub key_id: KeyId,
    /// The dedicated PSK.
    pub psk: SecretKey,
    /// The suite the exchange used.
    pub suite: Suite,
}

impl fmt::Debug for Enrolled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Enrolled")
            .field("consumer", &self.consumer)
            .field("key_id", &self.key_id)
            .field("suite", &self.suite)
            .finish_non_exhaustive()
    }
}

/// The two keys an enrollment derives (§5.5).
struct EnrollKeys {
    seal: SecretKey,
    psk: SecretKey,
}

fn enroll_keys(shared: &SharedSecrets, transcript: &[u8; 32]) -> EnrollKeys {
    let mut ikm = [0u8; 64];
    ikm[..32].copy_from_slice(shared.kem.expose());
    ikm[32..].copy_from_slice(shared.x25519.expose());
    let hk = Hkdf::<Sha256>::new(Some(label::ENROLL_SALT), &ikm);
    zeroize::Zeroize::zeroize(&mut ikm);
    EnrollKeys {
        seal: expand32(&hk, &[label::ENROLL_TOKEN, transcript]),
        psk: expand32(&hk, &[label::ENROLL_PSK, transcript]),
    }
}

/// The agent's enrollment in progress.
pub struct AgentEnrollment {
    token: EnrollmentToken,
    hello: Vec<u8>,
    shares: InitiatorShares,
    suite: Suite,
}

impl AgentEnrollment {
    /// Starts enrollment with `token`; returns the state and the hello to send.
    pub fn start<R: CryptoRng + ?Sized + 'static>(
        token: EnrollmentToken,
        suite: Suite,
        rng: &mut R,
    ) -> Result<(Self, Vec<u8>)> {
        let (shares, public) = kem::initiate(suite, rng)?;
        let hello =
            EnrollHello { token_id: token.id, suite, x25519: public.x25519, kem_ek: public.kem };
        let hello = hello.encode()?;
        Ok((Self { token, hello: hello.clone(), shares, suite }, hello))
    }

    /// Checks the accept against the pinned key; returns the confirm to send, the
    /// enrollment result and the orchestrator's verifying key to pin from now on.
    pub fn confirm(self, bytes: &[u8]) -> Result<(Vec<u8>, Enrolled, OrchestratorVerifyingKey)> {
        let accept = EnrollAccept::decode(bytes)?;
        if accept.suite != self.suite {
            return Err(Rejection::SuiteMismatch.into());
        }
        let key = OrchestratorVerifyingKey::from_bytes(&accept.orchestrator_key)?;
        if !tags_equal(&key.fingerprint(), &self.token.pin) {
            return Err(Rejection::UntrustedSigner.into());
        }
        let signed_len = bytes.len().saturating_sub(accept.signature.len());
        let signed = bytes.get(..signed_len).ok_or(Malformed::Truncated)?;
        key.verify(&hash(&[&self.hello, signed]), context::ENROLL, &accept.signature)?;

        let peer = PublicShares { x25519: accept.x25519, kem: accept.kem_ct };
        let shared = self.shares.finish(&peer)?;
        let keys = enroll_keys(&shared, &hash(&[&self.hello, bytes]));
        let sealed = seal_token(&keys.seal, accept.consumer, &self.token.secret)?;
        let confirm = EnrollConfirm { consumer: accept.consumer, sealed_token: sealed }.encode();
        let enrolled = Enrolled {
            consumer: accept.consumer,
            key_id: accept.key_id,
            psk: keys.psk,
            suite: self.suite,
        };
        Ok((confirm, enrolled, key))
    }
}

fn seal_token(key: &SecretKey, consumer: ConsumerId, secret: &SecretKey) -> Result<[u8; 48]> {
    let cipher = ChaCha20Poly1305::new(key.expose().into());
    let aad = EnrollConfirm::aad(consumer);
    let payload = Payload { msg: secret.expose(), aad: &aad };
    let sealed = cipher.encrypt(&[0u8; 12].into(), payload).map_err(|_| Error::Integrity)?;
    sealed.try_into().map_err(|_| Error::Integrity)
}

/// The orchestrator's enrollment in progress, after sending its accept.
pub struct OrchestratorEnrollment {
    consumer: ConsumerId,
    key_id: KeyId,
    suite: Suite,
    keys: EnrollKeys,
}

/// Answers a hello. The caller has decoded it with [`EnrollHello::decode`] and found a
/// live, unused token with that id; it assigns the consumer id and key id.
pub fn accept_enrollment<R: CryptoRng + ?Sized + 'static>(
    hello_bytes: &[u8],
    consumer: ConsumerId,
    key_id: KeyId,
    signer: &OrchestratorSigningKey,
    rng: &mut R,
) -> Result<(OrchestratorEnrollment, Vec<u8>)> {
    let hello = EnrollHello::decode(hello_bytes)?;
    let peer = PublicShares { x25519: hello.x25519, kem: hello.kem_ek };
    let (ours, shared) = kem::respond(hello.suite, &peer, rng)?;
    let accept = EnrollAccept {
        consumer,
        key_id,
        suite: hello.suite,
        x25519: ours.x25519,
        kem_ct: ours.kem,
        orchestrator_key: signer.verifying_key().as_bytes().to_vec(),
        signature: Vec::new(),
    };
    let mut w = accept.signed_part()?;
    let sig = signer.sign(&hash(&[hello_bytes, w.so_far()]), context::ENROLL)?;
    w.bytes(&sig);
    let accept_bytes = w.finish();
    let keys = enroll_keys(&shared, &hash(&[hello_bytes, &accept_bytes]));
    let state = OrchestratorEnrollment { consumer, key_id, suite: hello.suite, keys };
    Ok((state, accept_bytes))
}

/// Length of a serialised [`OrchestratorEnrollment`].
pub const ENROLLMENT_STATE_LEN: usize = 16 + 4 + 1 + 32 + 32;

impl OrchestratorEnrollment {
    /// The state as bytes, so that any replica can finish the enrollment (§8.3).
    /// It holds the new PSK: store it only encrypted.
    pub fn to_bytes(&self) -> zeroize::Zeroizing<Vec<u8>> {
        let mut b = zeroize::Zeroizing::new(Vec::with_capacity(ENROLLMENT_STATE_LEN));
        b.extend_from_slice(&self.consumer.0);
        b.extend_from_slice(&self.key_id.to_be_bytes());
        b.push(self.suite as u8);
        b.extend_from_slice(self.keys.seal.expose());
        b.extend_from_slice(self.keys.psk.expose());
        b
    }

    /// Restores the state written by [`OrchestratorEnrollment::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        if bytes.len() != ENROLLMENT_STATE_LEN {
            return Err(Malformed::FieldLength("enrollment state").into());
        }
        let mut r = crate::wire::Reader::new(bytes);
        let consumer = ConsumerId(r.array()?);
        let key_id = r.u32()?;
        let suite = Suite::target_from_u8(r.u8()?)?;
        let seal = SecretKey::from_bytes(r.array()?);
        let psk = SecretKey::from_bytes(r.array()?);
        r.finish()?;
        Ok(Self { consumer, key_id, suite, keys: EnrollKeys { seal, psk } })
    }

    /// The consumer being enrolled.
    pub fn consumer(&self) -> ConsumerId {
        self.consumer
    }

    /// Opens the confirm and checks the token secret against the stored verifier.
    pub fn finish(self, bytes: &[u8], stored_verifier: &[u8; 32]) -> Result<Enrolled> {
        let confirm = EnrollConfirm::decode(bytes)?;
        if confirm.consumer != self.consumer {
            return Err(Rejection::WrongConsumer.into());
        }
        let cipher = ChaCha20Poly1305::new(self.keys.seal.expose().into());
        let aad = EnrollConfirm::aad(self.consumer);
        let payload = Payload { msg: &confirm.sealed_token, aad: &aad };
        let opened = cipher.decrypt(&[0u8; 12].into(), payload).map_err(|_| Error::Integrity)?;
        let secret: [u8; 32] = opened.try_into().map_err(|_| Error::Integrity)?;
        let secret = SecretKey::from_bytes(secret);
        if !tags_equal(&token_verifier(&secret), stored_verifier) {
            return Err(Error::Integrity);
        }
        Ok(Enrolled {
            consumer: self.consumer,
            key_id: self.key_id,
            psk: self.keys.psk,
            suite: self.suite,
        })
    }
}
