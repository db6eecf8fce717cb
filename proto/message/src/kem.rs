//! The hybrid key exchange of a suite (protocol.md §4.3): X25519 plus ML-KEM.
//!
//! The agent (or the enrolling consumer) generates both shares; the orchestrator
//! answers with its X25519 share and an ML-KEM ciphertext. Each side ends with the
//! two shared secrets, which the key schedule combines.

use ml_kem::array::Array;
use ml_kem::{Decapsulate, Encapsulate, Generate, KeyExport, MlKem768, MlKem1024};
use rand_core::CryptoRng;
use x25519_dalek::{EphemeralSecret, PublicKey};

use crate::error::{Malformed, Misuse, Rejection, Result};
use crate::secret::SecretKey;
use crate::types::Suite;

/// Length of an X25519 public key.
pub const X25519_LEN: usize = 32;

/// Length of the ML-KEM encapsulation key of a suite.
pub fn encapsulation_key_len(suite: Suite) -> usize {
    match suite {
        Suite::X25519MlKem1024 => 1568,
        _ => 1184,
    }
}

/// Length of the ML-KEM ciphertext of a suite.
pub fn ciphertext_len(suite: Suite) -> usize {
    match suite {
        Suite::X25519MlKem1024 => 1568,
        _ => 1088,
    }
}

enum KemSecret {
    K768(Box<ml_kem::DecapsulationKey<MlKem768>>),
    K1024(Box<ml_kem::DecapsulationKey<MlKem1024>>),
}

/// The initiator's secret halves, kept until the answer arrives. Zeroized on drop
/// by the underlying types.
pub(crate) struct InitiatorShares {
    x25519: EphemeralSecret,
    kem: KemSecret,
}

/// The two shared secrets of one exchange, in schedule order.
pub(crate) struct SharedSecrets {
    pub(crate) kem: SecretKey,
    pub(crate) x25519: SecretKey,
}

/// What the initiator sends: its X25519 public key and ML-KEM encapsulation key.
pub(crate) struct PublicShares {
    pub(crate) x25519: [u8; X25519_LEN],
    pub(crate) kem: Vec<u8>,
}

/// Generates the initiator's shares for `suite`.
pub(crate) fn initiate<R: CryptoRng + ?Sized>(
    suite: Suite,
    rng: &mut R,
) -> Result<(InitiatorShares, PublicShares)> {
    let x25519 = EphemeralSecret::random_from_rng(rng);
    let x_pub = PublicKey::from(&x25519).to_bytes();
    let (kem, ek) = match suite {
        Suite::X25519MlKem768 => {
            let dk = ml_kem::DecapsulationKey::<MlKem768>::generate_from_rng(rng);
            let ek = dk.encapsulation_key().to_bytes().to_vec();
            (KemSecret::K768(Box::new(dk)), ek)
        }
        Suite::X25519MlKem1024 => {
            let dk = ml_kem::DecapsulationKey::<MlKem1024>::generate_from_rng(rng);
            let ek = dk.encapsulation_key().to_bytes().to_vec();
            (KemSecret::K1024(Box::new(dk)), ek)
        }
        Suite::Classical => return Err(Misuse::ClassicalSuite.into()),
    };
    Ok((InitiatorShares { x25519, kem }, PublicShares { x25519: x_pub, kem: ek }))
}

/// The responder's side: encapsulates to the initiator's key and answers its X25519 share.
///
/// Returns the responder's public shares (X25519 key, ML-KEM ciphertext) and the secrets.
pub(crate) fn respond<R: CryptoRng + ?Sized>(
    suite: Suite,
    peer: &PublicShares,
    rng: &mut R,
) -> Result<(PublicShares, SharedSecrets)> {
    let (ct, ss_kem) = encapsulate(suite, &peer.kem, rng)?;
    let x25519 = EphemeralSecret::random_from_rng(rng);
    let x_pub = PublicKey::from(&x25519).to_bytes();
    let ss_x = x25519_secret(x25519, peer.x25519)?;
    Ok((PublicShares { x25519: x_pub, kem: ct }, SharedSecrets { kem: ss_kem, x25519: ss_x }))
}

fn encapsulate<R: CryptoRng + ?Sized>(
    suite: Suite,
    ek: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, SecretKey)> {
    let bad_key = || Malformed::InvalidPublicKey;
    let (ct, ss) = match suite {
        Suite::X25519MlKem768 => {
            let bytes = Array::try_from(ek).map_err(|_| bad_key())?;
            let ek = ml_kem::EncapsulationKey::<MlKem768>::new(&bytes).map_err(|_| bad_key())?;
            let (ct, ss) = ek.encapsulate_with_rng(rng);
            (ct.to_vec(), ss)
        }
        Suite::X25519MlKem1024 => {
            let bytes = Array::try_from(ek).map_err(|_| bad_key())?;
            let ek = ml_kem::EncapsulationKey::<MlKem1024>::new(&bytes).map_err(|_| bad_key())?;
            let (ct, ss) = ek.encapsulate_with_rng(rng);
            (ct.to_vec(), ss)
        }
        Suite::Classical => return Err(Misuse::ClassicalSuite.into()),
    };
    Ok((ct, SecretKey::from_bytes(ss.into())))
}

impl InitiatorShares {
    /// Completes the exchange with the responder's X25519 key and ML-KEM ciphertext.
    pub(crate) fn finish(self, peer: &PublicShares) -> Result<SharedSecrets> {
        let bad_ct = || Malformed::FieldLength("ciphertext");
        let ss_kem: [u8; 32] = match &self.kem {
            KemSecret::K768(dk) => dk.decapsulate_slice(&peer.kem).map_err(|_| bad_ct())?.into(),
            KemSecret::K1024(dk) => dk.decapsulate_slice(&peer.kem).map_err(|_| bad_ct())?.into(),
        };
        let ss_x = x25519_secret(self.x25519, peer.x25519)?;
        Ok(SharedSecrets { kem: SecretKey::from_bytes(ss_kem), x25519: ss_x })
    }
}

/// X25519, refusing the all-zero output of a low-order peer key (RFC 7748 §6.1).
fn x25519_secret(secret: EphemeralSecret, peer: [u8; 32]) -> Result<SecretKey> {
    let shared = secret.diffie_hellman(&PublicKey::from(peer));
    if !shared.was_contributory() {
        return Err(Rejection::WeakSharedSecret.into());
    }
    Ok(SecretKey::from_bytes(shared.to_bytes()))
}
