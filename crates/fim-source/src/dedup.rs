//! The bounded cache of recently delivered record keys that drops a record
//! fetched a second time (overlapping windows, a restart).

use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use hashbrown::HashTable;
use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

/// A record's dedup key. A lowercase hyphenated UUID, the form Qualys gives
/// event ids in, is kept as its 16 bytes. Any other key is text in one
/// allocation, shared by the cache, its eviction order, the in-flight set
/// and the saved checkpoint.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum DedupKey {
    Uuid([u8; 16]),
    Text(Arc<str>),
}

impl DedupKey {
    /// Returns the key for `text`. Its `Display` form is `text` again.
    pub fn new(text: &str) -> Self {
        match Uuid::try_parse(text) {
            Ok(uuid) if uuid.hyphenated().encode_lower(&mut Uuid::encode_buffer()) == text => {
                Self::Uuid(uuid.into_bytes())
            }
            _ => Self::Text(Arc::from(text)),
        }
    }
}

impl From<&str> for DedupKey {
    fn from(text: &str) -> Self {
        Self::new(text)
    }
}

impl From<String> for DedupKey {
    fn from(text: String) -> Self {
        Self::new(&text)
    }
}

impl fmt::Display for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Uuid(bytes) => {
                let mut buffer = Uuid::encode_buffer();
                f.write_str(
                    Uuid::from_bytes(*bytes)
                        .hyphenated()
                        .encode_lower(&mut buffer),
                )
            }
            Self::Text(text) => f.write_str(text),
        }
    }
}

impl fmt::Debug for DedupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.to_string(), f)
    }
}

/// Serializes the key as its text, so checkpoints keep one format whatever
/// the key.
impl Serialize for DedupKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DedupKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct KeyVisitor;

        impl Visitor<'_> for KeyVisitor {
            type Value = DedupKey;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a dedup key string")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<DedupKey, E> {
                Ok(DedupKey::new(text))
            }
        }

        deserializer.deserialize_str(KeyVisitor)
    }
}

/// Keys seen recently, bounded by count and by age.
///
/// Entries sit in a queue in insertion order, and a hash table maps each
/// live key to its entry's sequence number (eight bytes per key). In the
/// 200,000-event benchmark a full cache of 100,000 text keys took 11 MB at
/// its peak, against 19 MB for a map of keys beside a queue of the same
/// keys. Packing UUID keys into the entries then lowered the forwarder's
/// peak RSS in that benchmark by 3 to 10 MiB (file, NATS and HTTP runs).
#[derive(Debug, Clone)]
pub struct DedupCache {
    capacity: usize,
    max_age_ms: i64,
    /// Entries oldest first; the entry at index `i` has sequence number
    /// `first_seq + i`. A key inserted again leaves its older entry behind
    /// with no key, to be dropped when it reaches the front.
    order: VecDeque<Entry>,
    first_seq: u64,
    /// Sequence numbers of the live entries, hashed by their key.
    index: HashTable<u64>,
    hasher: RandomState,
}

#[derive(Debug, Clone)]
struct Entry {
    key: Option<DedupKey>,
    /// When the key was inserted (epoch ms).
    time_ms: i64,
}

impl DedupCache {
    pub fn new(capacity: usize, max_age_ms: i64) -> Self {
        Self {
            capacity: capacity.max(1),
            max_age_ms,
            order: VecDeque::new(),
            first_seq: 0,
            index: HashTable::new(),
            hasher: RandomState::new(),
        }
    }

    pub fn contains(&self, key: &DedupKey) -> bool {
        let hash = self.hasher.hash_one(key);
        self.index
            .find(hash, |&seq| {
                key_at(&self.order, self.first_seq, seq) == Some(key)
            })
            .is_some()
    }

    pub fn insert(&mut self, key: DedupKey, now_ms: i64) {
        let hash = self.hasher.hash_one(&key);
        let seq = self.first_seq + self.order.len() as u64;
        let Self {
            order,
            first_seq,
            index,
            hasher,
            ..
        } = self;
        let first_seq = *first_seq;
        match index.find_mut(hash, |&live| key_at(order, first_seq, live) == Some(&key)) {
            Some(live) => {
                let older = std::mem::replace(live, seq);
                if let Some(entry) = offset(first_seq, older).and_then(|at| order.get_mut(at)) {
                    entry.key = None;
                }
            }
            None => {
                index.insert_unique(hash, seq, |&live| {
                    key_at(order, first_seq, live).map_or(0, |key| hasher.hash_one(key))
                });
            }
        }
        order.push_back(Entry {
            key: Some(key),
            time_ms: now_ms,
        });
        self.evict(now_ms);
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Returns the live entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = (&DedupKey, i64)> {
        self.order
            .iter()
            .filter_map(|entry| entry.key.as_ref().map(|key| (key, entry.time_ms)))
    }

    fn evict(&mut self, now_ms: i64) {
        while let Some(front) = self.order.front() {
            if let Some(key) = &front.key {
                let too_many = self.index.len() > self.capacity;
                let too_old = now_ms.saturating_sub(front.time_ms) > self.max_age_ms;
                if !(too_many || too_old) {
                    break;
                }
                let hash = self.hasher.hash_one(key);
                let seq = self.first_seq;
                if let Ok(live) = self.index.find_entry(hash, |&live| live == seq) {
                    live.remove();
                }
            }
            self.order.pop_front();
            self.first_seq += 1;
        }
    }
}

/// Returns the position in the queue of sequence number `seq`.
fn offset(first_seq: u64, seq: u64) -> Option<usize> {
    usize::try_from(seq.checked_sub(first_seq)?).ok()
}

/// Returns the key of the live entry with sequence number `seq`.
fn key_at(order: &VecDeque<Entry>, first_seq: u64, seq: u64) -> Option<&DedupKey> {
    order.get(offset(first_seq, seq)?)?.key.as_ref()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(text: &str) -> DedupKey {
        DedupKey::new(text)
    }

    /// Returns the `number`th key of a test: a UUID for even numbers, text
    /// for odd ones.
    fn mixed_key(number: u32) -> String {
        if number.is_multiple_of(2) {
            format!("{number:08x}-8a3e-5f2c-9b1d-{number:012x}")
        } else {
            format!("k{number}")
        }
    }

    #[test]
    fn lowercase_uuid_is_packed() {
        let text = "f10a73b4-0557-5676-bd26-5e376cf21fe8";
        let packed = key(text);
        assert!(matches!(packed, DedupKey::Uuid(_)));
        assert_eq!(packed.to_string(), text);
    }

    #[test]
    fn other_keys_stay_text() {
        for text in [
            "F10A73B4-0557-5676-BD26-5E376CF21FE8",
            "f10a73b40557-5676-bd26-5e376cf21fe8",
            "f10a73b405575676bd265e376cf21fe8",
            "{f10a73b4-0557-5676-bd26-5e376cf21fe8}",
            "f10a73b4-0557-5676-bd26-5e376cf21fe8@1714564800000",
            "",
        ] {
            let text_key = key(text);
            assert!(matches!(text_key, DedupKey::Text(_)), "{text}");
            assert_eq!(text_key.to_string(), text);
        }
    }

    #[test]
    fn key_serializes_as_its_text() {
        let keys = vec![key("f10a73b4-0557-5676-bd26-5e376cf21fe8"), key("b@7")];
        let text = serde_json::to_string(&keys).unwrap();
        assert_eq!(text, r#"["f10a73b4-0557-5676-bd26-5e376cf21fe8","b@7"]"#);
        let read: Vec<DedupKey> = serde_json::from_str(&text).unwrap();
        assert_eq!(read, keys);
    }

    #[test]
    fn key_is_24_bytes() {
        assert_eq!(std::mem::size_of::<DedupKey>(), 24);
        assert_eq!(std::mem::size_of::<Option<DedupKey>>(), 24);
    }

    #[test]
    fn remembers_inserted_keys() {
        let mut cache = DedupCache::new(10, 1_000);
        cache.insert("a".into(), 0);
        assert!(cache.contains(&key("a")));
        assert!(!cache.contains(&key("b")));
    }

    #[test]
    fn evicts_oldest_over_capacity() {
        let mut cache = DedupCache::new(2, 1_000_000);
        for (index, key) in ["a", "b", "c"].into_iter().enumerate() {
            cache.insert(key.into(), index as i64);
        }
        assert!(!cache.contains(&key("a")));
        assert!(cache.contains(&key("c")));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn forgets_keys_past_max_age() {
        let mut cache = DedupCache::new(10, 100);
        cache.insert("old".into(), 0);
        cache.insert("new".into(), 150);
        assert!(!cache.contains(&key("old")));
        assert!(cache.contains(&key("new")));
    }

    #[test]
    fn reinsert_keeps_one_entry() {
        let mut cache = DedupCache::new(10, 1_000);
        cache.insert("a".into(), 0);
        cache.insert("a".into(), 5);
        let entries: Vec<_> = cache.entries().collect();
        assert_eq!(entries, vec![(&DedupKey::from("a"), 5)]);
    }

    /// Compares the cache with a plain model: a map of live keys to their
    /// latest insertion number, beside a queue in insertion order. The
    /// inserts are random, repeat keys (also in the same millisecond) and
    /// meet a small capacity and a short maximum age.
    #[test]
    fn matches_a_map_and_queue_model() {
        use std::collections::HashMap;

        use rand::rngs::StdRng;
        use rand::{Rng, SeedableRng};

        let (capacity, max_age_ms) = (50, 400);
        let mut rng = StdRng::seed_from_u64(7);
        let mut cache = DedupCache::new(capacity, max_age_ms);
        let mut live: HashMap<String, usize> = HashMap::new();
        let mut queue: VecDeque<(String, i64, usize)> = VecDeque::new();
        let mut now = 0;
        for number in 0..20_000 {
            now += rng.random_range(0..5);
            let key = mixed_key(rng.random_range(0..120));
            cache.insert(key.as_str().into(), now);
            live.insert(key.clone(), number);
            queue.push_back((key, now, number));
            while let Some((key, time, number)) = queue.front() {
                let stale = live.get(key) != Some(number);
                let too_many = live.len() > capacity;
                let too_old = now - time > max_age_ms;
                if !(stale || too_many || too_old) {
                    break;
                }
                if !stale {
                    live.remove(key);
                }
                queue.pop_front();
            }

            assert_eq!(cache.len(), live.len());
            let probe = mixed_key(rng.random_range(0..120));
            assert_eq!(
                cache.contains(&DedupKey::new(&probe)),
                live.contains_key(&probe),
                "{probe}"
            );
        }
        let entries: Vec<(String, i64)> = cache
            .entries()
            .map(|(key, time)| (key.to_string(), time))
            .collect();
        let expected: Vec<(String, i64)> = queue
            .into_iter()
            .filter(|(key, _, number)| live.get(key) == Some(number))
            .map(|(key, time, _)| (key, time))
            .collect();
        assert_eq!(entries, expected);
    }

    #[test]
    fn reinsert_in_the_same_millisecond_keeps_the_key() {
        let mut cache = DedupCache::new(2, 1_000);
        cache.insert("a".into(), 0);
        cache.insert("a".into(), 0);
        cache.insert("b".into(), 1);
        assert!(cache.contains(&key("a")));
        assert!(cache.contains(&key("b")));
        cache.insert("c".into(), 2);
        assert!(!cache.contains(&key("a")));
        assert!(cache.contains(&key("b")));
        assert!(cache.contains(&key("c")));
    }

    #[test]
    fn table_stays_bounded_under_churn() {
        let mut cache = DedupCache::new(1_000, i64::MAX);
        for index in 0..200_000 {
            cache.insert(format!("key-{index}").into(), index);
        }
        assert_eq!(cache.len(), 1_000);
        assert!(cache.order.len() <= 1_001);
        assert!(
            cache.index.capacity() <= 4_096,
            "{}",
            cache.index.capacity()
        );
        assert!(cache.contains(&key("key-199999")));
        assert!(!cache.contains(&key("key-198999")));
    }
}
