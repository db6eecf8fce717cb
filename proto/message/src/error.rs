//! Errors of the protocol layer, split by who is at fault (protocol.md §9).
//!
//! * [`Error::Incomplete`]: not enough bytes yet; a stream reader should wait.
//! * [`Error::Malformed`]: the bytes do not parse; the sender or the channel is at fault.
//! * [`Error::Integrity`]: a MAC, AEAD tag, key confirmation or signature did not verify.
//!   Deliberately opaque: it never says which check failed or how.
//! * [`Error::Rejected`]: a well-formed message refused by the receiver's rules (replay,
//!   expiry, downgrade...): the peer misbehaved, or someone replays its messages.
//! * [`Error::Misuse`]: the caller asked for something the protocol cannot express.
//!
//! Every variant maps to a stable reason code that travels in status reports
//! (protocol.md §6.5) and to a closed metric label ([`Error::kind`]).

use core::fmt;

/// Any failure of the protocol layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The input ends before the message does; `needed` more bytes at least.
    Incomplete {
        /// Minimum number of further bytes before decoding can make progress.
        needed: usize,
    },
    /// The bytes are not a valid message.
    Malformed(Malformed),
    /// An integrity check failed. Opaque on purpose.
    Integrity,
    /// A well-formed message was refused by the receiver's rules.
    Rejected(Rejection),
    /// The caller asked for something the protocol cannot express.
    Misuse(Misuse),
}

/// Ways in which bytes fail to be a message (protocol.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Malformed {
    /// The first four bytes are not the pqescape magic.
    BadMagic,
    /// A protocol version this implementation does not speak.
    UnsupportedVersion(u8),
    /// A message type byte this protocol version does not define.
    UnknownType(u8),
    /// A message type other than the one expected here.
    UnexpectedType {
        /// The type the receiver expected.
        expected: u8,
        /// The type on the wire.
        found: u8,
    },
    /// The declared body length exceeds the limit of its message type.
    TooLong,
    /// Bytes remain after the message, or after its last field.
    TrailingBytes,
    /// The body ends before its last field.
    Truncated,
    /// A flag bit that is reserved is set.
    ReservedFlags,
    /// A suite identifier that is unknown, or not valid in this message.
    UnknownSuite(u8),
    /// A status code that is unknown.
    UnknownStatus(u8),
    /// A length field outside its allowed range, named by the field.
    FieldLength(&'static str),
    /// A text field that is not UTF-8.
    InvalidUtf8,
    /// A public key that is not a valid encoding.
    InvalidPublicKey,
    /// An enrollment token string that does not parse.
    InvalidToken,
}

/// Reasons a well-formed message is refused (protocol.md §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejection {
    /// Addressed to another consumer.
    WrongConsumer,
    /// Bound to another campaign than the one in progress.
    WrongCampaign,
    /// Protected under a key id the receiver does not hold.
    UnknownKeyId,
    /// A sequence number not above the last accepted one.
    Replay,
    /// A sequence number too far above the last accepted one.
    SequenceTooFarAhead,
    /// Issued in the future, beyond the allowed clock skew.
    NotYetValid,
    /// Past its not-after time, beyond the allowed clock skew.
    Expired,
    /// A validity window that is empty or longer than the protocol allows.
    BadValidityWindow,
    /// A target suite weaker than the one the consumer already runs.
    Downgrade,
    /// A message keyed from a TLS exporter while policy demands the dedicated PSK.
    ExporterModeRefused,
    /// Policy requires a signed campaign manifest and none is bound.
    ManifestRequired,
    /// The bound manifest does not match the escape message.
    ManifestMismatch,
    /// Signed by a key other than the pinned orchestrator key.
    UntrustedSigner,
    /// Policy requires a handshake signature and none is present.
    SignatureRequired,
    /// The suite differs from the one the exchange started with.
    SuiteMismatch,
    /// A field that must echo an earlier message does not.
    TranscriptMismatch,
    /// The X25519 exchange produced the all-zero secret (low-order point).
    WeakSharedSecret,
}

/// Requests the protocol cannot express (a bug in the caller, not in the peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Misuse {
    /// A variable field is longer than its limit, named by the field.
    FieldTooLong(&'static str),
    /// A field has a length or value the protocol cannot carry, named by the field.
    InvalidField(&'static str),
    /// `not_after` is not after `issued_at`, or the window is too long.
    InvalidWindow,
    /// The key id cannot advance further.
    KeyIdExhausted,
    /// An exporter output length outside 1..=255 bytes, or an over-long label.
    ExporterLength,
    /// Suite 0 (classical) was given where a post-quantum suite is needed.
    ClassicalSuite,
}

impl Error {
    /// A closed, stable label for metrics: never error text.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Incomplete { .. } => "incomplete",
            Error::Malformed(_) => "malformed",
            Error::Integrity => "integrity",
            Error::Rejected(r) => r.kind(),
            Error::Misuse(_) => "misuse",
        }
    }

    /// The reason code carried by a status report (protocol.md §6.5, table 12).
    pub fn reason_code(&self) -> u16 {
        match self {
            Error::Incomplete { .. } | Error::Malformed(_) => 0x0001,
            Error::Integrity => 0x0002,
            Error::Rejected(r) => r.reason_code(),
            Error::Misuse(_) => 0x00ff,
        }
    }
}

impl Rejection {
    /// A closed, stable label for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::WrongConsumer => "wrong_consumer",
            Rejection::WrongCampaign => "wrong_campaign",
            Rejection::UnknownKeyId => "unknown_key_id",
            Rejection::Replay => "replay",
            Rejection::SequenceTooFarAhead => "sequence_too_far_ahead",
            Rejection::NotYetValid => "not_yet_valid",
            Rejection::Expired => "expired",
            Rejection::BadValidityWindow => "bad_validity_window",
            Rejection::Downgrade => "downgrade",
            Rejection::ExporterModeRefused => "exporter_mode_refused",
            Rejection::ManifestRequired => "manifest_required",
            Rejection::ManifestMismatch => "manifest_mismatch",
            Rejection::UntrustedSigner => "untrusted_signer",
            Rejection::SignatureRequired => "signature_required",
            Rejection::SuiteMismatch => "suite_mismatch",
            Rejection::TranscriptMismatch => "transcript_mismatch",
            Rejection::WeakSharedSecret => "weak_shared_secret",
        }
    }

    /// The reason code carried by a status report (protocol.md §6.5, table 12).
    pub fn reason_code(&self) -> u16 {
        match self {
            Rejection::WrongConsumer => 0x0010,
            Rejection::WrongCampaign => 0x0011,
            Rejection::UnknownKeyId => 0x0012,
            Rejection::Replay => 0x0020,
            Rejection::SequenceTooFarAhead => 0x0021,
            Rejection::NotYetValid => 0x0022,
            Rejection::Expired => 0x0023,
            Rejection::BadValidityWindow => 0x0024,
            Rejection::Downgrade => 0x0030,
            Rejection::ExporterModeRefused => 0x0031,
            Rejection::ManifestRequired => 0x0040,
            Rejection::ManifestMismatch => 0x0041,
            Rejection::UntrustedSigner => 0x0042,
            Rejection::SignatureRequired => 0x0043,
            Rejection::SuiteMismatch => 0x0050,
            Rejection::TranscriptMismatch => 0x0051,
            Rejection::WeakSharedSecret => 0x0052,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Incomplete { needed } => write!(f, "incomplete message: {needed} more bytes"),
            Error::Malformed(m) => write!(f, "malformed message: {m:?}"),
            Error::Integrity => f.write_str("integrity check failed"),
            Error::Rejected(r) => write!(f, "message rejected: {}", r.kind()),
            Error::Misuse(m) => write!(f, "invalid request: {m:?}"),
        }
    }
}

impl core::error::Error for Error {}

impl From<Malformed> for Error {
    fn from(m: Malformed) -> Self {
        Error::Malformed(m)
    }
}

impl From<Rejection> for Error {
    fn from(r: Rejection) -> Self {
        Error::Rejected(r)
    }
}

impl From<Misuse> for Error {
    fn from(m: Misuse) -> Self {
        Error::Misuse(m)
    }
}

/// Result with this crate's [`Error`].
pub type Result<T> = core::result::Result<T, Error>;
