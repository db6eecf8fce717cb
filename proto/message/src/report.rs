//! Sealing and opening status reports (protocol.md §6.5).
//!
//! A report is MACed under the status key of the PSK its `key_id` names, always in
//! dedicated-PSK mode: after a migration the agent reports under its *new* key id,
//! which proves the ratchet took effect on its side.

use crate::error::Result;
use crate::message::{Exchange, MAX_DETAIL_LEN, Status, StatusReport, split_tag};
use crate::schedule::{EscapeKeys, mac, verify_mac};
use crate::secret::SecretKey;
use crate::types::{KeyId, KeyMode};

/// Seals a report under `psk` (the PSK with id `key_id`). Over-long detail text
/// is cut at a character boundary to [`MAX_DETAIL_LEN`] bytes.
/// Reason code of a `failed` report sent when the consumer migrated but one of
/// its post-migration hooks failed (protocol.md table 12).
pub const REASON_HOOK_FAILED: u16 = 0x0100;

/// Builds a status report MACed under `psk`.
pub fn seal_status(
    exchange: Exchange,
    key_id: KeyId,
    psk: &SecretKey,
    status: Status,
    reason: u16,
    reported_at: u64,
    detail: &str,
) -> Result<Vec<u8>> {
    let report = StatusReport {
        exchange,
        key_id,
        status,
        reason,
        reported_at,
        detail: truncate(detail, MAX_DETAIL_LEN).to_owned(),
        mac: [0; 32],
    };
    let keys = EscapeKeys::derive(psk, exchange.consumer, key_id, KeyMode::DedicatedPsk);
    let mut w = report.writer()?;
    let tag = mac(&keys.status_mac, &[w.so_far()]);
    w.bytes(&tag);
    Ok(w.finish())
}

/// Verifies a report already decoded with [`StatusReport::decode`], under the PSK its
/// `key_id` names.
pub fn verify_status(bytes: &[u8], report: &StatusReport, psk: &SecretKey) -> Result<()> {
    let consumer = report.exchange.consumer;
    let keys = EscapeKeys::derive(psk, consumer, report.key_id, KeyMode::DedicatedPsk);
    let (covered, tag) = split_tag(bytes);
    verify_mac(&keys.status_mac, &[covered], tag)
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::truncate;

    #[test]
    fn truncation_respects_utf8() {
        assert_eq!(truncate("abc", 2), "ab");
        assert_eq!(truncate("aé", 2), "a");
        assert_eq!(truncate("abc", 3), "abc");
    }
}
