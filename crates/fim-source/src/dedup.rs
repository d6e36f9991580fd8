//! The bounded cache of recently delivered record keys that drops a record
//! fetched a second time (overlapping windows, a restart).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

/// A record's dedup key. One allocation per key is shared by the cache, its
/// eviction order, the in-flight set and the saved checkpoint.
pub type DedupKey = Arc<str>;

/// Keys seen recently, bounded by count and by age.
#[derive(Debug, Clone)]
pub struct DedupCache {
    capacity: usize,
    max_age_ms: i64,
    /// Key to the time (epoch ms) it was last inserted.
    seen: HashMap<DedupKey, i64>,
    /// Insertion order, oldest first; an entry whose time no longer matches
    /// `seen` was re-inserted later and is skipped on eviction.
    order: VecDeque<(DedupKey, i64)>,
}

impl DedupCache {
    pub fn new(capacity: usize, max_age_ms: i64) -> Self {
        Self {
            capacity: capacity.max(1),
            max_age_ms,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    pub fn contains(&self, key: &str) -> bool {
        self.seen.contains_key(key)
    }

    pub fn insert(&mut self, key: DedupKey, now_ms: i64) {
        self.seen.insert(key.clone(), now_ms);
        self.order.push_back((key, now_ms));
        self.evict(now_ms);
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// Returns the live entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (&DedupKey, i64)> {
        self.order
            .iter()
            .filter(|(key, time)| self.seen.get(key) == Some(time))
            .map(|(key, time)| (key, *time))
    }

    fn evict(&mut self, now_ms: i64) {
        while let Some((key, time)) = self.order.front() {
            let stale = self.seen.get(key) != Some(time);
            let too_many = self.seen.len() > self.capacity;
            let too_old = now_ms.saturating_sub(*time) > self.max_age_ms;
            if !(stale || too_many || too_old) {
                break;
            }
            if !stale {
                self.seen.remove(key);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_inserted_keys() {
        let mut cache = DedupCache::new(10, 1_000);
        cache.insert("a".into(), 0);
        assert!(cache.contains("a"));
        assert!(!cache.contains("b"));
    }

    #[test]
    fn evicts_oldest_over_capacity() {
        let mut cache = DedupCache::new(2, 1_000_000);
        for (index, key) in ["a", "b", "c"].into_iter().enumerate() {
            cache.insert(key.into(), index as i64);
        }
        assert!(!cache.contains("a"));
        assert!(cache.contains("c"));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn forgets_keys_past_max_age() {
        let mut cache = DedupCache::new(10, 100);
        cache.insert("old".into(), 0);
        cache.insert("new".into(), 150);
        assert!(!cache.contains("old"));
        assert!(cache.contains("new"));
    }

    #[test]
    fn reinsert_keeps_one_entry() {
        let mut cache = DedupCache::new(10, 1_000);
        cache.insert("a".into(), 0);
        cache.insert("a".into(), 5);
        let entries: Vec<_> = cache.entries().collect();
        assert_eq!(entries, vec![(&DedupKey::from("a"), 5)]);
    }
}
