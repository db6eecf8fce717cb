//! The orchestrator's ML-DSA-65 identity (protocol.md §4.4).
//!
//! One signing key per orchestrator deployment. Agents pin its verifying key at
//! enrollment (through the fingerprint in the enrollment token) and afterwards
//! accept signed manifests and handshake signatures only from it.

use core::fmt;

use ml_dsa::{KeyExport, MlDsa65, Signature, SigningKey, VerifyingKey};
use rand_core::CryptoRng;
use zeroize::Zeroizing;

use crate::error::{Error, Malformed, Misuse, Result};
use crate::schedule::hash;

/// Length of an encoded ML-DSA-65 verifying key.
pub const VERIFYING_KEY_LEN: usize = 1952;
/// Length of an encoded ML-DSA-65 signature.
pub const SIGNATURE_LEN: usize = 3309;

/// ML-DSA context strings: a signature made for one purpose never verifies for another.
pub mod context {
    /// Campaign manifests.
    pub const MANIFEST: &[u8] = b"pqescape/v1 manifest";
    /// Handshake responses.
    pub const HANDSHAKE: &[u8] = b"pqescape/v1 handshake";
    /// Enrollment accepts.
    pub const ENROLL: &[u8] = b"pqescape/v1 enroll";
}

/// The orchestrator's signing key, stored as its 32-byte seed (FIPS 204 ξ).
pub struct OrchestratorSigningKey {
    key: SigningKey<MlDsa65>,
}

impl OrchestratorSigningKey {
    /// Generates a fresh key.
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut seed = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(seed.as_mut());
        Self::from_seed(&seed)
    }

    /// Rebuilds the key from its seed (as stored encrypted by the orchestrator).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self { key: SigningKey::from_seed(&(*seed).into()) }
    }

    /// The seed, for encrypted storage. Never log it.
    pub fn to_seed(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.key.to_seed().into())
    }

    /// The public half, as agents pin it.
    pub fn verifying_key(&self) -> OrchestratorVerifyingKey {
        let vk = self.key.expanded_key().verifying_key();
        OrchestratorVerifyingKey { bytes: vk.to_bytes().to_vec(), key: vk }
    }

    /// Signs `message` under a purpose `context` (deterministic ML-DSA, FIPS 204 §5.2).
    ///
    /// Fails only for a context longer than FIPS 204's 255 bytes; the constants in
    /// [`context`] never are.
    pub fn sign(&self, message: &[u8], context: &[u8]) -> Result<Vec<u8>> {
        let sig = self.key.expanded_key().sign_deterministic(message, context);
        let sig = sig.map_err(|_| Misuse::InvalidField("signature context"))?;
        Ok(sig.encode().to_vec())
    }
}

impl fmt::Debug for OrchestratorSigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OrchestratorSigningKey(..)")
    }
}

/// The orchestrator's public ML-DSA-65 key.
#[derive(Clone)]
pub struct OrchestratorVerifyingKey {
    bytes: Vec<u8>,
    key: VerifyingKey<MlDsa65>,
}

impl OrchestratorVerifyingKey {
    /// Decodes a 1952-byte encoded key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let enc = bytes.try_into().map_err(|_| Malformed::InvalidPublicKey)?;
        let key = VerifyingKey::<MlDsa65>::decode(enc);
        Ok(Self { bytes: bytes.to_vec(), key })
    }

    /// The encoded key.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of the encoded key: what an enrollment token pins.
    pub fn fingerprint(&self) -> [u8; 32] {
        hash(&[&self.bytes])
    }

    /// Verifies a signature; any failure is the opaque [`Error::Integrity`].
    pub fn verify(&self, message: &[u8], context: &[u8], signature: &[u8]) -> Result<()> {
        let sig = Signature::<MlDsa65>::try_from(signature).map_err(|_| Error::Integrity)?;
        if self.key.verify_with_context(message, context, &sig) {
            Ok(())
        } else {
            Err(Error::Integrity)
        }
    }
}

impl fmt::Debug for OrchestratorVerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fp = self.fingerprint();
        write!(f, "OrchestratorVerifyingKey(sha256:")?;
        for b in fp.iter().take(8) {
            write!(f, "{b:02x}")?;
        }
        f.write_str("..)")
    }
}

impl PartialEq for OrchestratorVerifyingKey {
    fn eq(&self, other: &Self) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for OrchestratorVerifyingKey {}
