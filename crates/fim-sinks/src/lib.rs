//! `fim-sinks`: the contract every destination implements, and the sinks.
//!
//! A sink receives [`Delivery`] values on a bounded channel: a record shared
//! with every other sink (`Arc`, never copied) and the [`Acknowledge`] hook
//! that the sink calls once the destination has the record. It encodes each
//! record with the encoder its configuration names, retries what can be
//! retried for as long as the process runs (so its channel fills and the
//! poller pauses), and writes what the destination rejects for good to its
//! dead-letter file before acknowledging it.
//!
//! Each sink lives in its own folder with the same rooms: `config.rs` (the
//! user's options) and `sink.rs` (the loop), plus tests.

pub mod dead_letter;
pub mod file;
pub mod http;
pub mod kafka;
pub mod lines;
pub mod metrics;
pub mod nats;
pub mod retry;
pub mod spec;
pub mod stdout;
pub mod syslog;
pub mod template;

use std::sync::Arc;
use std::time::Duration;

use fim_model::SharedRecord;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

pub use dead_letter::DeadLetter;
pub use metrics::{SinkMetrics, SinkMetricsSnapshot};
pub use retry::Backoff;
pub use spec::{DEFAULT_BUFFER, SinkBuildError, SinkSpec, build};

/// Called once the destination has a record (or the record was
/// dead-lettered). The pipeline counts acknowledgements from every sink
/// before the source's checkpoint may pass the record.
pub trait Acknowledge: Send + Sync + std::fmt::Debug {
    fn ack(&self);
}

/// One record handed to one sink.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub record: SharedRecord,
    pub ack: Arc<dyn Acknowledge>,
}

/// Shared parts every sink receives besides its own options.
#[derive(Debug, Clone)]
pub struct SinkContext {
    pub name: String,
    pub encoder: Arc<dyn fim_transform::Encoder>,
    pub dead_letter: Arc<DeadLetter>,
    pub metrics: Arc<SinkMetrics>,
    /// Changes when the files should be reopened (SIGHUP, log rotation).
    pub reopen: watch::Receiver<u64>,
}

/// A destination's driver.
pub trait Sink: Send + std::fmt::Debug {
    /// Consumes deliveries until `input` closes, then flushes and returns.
    fn run(
        self: Box<Self>,
        input: mpsc::Receiver<Delivery>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
}

/// A running sink.
#[derive(Debug)]
pub struct SinkHandle {
    pub name: String,
    pub metrics: Arc<SinkMetrics>,
    task: JoinHandle<()>,
}

/// Starts `sink` on a channel of `capacity` deliveries; returns the sender
/// the router feeds and the handle that waits for the sink at shutdown.
pub fn spawn(
    name: String,
    sink: Box<dyn Sink>,
    metrics: Arc<SinkMetrics>,
    capacity: usize,
) -> (mpsc::Sender<Delivery>, SinkHandle) {
    let (sender, receiver) = mpsc::channel(capacity.max(1));
    let task = tokio::spawn(sink.run(receiver));
    (
        sender,
        SinkHandle {
            name,
            metrics,
            task,
        },
    )
}

impl SinkHandle {
    /// Waits until the sink has written and acknowledged what it received,
    /// once every sender of its channel is dropped. Returns `false` when
    /// `deadline` passes first; the sink is then abandoned and what it had
    /// not acknowledged is sent again after the next start.
    pub async fn flush_and_close(self, deadline: Duration) -> bool {
        let mut task = self.task;
        match tokio::time::timeout(deadline, &mut task).await {
            Ok(_) => true,
            Err(_) => {
                task.abort();
                tracing::warn!(sink = %self.name, "sink did not finish before the shutdown deadline");
                false
            }
        }
    }
}
