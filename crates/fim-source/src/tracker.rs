//! Acknowledgement tracking for one stream: records are emitted in order,
//! acknowledged in any order, and a lane's committed cursor moves only over
//! a prefix of emitted records that are all acknowledged.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::checkpoint::{Cursor, StreamState};
use crate::dedup::{DedupCache, DedupKey};

/// A position a record or marker moves its lane's cursor to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Point {
    pub time_ms: i64,
    pub id: String,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    lane: usize,
    point: Option<Point>,
    /// Dedup key of an emitted record; `None` for markers.
    key: Option<DedupKey>,
    acked: bool,
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    /// Emitted entries not yet passed by every lane's cursor, in order.
    queue: VecDeque<Entry>,
    committed: Vec<Cursor>,
    dedup: DedupCache,
    /// Dedup keys emitted and not yet acknowledged, with their count.
    /// They stay out of saved state, so a crash re-sends them.
    in_flight: HashMap<DedupKey, usize>,
}

/// Tracks one stream; shared by its poller and every [`AckToken`].
#[derive(Debug)]
pub struct StreamTracker {
    state: Mutex<State>,
    /// Records emitted so far.
    emitted: AtomicU64,
    /// Records dropped because they were delivered before.
    duplicates: AtomicU64,
}

/// Acknowledges one emitted record once the destination has it.
#[derive(Debug)]
pub struct AckToken {
    tracker: Arc<StreamTracker>,
    seq: u64,
}

impl AckToken {
    /// Marks the record delivered. Dropping the token without calling this
    /// leaves the record unacknowledged, so the checkpoint stops before it.
    pub fn ack(self) {
        self.tracker.ack(self.seq);
    }

    pub fn seq(&self) -> u64 {
        self.seq
    }
}

impl StreamTracker {
    /// Creates a tracker whose lanes start at `committed`.
    pub fn new(committed: Vec<Cursor>, dedup: DedupCache) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(State {
                next_seq: 0,
                queue: VecDeque::new(),
                committed,
                dedup,
                in_flight: HashMap::new(),
            }),
            emitted: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
        })
    }

    /// Counts a record dropped as a duplicate.
    pub fn note_duplicate(&self) {
        self.duplicates.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns how many records were emitted and how many dropped as
    /// duplicates since start.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.emitted.load(Ordering::Relaxed),
            self.duplicates.load(Ordering::Relaxed),
        )
    }

    /// Tells whether a record with this dedup key was already delivered or
    /// is on its way.
    pub fn is_duplicate(&self, key: &DedupKey) -> bool {
        let state = self.lock();
        state.dedup.contains(key) || state.in_flight.contains_key(key)
    }

    /// Registers an emitted record; returns the token that acknowledges it.
    pub fn emit(
        self: &Arc<Self>,
        lane: usize,
        point: Option<Point>,
        key: DedupKey,
        now_ms: i64,
    ) -> AckToken {
        self.emitted.fetch_add(1, Ordering::Relaxed);
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        *state.in_flight.entry(key.clone()).or_default() += 1;
        state.dedup.insert(key.clone(), now_ms);
        state.queue.push_back(Entry {
            seq,
            lane,
            point,
            key: Some(key),
            acked: false,
        });
        AckToken {
            tracker: self.clone(),
            seq,
        }
    }

    /// Registers a position with nothing to deliver (a duplicate skipped, an
    /// incident whose events are all emitted): the lane moves past it once
    /// everything before it is acknowledged.
    pub fn mark(&self, lane: usize, point: Point) {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        state.queue.push_back(Entry {
            seq,
            lane,
            point: Some(point),
            key: None,
            acked: true,
        });
        state.advance();
    }

    fn ack(&self, seq: u64) {
        let mut state = self.lock();
        let Some(front) = state.queue.front().map(|entry| entry.seq) else {
            return;
        };
        let Some(index) = seq
            .checked_sub(front)
            .and_then(|offset| usize::try_from(offset).ok())
        else {
            return;
        };
        let Some(entry) = state.queue.get_mut(index) else {
            return;
        };
        if entry.acked {
            return;
        }
        entry.acked = true;
        if let Some(key) = entry.key.clone()
            && let Some(count) = state.in_flight.get_mut(&key)
        {
            *count -= 1;
            if *count == 0 {
                state.in_flight.remove(&key);
            }
        }
        state.advance();
    }

    /// Returns the committed cursor of each lane.
    pub fn committed(&self) -> Vec<Cursor> {
        self.lock().committed.clone()
    }

    /// Records emitted and not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.lock()
            .queue
            .iter()
            .filter(|entry| !entry.acked)
            .count()
    }

    /// Returns what a checkpoint saves: committed cursors (named by
    /// `lane_names`) and the acknowledged dedup keys.
    pub fn snapshot(&self, lane_names: &[&str]) -> StreamState {
        let state = self.lock();
        let lanes = lane_names
            .iter()
            .zip(&state.committed)
            .map(|(name, cursor)| ((*name).to_owned(), cursor.clone()))
            .collect();
        let mut dedup = Vec::with_capacity(state.dedup.len());
        dedup.extend(
            state
                .dedup
                .entries()
                .filter(|(key, _)| !state.in_flight.contains_key(*key))
                .map(|(key, time)| (key.clone(), time)),
        );
        StreamState { lanes, dedup }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn advance(&mut self) {
        while self.queue.front().is_some_and(|entry| entry.acked) {
            let Some(entry) = self.queue.pop_front() else {
                break;
            };
            if let (Some(point), Some(cursor)) = (entry.point, self.committed.get_mut(entry.lane)) {
                cursor.advance(point.time_ms, &point.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> Arc<StreamTracker> {
        StreamTracker::new(vec![Cursor::at(0)], DedupCache::new(100, 1_000_000))
    }

    fn point(time_ms: i64, id: &str) -> Option<Point> {
        Some(Point {
            time_ms,
            id: id.to_owned(),
        })
    }

    #[test]
    fn cursor_waits_for_earlier_acks() {
        let tracker = tracker();
        let first = tracker.emit(0, point(10, "a"), "a".into(), 0);
        let second = tracker.emit(0, point(11, "b"), "b".into(), 0);
        second.ack();
        assert_eq!(tracker.committed()[0], Cursor::at(0));
        first.ack();
        assert_eq!(
            tracker.committed()[0],
            Cursor {
                time_ms: 11,
                ids: vec!["b".into()]
            }
        );
    }

    #[test]
    fn same_millisecond_ids_accumulate() {
        let tracker = tracker();
        tracker.emit(0, point(10, "a"), "a".into(), 0).ack();
        tracker.emit(0, point(10, "b"), "b".into(), 0).ack();
        assert_eq!(
            tracker.committed()[0],
            Cursor {
                time_ms: 10,
                ids: vec!["a".into(), "b".into()]
            }
        );
    }

    #[test]
    fn in_flight_keys_stay_out_of_snapshot() {
        let tracker = tracker();
        tracker.emit(0, point(10, "a"), "a".into(), 0).ack();
        let _pending = tracker.emit(0, point(11, "b"), "b".into(), 0);
        let snapshot = tracker.snapshot(&["processedTime"]);
        let keys: Vec<String> = snapshot
            .dedup
            .iter()
            .map(|(key, _)| key.to_string())
            .collect();
        assert_eq!(keys, vec!["a"]);
    }

    #[test]
    fn in_flight_key_counts_as_duplicate() {
        let tracker = tracker();
        let _pending = tracker.emit(0, point(10, "a"), "a".into(), 0);
        assert!(tracker.is_duplicate(&"a".into()));
    }

    #[test]
    fn marker_moves_cursor_after_earlier_acks() {
        let tracker = tracker();
        let event = tracker.emit(0, None, "e1".into(), 0);
        tracker.mark(
            0,
            Point {
                time_ms: 20,
                id: "incident".into(),
            },
        );
        assert_eq!(tracker.committed()[0], Cursor::at(0));
        event.ack();
        assert_eq!(
            tracker.committed()[0],
            Cursor {
                time_ms: 20,
                ids: vec!["incident".into()]
            }
        );
    }

    #[test]
    fn dropped_token_holds_the_cursor() {
        let tracker = tracker();
        drop(tracker.emit(0, point(10, "a"), "a".into(), 0));
        tracker.emit(0, point(11, "b"), "b".into(), 0).ack();
        assert_eq!(tracker.committed()[0], Cursor::at(0));
        assert_eq!(tracker.unacknowledged(), 1);
    }
}
