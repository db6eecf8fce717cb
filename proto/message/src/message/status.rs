//! The status report (protocol.md §6.5): what happened, for the orchestrator's records.

use super::{EXCHANGE_LEN, Exchange};
use crate::error::{Malformed, Result};
use crate::schedule::TAG_LEN;
use crate::types::KeyId;
use crate::wire::{MessageType, Reader, Writer, open_frame};

/// Longest free-text detail, in bytes of UTF-8.
pub const MAX_DETAIL_LEN: usize = 256;

/// The outcome a status report carries (§6.5, table 11).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Status {
    /// The escape verified, its sequence is persisted and the ack is sent.
    Accepted = 0x01,
    /// The new context is in force and the PSK has ratcheted.
    Migrated = 0x02,
    /// Migration failed after the escape was accepted (a hook, say).
    Failed = 0x03,
    /// The escape was refused; the reason code says why.
    Rejected = 0x04,
    /// A drill completed every step without changing anything.
    DrillPassed = 0x05,
}

impl Status {
    fn from_u8(b: u8) -> Result<Self> {
        Ok(match b {
            0x01 => Status::Accepted,
            0x02 => Status::Migrated,
            0x03 => Status::Failed,
            0x04 => Status::Rejected,
            0x05 => Status::DrillPassed,
            other => return Err(Malformed::UnknownStatus(other).into()),
        })
    }
}

/// A decoded status report.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StatusReport {
    /// Which escape this reports on.
    pub exchange: Exchange,
    /// The PSK the report is MACed under (the new one after a migration).
    pub key_id: KeyId,
    /// The outcome.
    pub status: Status,
    /// Zero, or a reason code from table 12.
    pub reason: u16,
    /// Seconds since the Unix epoch.
    pub reported_at: u64,
    /// Free text for operators; never secret.
    pub detail: String,
    /// HMAC under the status key over every preceding byte.
    pub mac: [u8; TAG_LEN],
}

impl StatusReport {
    /// Decodes one status report.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        let mut r = Reader::new(open_frame(bytes, MessageType::StatusReport)?);
        let exchange = Exchange::read(&mut r)?;
        let key_id = r.u32()?;
        let status = Status::from_u8(r.u8()?)?;
        let reason = r.u16()?;
        let reported_at = r.u64()?;
        let detail = r.vec16("detail", 0..=MAX_DETAIL_LEN)?;
        let detail = String::from_utf8(detail.to_vec()).map_err(|_| Malformed::InvalidUtf8)?;
        let mac = r.array()?;
        r.finish()?;
        Ok(Self { exchange, key_id, status, reason, reported_at, detail, mac })
    }

    pub(crate) fn writer(&self) -> Result<Writer> {
        let body = EXCHANGE_LEN + 4 + 1 + 2 + 8 + 2 + self.detail.len() + TAG_LEN;
        let mut w = Writer::new(MessageType::StatusReport, body);
        self.exchange.write(&mut w);
        w.u32(self.key_id).u8(self.status as u8).u16(self.reason).u64(self.reported_at);
        w.vec16("detail", self.detail.as_bytes(), MAX_DETAIL_LEN)?;
        w.reserve_trailer(TAG_LEN);
        Ok(w)
    }

    /// Encodes the report with its current `mac` field.
    pub fn encode(&self) -> Result<Vec<u8>> {
        let mut w = self.writer()?;
        w.bytes(&self.mac);
        Ok(w.finish())
    }
}
