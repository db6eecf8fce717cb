//! The new post-quantum security context both sides hold after a handshake (§5.3, §5.4).

use core::fmt;

use crate::error::Result;
use crate::message::Exchange;
use crate::schedule::export;
use crate::secret::SecretKey;
use crate::types::{KeyId, Suite};

/// Exporter label of the RFC 8784 post-quantum preshared key handed to IKEv2.
pub const EXPORT_IKEV2_PPK: &str = "ikev2 ppk";
/// Exporter label of the value that binds the agent's TLS channel to this context.
pub const EXPORT_CHANNEL_BINDING: &str = "channel binding";

/// A completed exchange: the context secret, the ratcheted PSK and what they belong to.
pub struct NewContext {
    /// The escape this context answers.
    pub exchange: Exchange,
    /// The context's suite.
    pub suite: Suite,
    /// Key id of the ratcheted PSK (one above the escape's).
    pub next_key_id: KeyId,
    /// Whether the escape was a drill: nothing may be committed.
    pub drill: bool,
    pub(crate) context_secret: SecretKey,
    pub(crate) next_psk: SecretKey,
}

impl NewContext {
    /// The consumer's next PSK. Commit it only outside a drill, and keep the previous
    /// one until a message under the new key id verifies (§5.3).
    pub fn next_psk(&self) -> &SecretKey {
        &self.next_psk
    }

    /// Derives keying material for another protocol from this context (§5.4).
    pub fn export(&self, label: &str, context: &[u8], out: &mut [u8]) -> Result<()> {
        export(&self.context_secret, label, context, out)
    }

    /// The 32-byte RFC 8784 PPK for IKEv2, bound to `ppk_id`.
    pub fn ikev2_ppk(&self, ppk_id: &[u8]) -> Result<SecretKey> {
        let mut out = [0u8; 32];
        self.export(EXPORT_IKEV2_PPK, ppk_id, &mut out)?;
        Ok(SecretKey::from_bytes(out))
    }

    /// A public value both sides derive, to bind a TLS channel to this context.
    pub fn channel_binding(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        // A 32-byte output and a constant label are always within the exporter's limits.
        let _ = self.export(EXPORT_CHANNEL_BINDING, &[], &mut out);
        out
    }
}

impl fmt::Debug for NewContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewContext")
            .field("exchange", &self.exchange)
            .field("suite", &self.suite)
            .field("next_key_id", &self.next_key_id)
            .field("drill", &self.drill)
            .finish_non_exhaustive()
    }
}
