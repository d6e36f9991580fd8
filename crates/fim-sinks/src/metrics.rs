//! Counters every sink keeps; the forwarder exports them to Prometheus.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Live counters of one sink.
#[derive(Debug, Default)]
pub struct SinkMetrics {
    /// Records written or sent to the destination (each attempt once).
    pub sent: AtomicU64,
    /// Records the destination confirmed (or that were dead-lettered).
    pub acknowledged: AtomicU64,
    /// Attempts repeated after a retryable failure.
    pub retried: AtomicU64,
    /// Records written to the dead-letter file.
    pub dead_lettered: AtomicU64,
    /// Encoded bytes sent, framing included.
    pub bytes: AtomicU64,
    /// Records taken from the channel and not yet acknowledged.
    pub in_flight: AtomicU64,
    /// Set while the sink cannot reach its destination; readiness is false
    /// then. Sinks without a connection (stdout, file) never set it.
    pub disconnected: AtomicBool,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinkMetricsSnapshot {
    pub sent: u64,
    pub acknowledged: u64,
    pub retried: u64,
    pub dead_lettered: u64,
    pub bytes: u64,
    pub in_flight: u64,
}

impl SinkMetrics {
    pub fn snapshot(&self) -> SinkMetricsSnapshot {
        SinkMetricsSnapshot {
            sent: self.sent.load(Ordering::Relaxed),
            acknowledged: self.acknowledged.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            dead_lettered: self.dead_lettered.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
        }
    }

    pub fn add(counter: &AtomicU64, value: u64) {
        counter.fetch_add(value, Ordering::Relaxed);
    }

    pub fn sub(counter: &AtomicU64, value: u64) {
        counter.fetch_sub(value, Ordering::Relaxed);
    }
}
