//! What this replica wrote to the store moments ago, kept so that the next message
//! of the same exchange need not read it back (docs/performance.md).
//!
//! Only sealed values go in, exactly as stored. A hit is a hint, never the truth:
//! the store's compare-and-set on the same value decides, and a miss, a stale entry
//! or a value that does not verify falls back to reading the store. Another replica
//! or a restart therefore costs a read, never a wrong answer. Entries are taken
//! when used; when the map is full it is emptied, which only costs reads.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most entries kept: a campaign's answered-but-unfinished exchanges on one
/// replica. About 300 bytes each.
pub const CAPACITY: usize = 100_000;

/// A bounded map from consumer id to the last value written for it.
pub struct Recent<V> {
    entries: Mutex<HashMap<String, V>>,
}

impl<V> Default for Recent<V> {
    fn default() -> Self {
        Self { entries: Mutex::new(HashMap::new()) }
    }
}

impl<V> Recent<V> {
    /// Keeps `value` for `consumer`, replacing what was there.
    pub fn put(&self, consumer: &str, value: V) {
        let mut entries = self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= CAPACITY && !entries.contains_key(consumer) {
            entries.clear();
        }
        entries.insert(consumer.to_owned(), value);
    }

    /// Takes what was kept for `consumer`.
    pub fn take(&self, consumer: &str) -> Option<V> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(consumer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_taken_once_and_a_full_map_starts_over() {
        let recent = Recent::default();
        recent.put("a", 1);
        recent.put("a", 2);
        assert_eq!(recent.take("a"), Some(2), "the last value wins");
        assert_eq!(recent.take("a"), None, "taken once");
        for i in 0..CAPACITY {
            recent.put(&i.to_string(), i);
        }
        assert_eq!(recent.take("0"), Some(0), "still kept at capacity");
        recent.put("0", 0);
        recent.put("new", 7);
        assert_eq!(recent.take("1"), None, "emptied when full");
        assert_eq!(recent.take("new"), Some(7));
    }
}
