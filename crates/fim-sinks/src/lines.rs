//! Batches for sinks that write one encoded record per line (stdout,
//! file): take what the channel has ready, encode it into one buffer,
//! write it at once, then acknowledge every record in it.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::{Acknowledge, Delivery, SinkContext, SinkMetrics};

/// Records taken from the channel in one go, at most.
const MAX_BATCH: usize = 512;

/// Encoded lines waiting to be written, and the acknowledgements they owe.
#[derive(Debug, Default)]
pub struct Batch {
    pub deliveries: Vec<Delivery>,
    /// Encoded lines, each ending in `\n`.
    pub bytes: Vec<u8>,
    /// Acknowledgements of the records in `bytes`.
    pub pending: Vec<Arc<dyn Acknowledge>>,
}

impl Batch {
    /// Waits for at least one delivery, then takes whatever else is ready.
    /// Returns `false` once the channel is closed and empty.
    pub async fn fill(&mut self, input: &mut mpsc::Receiver<Delivery>) -> bool {
        self.deliveries.clear();
        self.bytes.clear();
        self.pending.clear();
        let taken = input.recv_many(&mut self.deliveries, MAX_BATCH).await;
        taken > 0
    }
}

/// Encodes every delivery of `batch` into its buffer. A record the encoder
/// rejects goes to the dead-letter file and is acknowledged right away.
pub fn encode_batch(context: &SinkContext, batch: &mut Batch) {
    let metrics = &context.metrics;
    SinkMetrics::add(&metrics.in_flight, batch.deliveries.len() as u64);
    for delivery in batch.deliveries.drain(..) {
        let start = batch.bytes.len();
        match context.encoder.encode(&delivery.record, &mut batch.bytes) {
            Ok(()) => {
                batch.bytes.push(b'\n');
                batch.pending.push(delivery.ack);
            }
            Err(err) => {
                batch.bytes.truncate(start);
                dead_letter(context, &delivery, &err.to_string());
            }
        }
    }
}

/// Writes `delivery` to the dead-letter file and acknowledges it. When even
/// the dead-letter file cannot be written the record is not acknowledged,
/// so the checkpoint stops before it and a restart sends it again.
pub fn dead_letter(context: &SinkContext, delivery: &Delivery, reason: &str) {
    let metrics = &context.metrics;
    SinkMetrics::sub(&metrics.in_flight, 1);
    match context.dead_letter.write(&delivery.record, reason) {
        Ok(()) => {
            SinkMetrics::add(&metrics.dead_lettered, 1);
            SinkMetrics::add(&metrics.acknowledged, 1);
            delivery.ack.ack();
        }
        Err(err) => tracing::error!(
            sink = %context.name,
            event_id = delivery.record.id(),
            cause = %err,
            path = %context.dead_letter.path().display(),
            "failed to write the dead-letter file; the record stays unacknowledged"
        ),
    }
}

impl Batch {
    /// Acknowledges every written record and counts it.
    pub fn acknowledge(&mut self, context: &SinkContext) {
        let count = self.pending.len() as u64;
        let metrics = &context.metrics;
        SinkMetrics::add(&metrics.sent, count);
        SinkMetrics::add(&metrics.bytes, self.bytes.len() as u64);
        for ack in self.pending.drain(..) {
            ack.ack();
        }
        SinkMetrics::add(&metrics.acknowledged, count);
        SinkMetrics::sub(&metrics.in_flight, count);
    }
}
