//! Identifiers and enumerations shared by every message (protocol.md §2).

use core::fmt;

use crate::error::{Malformed, Result};

/// A consumer's identifier: 16 bytes, assigned by the orchestrator at enrollment.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConsumerId(pub [u8; 16]);

/// A campaign's identifier: 16 bytes, assigned by the orchestrator.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CampaignId(pub [u8; 16]);

/// Identifies which of a consumer's PSKs protects a message; advances by one per ratchet.
pub type KeyId = u32;

fn fmt_uuid(b: &[u8; 16], f: &mut fmt::Formatter<'_>) -> fmt::Result {
    for (i, byte) in b.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            f.write_str("-")?;
        }
        write!(f, "{byte:02x}")?;
    }
    Ok(())
}

impl fmt::Display for ConsumerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_uuid(&self.0, f)
    }
}

impl fmt::Debug for ConsumerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ConsumerId({self})")
    }
}

impl fmt::Display for CampaignId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt_uuid(&self.0, f)
    }
}

impl fmt::Debug for CampaignId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CampaignId({self})")
    }
}

/// A cryptographic suite: what a consumer's security context is built from (§2.2).
///
/// The order is the order of strength; a consumer never moves down it (§7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum Suite {
    /// The classical context a consumer runs before migration. Never a target.
    Classical = 0x00,
    /// X25519 + ML-KEM-768 hybrid key exchange, ML-DSA-65 orchestrator authentication.
    X25519MlKem768 = 0x01,
    /// X25519 + ML-KEM-1024 hybrid key exchange, ML-DSA-65 orchestrator authentication.
    X25519MlKem1024 = 0x02,
}

impl Suite {
    /// Decodes a suite byte, including `Classical`.
    pub fn from_u8(b: u8) -> Result<Self> {
        match b {
            0x00 => Ok(Suite::Classical),
            0x01 => Ok(Suite::X25519MlKem768),
            0x02 => Ok(Suite::X25519MlKem1024),
            other => Err(Malformed::UnknownSuite(other).into()),
        }
    }

    /// Decodes a suite byte that must name a post-quantum suite.
    pub fn target_from_u8(b: u8) -> Result<Self> {
        match Suite::from_u8(b)? {
            Suite::Classical => Err(Malformed::UnknownSuite(b).into()),
            pq => Ok(pq),
        }
    }

    /// A stable name, as used in configuration and the admin API.
    pub fn name(self) -> &'static str {
        match self {
            Suite::Classical => "classical",
            Suite::X25519MlKem768 => "x25519-mlkem768",
            Suite::X25519MlKem1024 => "x25519-mlkem1024",
        }
    }

    /// Parses [`Suite::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        [Suite::Classical, Suite::X25519MlKem768, Suite::X25519MlKem1024]
            .into_iter()
            .find(|suite| suite.name() == s)
    }

    /// Whether this suite is post-quantum.
    pub fn is_post_quantum(self) -> bool {
        self != Suite::Classical
    }
}

/// Which key protects the escape message (§5.1): the draft's two options.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum KeyMode {
    /// The consumer's dedicated pre-shared key. The default, and the only safe mode
    /// when classical keys may have been recorded.
    DedicatedPsk,
    /// A key exported from the current TLS 1.3 connection (RFC 8446 §7.5).
    /// UNSAFE against harvest-now-decrypt-later: see protocol.md §5.1.2.
    TlsExporter,
}

impl KeyMode {
    pub(crate) fn byte(self) -> u8 {
        match self {
            KeyMode::DedicatedPsk => 0,
            KeyMode::TlsExporter => 1,
        }
    }
}
