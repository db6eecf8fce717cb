//! API tokens: bearer secrets with a role, stored as SHA-256 hashes only.
//!
//! A token is `pqe_` followed by 64 hex digits (32 random bytes). Lookup is by the
//! hash through a unique index, so the token itself is never compared, stored or
//! logged; a timing difference in the index lookup reveals nothing about a token
//! that is not already known.

use rand_core::{Rng, UnwrapErr};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Prefix of every API token, so that secret scanners can recognise one.
pub const TOKEN_PREFIX: &str = "pqe_";

/// A freshly generated API token, shown to its owner once.
pub struct NewToken {
    /// The bearer secret.
    pub secret: Zeroizing<String>,
    /// What the store keeps.
    pub hash: [u8; 32],
}

/// Generates a token.
pub fn generate() -> NewToken {
    let mut raw = Zeroizing::new([0u8; 32]);
    UnwrapErr(getrandom::SysRng).fill_bytes(raw.as_mut());
    let secret = Zeroizing::new(format!("{TOKEN_PREFIX}{}", hex::encode(raw.as_ref())));
    let hash = hash(&secret);
    NewToken { secret, hash }
}

/// The stored form of a presented token.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Whether a presented string has the shape of a token (checked before any lookup).
pub fn well_formed(secret: &str) -> bool {
    secret
        .strip_prefix(TOKEN_PREFIX)
        .is_some_and(|hex| hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_well_formed_distinct_and_hashed() {
        let (a, b) = (generate(), generate());
        assert!(well_formed(&a.secret) && well_formed(&b.secret));
        assert_ne!(*a.secret, *b.secret);
        assert_eq!(hash(&a.secret), a.hash);
        assert!(!well_formed("pqe_xyz") && !well_formed("Bearer pqe_"));
    }
}
