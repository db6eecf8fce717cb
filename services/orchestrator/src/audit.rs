//! The audit log's hash chain.
//!
//! Each entry's hash covers the previous entry's hash and every field of the
//! entry, length-prefixed, so that changing, removing, inserting or reordering any
//! entry breaks every hash after it. The store appends under a lock and the tables
//! refuse UPDATE and DELETE; [`verify_chain`] is what an auditor runs.

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::store::{AuditEntry, Timestamp};

/// The `prev_hash` of the first entry.
pub const GENESIS: [u8; 32] = [0; 32];

/// SHA-256 over `"pqescape/v1 audit" || prev || seq || at || actor || action || target || detail`,
/// integers big-endian, strings prefixed by their 4-byte length.
pub fn entry_hash(
    prev: &[u8],
    seq: u64,
    at: Timestamp,
    actor: &str,
    action: &str,
    target: &str,
    detail: &str,
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"pqescape/v1 audit");
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(at.to_be_bytes());
    for field in [actor, action, target, detail] {
        h.update(u32::try_from(field.len()).unwrap_or(u32::MAX).to_be_bytes());
        h.update(field.as_bytes());
    }
    h.finalize().into()
}

/// Outcome of a chain verification.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Whether every entry checked out.
    pub valid: bool,
    /// Entries examined.
    pub entries: u64,
    /// The first entry that does not, if any.
    pub first_invalid_seq: Option<u64>,
}

/// Checks consecutive entries starting from the first (seq 1) or from `prev`.
pub fn verify_chain<'a>(
    entries: impl IntoIterator<Item = &'a AuditEntry>,
    start: Checkpoint,
) -> (ChainReport, Checkpoint) {
    let mut at = start;
    let mut count = 0;
    for e in entries {
        count += 1;
        let expected = entry_hash(&at.hash, e.seq, e.at, &e.actor, &e.action, &e.target, &e.detail);
        let linked = e.seq == at.seq + 1 && e.prev_hash == at.hash;
        if !linked || e.hash != expected {
            let report =
                ChainReport { valid: false, entries: count, first_invalid_seq: Some(e.seq) };
            return (report, at);
        }
        at = Checkpoint { seq: e.seq, hash: expected };
    }
    (ChainReport { valid: true, entries: count, first_invalid_seq: None }, at)
}

/// Where a verification stands: the last good entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Its sequence number (0 before the first).
    pub seq: u64,
    /// Its hash.
    pub hash: [u8; 32],
}

impl Checkpoint {
    /// Before the first entry.
    pub const START: Checkpoint = Checkpoint { seq: 0, hash: GENESIS };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(n: u64) -> Vec<AuditEntry> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let hash = entry_hash(&prev, seq, 100, "admin", "consumer.register", "c1", "{}");
                let e = AuditEntry {
                    seq,
                    at: 100,
                    actor: "admin".into(),
                    action: "consumer.register".into(),
                    target: "c1".into(),
                    detail: "{}".into(),
                    prev_hash: prev.to_vec(),
                    hash: hash.to_vec(),
                };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn an_intact_chain_verifies() {
        let (r, end) = verify_chain(&chain(5), Checkpoint::START);
        assert!(r.valid);
        assert_eq!((r.entries, end.seq), (5, 5));
    }

    #[test]
    fn edits_removals_and_reorderings_are_found() {
        let mut edited = chain(5);
        edited[2].detail = "{\"x\":1}".into();
        assert_eq!(verify_chain(&edited, Checkpoint::START).0.first_invalid_seq, Some(3));

        let mut removed = chain(5);
        removed.remove(1);
        assert_eq!(verify_chain(&removed, Checkpoint::START).0.first_invalid_seq, Some(3));

        let mut swapped = chain(5);
        swapped.swap(3, 4);
        assert_eq!(verify_chain(&swapped, Checkpoint::START).0.first_invalid_seq, Some(5));
    }
}
