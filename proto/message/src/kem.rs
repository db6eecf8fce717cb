//! The hybrid key exchange of a suite (protocol.md §4.3): X25519 plus ML-KEM.
//!
//! The agent (or the enrolling consumer) generates both shares; the orchestrator
//! answers with its X25519 share and an ML-KEM ciphertext. Each side ends with the
//! two shared secrets, which the key schedule combines.
//!
//! Two implementations of ML-KEM sit behind one interface, chosen by the caller's
//! randomness. With [`SystemEntropy`] (what the services pass) the exchange uses
//! aws-lc, whose assembly Keccak and NTTs make key generation, encapsulation and
//! decapsulation several times faster (docs/performance.md); aws-lc then draws
//! ML-KEM's randomness from the operating system itself. With any other generator
//! the exchange uses RustCrypto's `ml-kem` and takes every random byte from that
//! generator, so that the published test vectors, which list each draw, reproduce.
//! Both are FIPS 203: either side may use either (tests/handshake.rs). X25519
//! always runs in aws-lc, on a private key drawn from the caller's generator,
//! which keeps it reproducible too.

use core::any::TypeId;

use aws_lc_rs::agreement::{self, UnparsedPublicKey, X25519};
use aws_lc_rs::kem;
use ml_kem::array::Array;
use ml_kem::{Decapsulate, Encapsulate, Generate, KeyExport, MlKem768, MlKem1024};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::entropy::SystemEntropy;
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
    /// Either size, in aws-lc (which clears the key when it frees it).
    AwsLc(kem::DecapsulationKey),
}

/// The initiator's secret halves, kept until the answer arrives. Zeroized on drop
/// by the underlying types.
pub(crate) struct InitiatorShares {
    x25519: agreement::PrivateKey,
    kem: KemSecret,
}

/// Whether `R` is the operating system's generator, so that aws-lc may draw
/// ML-KEM's randomness itself.
fn system<R: ?Sized + 'static>() -> bool {
    TypeId::of::<R>() == TypeId::of::<SystemEntropy>()
}

fn aws_lc_algorithm(suite: Suite) -> Result<&'static kem::Algorithm> {
    match suite {
        Suite::X25519MlKem768 => Ok(&kem::ML_KEM_768),
        Suite::X25519MlKem1024 => Ok(&kem::ML_KEM_1024),
        Suite::Classical => Err(Misuse::ClassicalSuite.into()),
    }
}

/// An X25519 private key of 32 bytes from `rng` (clamped by X25519 itself).
fn x25519_key<R: CryptoRng + ?Sized>(rng: &mut R) -> Result<agreement::PrivateKey> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(bytes.as_mut());
    agreement::PrivateKey::from_private_key(&X25519, bytes.as_ref())
        .map_err(|_| Misuse::InvalidField("x25519 private key").into())
}

fn x25519_public(key: &agreement::PrivateKey) -> Result<[u8; X25519_LEN]> {
    let public = key.compute_public_key().map_err(|_| Misuse::InvalidField("x25519 key"))?;
    public.as_ref().try_into().map_err(|_| Misuse::InvalidField("x25519 key").into())
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
pub(crate) fn initiate<R: CryptoRng + ?Sized + 'static>(
    suite: Suite,
    rng: &mut R,
) -> Result<(InitiatorShares, PublicShares)> {
    let x25519 = x25519_key(rng)?;
    let x_pub = x25519_public(&x25519)?;
    let (kem, ek) = match suite {
        _ if system::<R>() => {
            let failed = || Misuse::InvalidField("ml-kem key generation");
            let dk =
                kem::DecapsulationKey::generate(aws_lc_algorithm(suite)?).map_err(|_| failed())?;
            let ek = dk.encapsulation_key().and_then(|ek| ek.key_bytes()).map_err(|_| failed())?;
            let ek = ek.as_ref().to_vec();
            (KemSecret::AwsLc(dk), ek)
        }
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
pub(crate) fn respond<R: CryptoRng + ?Sized + 'static>(
    suite: Suite,
    peer: &PublicShares,
    rng: &mut R,
) -> Result<(PublicShares, SharedSecrets)> {
    let (ct, ss_kem) = encapsulate(suite, &peer.kem, rng)?;
    let x25519 = x25519_key(rng)?;
    let x_pub = x25519_public(&x25519)?;
    let ss_x = x25519_secret(&x25519, peer.x25519)?;
    Ok((PublicShares { x25519: x_pub, kem: ct }, SharedSecrets { kem: ss_kem, x25519: ss_x }))
}

fn encapsulate<R: CryptoRng + ?Sized + 'static>(
    suite: Suite,
    ek: &[u8],
    rng: &mut R,
) -> Result<(Vec<u8>, SecretKey)> {
    let bad_key = || Malformed::InvalidPublicKey;
    if system::<R>() {
        let ek = kem::EncapsulationKey::new(aws_lc_algorithm(suite)?, ek).map_err(|_| bad_key())?;
        let (ct, ss) = ek.encapsulate().map_err(|_| bad_key())?;
        let ss: [u8; 32] = ss.as_ref().try_into().map_err(|_| bad_key())?;
        return Ok((ct.as_ref().to_vec(), SecretKey::from_bytes(ss)));
    }
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
            KemSecret::AwsLc(dk) => {
                let ss = dk.decapsulate(peer.kem.as_slice().into()).map_err(|_| bad_ct())?;
                ss.as_ref().try_into().map_err(|_| bad_ct())?
            }
        };
        let ss_x = x25519_secret(&self.x25519, peer.x25519)?;
        Ok(SharedSecrets { kem: SecretKey::from_bytes(ss_kem), x25519: ss_x })
    }
}

/// X25519, refusing the all-zero output of a low-order peer key (RFC 7748 §6.1):
/// aws-lc fails the agreement exactly then.
fn x25519_secret(secret: &agreement::PrivateKey, peer: [u8; 32]) -> Result<SecretKey> {
    let peer = UnparsedPublicKey::new(&X25519, peer);
    agreement::agree(secret, peer, Rejection::WeakSharedSecret, |shared| {
        let shared: [u8; 32] = shared.try_into().map_err(|_| Rejection::WeakSharedSecret)?;
        Ok(SecretKey::from_bytes(shared))
    })
    .map_err(Into::into)
}
