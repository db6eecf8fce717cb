//! Secrets at rest: every PSK, enrollment session and signing-key seed is sealed
//! under the master key before it reaches the store.
//!
//! Sealing is XChaCha20-Poly1305 with a random 24-byte nonce. The associated data
//! names the purpose and the row the value belongs to, so a sealed PSK copied into
//! another consumer's row, or into another column, no longer opens.

use std::fmt;
use std::path::Path;

use chacha20poly1305::XChaCha20Poly1305;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use rand_core::{Rng, UnwrapErr};
use zeroize::{Zeroize, Zeroizing};

/// Format version of a sealed value.
const SEALED_VERSION: u8 = 1;
const NONCE_LEN: usize = 24;

/// What a sealed value is, bound into its associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// A consumer's dedicated PSK.
    Psk,
    /// The orchestrator's half of an enrollment in progress.
    EnrollmentSession,
    /// The orchestrator's half of a handshake awaiting the agent's finished message.
    PendingContext,
    /// The ML-DSA-65 signing key seed.
    SigningKey,
    /// The value that proves the master key matches the database.
    KeyCheck,
}

impl Purpose {
    fn label(self) -> &'static [u8] {
        match self {
            Purpose::Psk => b"psk",
            Purpose::EnrollmentSession => b"enrollment session",
            Purpose::PendingContext => b"pending context",
            Purpose::SigningKey => b"signing key",
            Purpose::KeyCheck => b"key check",
        }
    }
}

/// Failures of the sealing layer. Deliberately without detail.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// A sealed value did not open: wrong master key, or tampered data.
    #[error("a sealed value did not open under the master key")]
    Open,
    /// The master key material is not 32 bytes of hex.
    #[error("the master key must be 64 hexadecimal characters (32 bytes)")]
    BadKey,
    /// The master key file could not be read or written.
    #[error("master key file {path}: {source}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        source: std::io::Error,
    },
}

/// The 32-byte key that seals every secret at rest. Zeroized on drop, never printed.
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// Parses 64 hex characters (surrounding whitespace ignored).
    pub fn from_hex(text: &str) -> Result<Self, SecretError> {
        let mut bytes = Zeroizing::new(hex::decode(text.trim()).map_err(|_| SecretError::BadKey)?);
        let key: [u8; 32] = bytes.as_slice().try_into().map_err(|_| SecretError::BadKey)?;
        bytes.zeroize();
        Ok(Self(key))
    }

    /// Draws a fresh key from the operating system.
    pub fn generate() -> Self {
        let mut key = [0u8; 32];
        UnwrapErr(getrandom::SysRng).fill_bytes(&mut key);
        Self(key)
    }

    /// Reads a key file (hex).
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        let file_error = |source| SecretError::File { path: path.display().to_string(), source };
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(file_error)?);
        Self::from_hex(&text)
    }

    /// Writes the key as hex to a new file readable by its owner only.
    pub fn write_new_file(&self, path: &Path) -> Result<(), SecretError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let file_error = |source| SecretError::File { path: path.display().to_string(), source };
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(file_error)?;
        let text = Zeroizing::new(hex::encode(self.0));
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(file_error)
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        XChaCha20Poly1305::new(&self.0.into())
    }

    /// Seals `plaintext` for `purpose` in row `row`.
    pub fn seal(&self, purpose: Purpose, row: &str, plaintext: &[u8]) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        UnwrapErr(getrandom::SysRng).fill_bytes(&mut nonce);
        let aad = associated_data(purpose, row);
        let payload = Payload { msg: plaintext, aad: &aad };
        // ChaCha20-Poly1305 refuses only inputs beyond 256 GiB; ours are a few bytes.
        let sealed = self.cipher().encrypt(&nonce.into(), payload).unwrap_or_default();
        let mut out = Vec::with_capacity(1 + NONCE_LEN + sealed.len());
        out.push(SEALED_VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&sealed);
        out
    }

    /// Opens a value sealed by [`MasterKey::seal`] for the same purpose and row.
    pub fn open(
        &self,
        purpose: Purpose,
        row: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<Vec<u8>>, SecretError> {
        let (&version, rest) = sealed.split_first().ok_or(SecretError::Open)?;
        if version != SEALED_VERSION || rest.len() < NONCE_LEN {
            return Err(SecretError::Open);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().map_err(|_| SecretError::Open)?;
        let aad = associated_data(purpose, row);
        let payload = Payload { msg: ciphertext, aad: &aad };
        let plain = self.cipher().decrypt(&nonce.into(), payload).map_err(|_| SecretError::Open)?;
        Ok(Zeroizing::new(plain))
    }

    /// Opens a sealed 32-byte value.
    pub fn open32(
        &self,
        purpose: Purpose,
        row: &str,
        sealed: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, SecretError> {
        let plain = self.open(purpose, row, sealed)?;
        let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| SecretError::Open)?;
        Ok(Zeroizing::new(bytes))
    }
}

fn associated_data(purpose: Purpose, row: &str) -> Vec<u8> {
    let mut aad = b"pqescape/v1 at rest ".to_vec();
    aad.extend_from_slice(purpose.label());
    aad.push(0);
    aad.extend_from_slice(row.as_bytes());
    aad
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_only_for_its_purpose_row_and_key() {
        let key = MasterKey::generate();
        let sealed = key.seal(Purpose::Psk, "consumer-a", b"secret psk bytes");
        assert_eq!(
            key.open(Purpose::Psk, "consumer-a", &sealed).unwrap().as_slice(),
            b"secret psk bytes"
        );
        assert!(key.open(Purpose::Psk, "consumer-b", &sealed).is_err());
        assert!(key.open(Purpose::SigningKey, "consumer-a", &sealed).is_err());
        assert!(MasterKey::generate().open(Purpose::Psk, "consumer-a", &sealed).is_err());
        let mut flipped = sealed.clone();
        flipped[30] ^= 1;
        assert!(key.open(Purpose::Psk, "consumer-a", &flipped).is_err());
    }

    #[test]
    fn sealing_never_shows_the_plaintext_and_is_randomised() {
        let key = MasterKey::generate();
        let a = key.seal(Purpose::Psk, "r", b"plaintext-marker");
        let b = key.seal(Purpose::Psk, "r", b"plaintext-marker");
        assert_ne!(a, b);
        assert!(!a.windows(16).any(|w| w == b"plaintext-marker"));
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }

    #[test]
    fn hex_keys_must_be_exactly_32_bytes() {
        assert!(MasterKey::from_hex(&"ab".repeat(32)).is_ok());
        assert!(MasterKey::from_hex(&"ab".repeat(31)).is_err());
        assert!(MasterKey::from_hex("zz").is_err());
    }
}
