//! The 8-byte common header (protocol.md §3.1) and frame boundaries.

use crate::error::{Error, Malformed, Result};

/// The four bytes that open every pqescape message: ASCII "PQES".
pub const MAGIC: [u8; 4] = *b"PQES";

/// The protocol version this crate speaks.
pub const VERSION: u8 = 0x01;

/// Length of the common header: magic, version, type, body length.
pub const HEADER_LEN: usize = 8;

/// Message types (protocol.md §3.2, table 2), with their body-length limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum MessageType {
    /// Orchestrator to agent: the escape order.
    Escape = 0x01,
    /// Agent to orchestrator: acknowledgement with the agent's key shares.
    Ack = 0x02,
    /// Orchestrator to agent: key shares, optional signature, server confirmation.
    HandshakeResponse = 0x03,
    /// Agent to orchestrator: client key confirmation.
    Finished = 0x04,
    /// Agent to orchestrator: outcome of a step.
    StatusReport = 0x05,
    /// Orchestrator to agent: the ML-DSA signed campaign manifest.
    CampaignManifest = 0x06,
    /// Agent to orchestrator: proves the consumer's identity on a new channel.
    ChannelHello = 0x07,
    /// Agent to orchestrator: first enrollment message.
    EnrollHello = 0x10,
    /// Orchestrator to agent: enrollment key shares and signature.
    EnrollAccept = 0x11,
    /// Agent to orchestrator: the sealed enrollment token secret.
    EnrollConfirm = 0x12,
}

impl MessageType {
    /// Decodes a type byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        Some(match b {
            0x01 => Self::Escape,
            0x02 => Self::Ack,
            0x03 => Self::HandshakeResponse,
            0x04 => Self::Finished,
            0x05 => Self::StatusReport,
            0x06 => Self::CampaignManifest,
            0x07 => Self::ChannelHello,
            0x10 => Self::EnrollHello,
            0x11 => Self::EnrollAccept,
            0x12 => Self::EnrollConfirm,
            _ => return None,
        })
    }

    /// The largest body a message of this type may declare (table 2).
    pub fn max_body_len(self) -> usize {
        match self {
            Self::Escape => 690,
            Self::Ack => 1_800,
            Self::HandshakeResponse => 5_000,
            Self::Finished => 72,
            Self::StatusReport => 350,
            Self::CampaignManifest => 4_500,
            Self::ChannelHello => 160,
            Self::EnrollHello => 1_700,
            Self::EnrollAccept => 7_000,
            Self::EnrollConfirm => 64,
        }
    }
}

/// Looks at the start of a byte stream and says whether a whole message is there.
///
/// Returns the message type and the total length of the first message, or
/// `Error::Incomplete` when more bytes are needed. Bytes after the first message
/// are left alone: they belong to the next one.
pub fn peek_frame(bytes: &[u8]) -> Result<(MessageType, usize)> {
    check_prefix(bytes)?;
    let (Some(&version), Some(&ty), Some(&hi), Some(&lo)) =
        (bytes.get(4), bytes.get(5), bytes.get(6), bytes.get(7))
    else {
        return Err(Error::Incomplete { needed: HEADER_LEN - bytes.len() });
    };
    if version != VERSION {
        return Err(Malformed::UnsupportedVersion(version).into());
    }
    let ty = MessageType::from_u8(ty).ok_or(Malformed::UnknownType(ty))?;
    let body_len = usize::from(u16::from_be_bytes([hi, lo]));
    if body_len > ty.max_body_len() {
        return Err(Malformed::TooLong.into());
    }
    let total = HEADER_LEN + body_len;
    if bytes.len() < total {
        return Err(Error::Incomplete { needed: total - bytes.len() });
    }
    Ok((ty, total))
}

/// Checks that `bytes` is exactly one message of type `expected` and returns its body.
pub(crate) fn open_frame(bytes: &[u8], expected: MessageType) -> Result<&[u8]> {
    let (ty, total) = peek_frame(bytes)?;
    if ty != expected {
        let found = ty as u8;
        return Err(Malformed::UnexpectedType { expected: expected as u8, found }.into());
    }
    if bytes.len() > total {
        return Err(Malformed::TrailingBytes.into());
    }
    bytes.get(HEADER_LEN..).ok_or(Malformed::Truncated.into())
}

/// Rejects a wrong magic as soon as the bytes seen so far disagree with it.
fn check_prefix(bytes: &[u8]) -> Result<()> {
    let seen = bytes.len().min(MAGIC.len());
    if bytes.get(..seen) != MAGIC.get(..seen) {
        return Err(Malformed::BadMagic.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(ty: u8, body: &[u8]) -> Vec<u8> {
        let mut v = MAGIC.to_vec();
        v.push(VERSION);
        v.push(ty);
        v.extend_from_slice(&u16::try_from(body.len()).unwrap_or(u16::MAX).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn short_input_is_incomplete_not_malformed() {
        let f = frame(0x04, &[0; 72]);
        for cut in 0..f.len() {
            let err = peek_frame(&f[..cut]).unwrap_err();
            assert!(matches!(err, Error::Incomplete { needed } if needed > 0), "cut {cut}");
        }
        assert_eq!(peek_frame(&f), Ok((MessageType::Finished, 80)));
    }

    #[test]
    fn wrong_magic_is_malformed_from_the_first_byte() {
        assert_eq!(peek_frame(b"X"), Err(Malformed::BadMagic.into()));
        assert_eq!(peek_frame(b"PQEx"), Err(Malformed::BadMagic.into()));
    }

    #[test]
    fn declared_length_over_the_type_limit_is_refused_before_reading_it() {
        let mut f = frame(0x04, &[]);
        f[6..8].copy_from_slice(&73u16.to_be_bytes());
        assert_eq!(peek_frame(&f), Err(Malformed::TooLong.into()));
    }

    #[test]
    fn open_frame_rejects_trailing_bytes_and_other_types() {
        let mut f = frame(0x04, &[0; 72]);
        assert_eq!(open_frame(&f, MessageType::Escape).unwrap_err().kind(), "malformed");
        f.push(0);
        assert_eq!(open_frame(&f, MessageType::Finished), Err(Malformed::TrailingBytes.into()));
    }

    #[test]
    fn unknown_version_and_type_are_malformed() {
        let mut f = frame(0x04, &[0; 72]);
        f[4] = 2;
        assert_eq!(peek_frame(&f), Err(Malformed::UnsupportedVersion(2).into()));
        let f = frame(0x7f, &[]);
        assert!(matches!(peek_frame(&f), Err(Error::Malformed(_))));
    }
}
