//! The running forwarder: pollers → router → one bounded channel per sink →
//! sinks, with acknowledgements flowing back to the checkpoint.
//!
//! The router hands each record (an `Arc`, never copied) to every sink. A
//! record's [`AckGroup`] acknowledges it to the source once every sink has
//! acknowledged it, and the source's checkpoint only passes a record whose
//! acknowledgement arrived. Every channel is bounded, so a slow sink fills
//! its channel, then the router's, and the pollers stop calling the API.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use fim_sinks::{DeadLetter, Delivery, SinkContext, SinkHandle, SinkMetrics};
use fim_source::{AckToken, CheckpointStore, FileCheckpointStore, Polled, SourceOptions};
use tokio::sync::{mpsc, watch};

use crate::config::Config;
use crate::metrics::{Metrics, Parts};

/// Acknowledges a record to the source once every sink acknowledged it.
#[derive(Debug)]
pub struct AckGroup {
    remaining: AtomicUsize,
    token: Mutex<Option<AckToken>>,
}

impl AckGroup {
    pub fn new(sinks: usize, token: AckToken) -> Self {
        Self {
            remaining: AtomicUsize::new(sinks),
            token: Mutex::new(Some(token)),
        }
    }
}

impl fim_sinks::Acknowledge for AckGroup {
    fn ack(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(token) = self
                .token
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take()
        {
            token.ack();
        }
    }
}

/// End condition of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Poll until a shutdown signal.
    Continuous,
    /// Stop once every stream reached the source's `stop_at_ms`.
    Backfill,
}

/// Report of a finished run.
#[derive(Debug, Default)]
pub struct Summary {
    /// Records routed to the sinks.
    pub routed: u64,
    /// Whether every sink finished before the shutdown timeout.
    pub drained: bool,
}

/// Runs the forwarder until `shutdown` fires (or, in backfill mode, until
/// every stream finished). `reopen` is bumped on SIGHUP.
pub async fn run(
    config: Config,
    metrics: Arc<Metrics>,
    options: SourceOptions,
    mode: Mode,
    mut shutdown: watch::Receiver<bool>,
    reopen: watch::Receiver<u64>,
    store: Option<Arc<dyn CheckpointStore>>,
) -> anyhow::Result<Summary> {
    let store: Arc<dyn CheckpointStore> = match store {
        Some(store) => store,
        None => Arc::new(
            FileCheckpointStore::new(&config.state.dir).with_context(|| {
                format!("failed to use state.dir {}", config.state.dir.display())
            })?,
        ),
    };

    let mut senders = Vec::new();
    let mut handles: Vec<SinkHandle> = Vec::new();
    let mut sink_parts = Vec::new();
    for spec in &config.sinks {
        let sink_metrics = Arc::new(SinkMetrics::default());
        let encoder = fim_sinks::spec::encoder(spec)
            .map_err(|err| anyhow::anyhow!("sink {}: {err}", spec.name))?;
        let dead_letter_path: PathBuf = config.dead_letter_path(spec);
        let context = SinkContext {
            name: spec.name.clone(),
            encoder,
            dead_letter: Arc::new(DeadLetter::new(&spec.name, dead_letter_path)),
            metrics: sink_metrics.clone(),
            reopen: reopen.clone(),
        };
        let sink = fim_sinks::build(spec, context)
            .map_err(|err| anyhow::anyhow!("sink {}: {err}", spec.name))?;
        let (sender, handle) =
            fim_sinks::spawn(spec.name.clone(), sink, sink_metrics.clone(), spec.buffer);
        sink_parts.push((spec.name.clone(), sink_metrics, sender.downgrade()));
        senders.push(sender);
        handles.push(handle);
        tracing::info!(sink = %spec.name, kind = %spec.kind, "sink started");
    }

    let (poll_tx, poll_rx) = mpsc::channel::<Polled>(config.pipeline.buffer);
    let poll_weak = poll_tx.downgrade();
    let mut source = fim_source::start(config.source.clone(), store, poll_tx, options)
        .await
        .context("failed to start the Qualys source")?;
    metrics.attach(Parts {
        source: Some(source.monitor()),
        sinks: sink_parts,
        poll_channel: Some(poll_weak),
    });

    let routed = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let router = tokio::spawn(route(poll_rx, senders, routed.clone()));

    // Wait for the end: a signal, or every stream of a backfill finished.
    loop {
        if mode == Mode::Backfill && source.all_done() {
            break;
        }
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    tracing::info!("stopping: no more polling, draining the sinks");

    let deadline = tokio::time::Instant::now() + config.pipeline.shutdown_timeout;
    source.stop_polling().await;
    // The pollers held the only senders of the poll channel, so the router
    // drains what is left and then drops the sinks' senders.
    let mut drained = tokio::time::timeout_at(deadline, router).await.is_ok();
    for handle in handles {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        drained &= handle.flush_and_close(left).await;
    }
    source
        .save()
        .context("failed to save the checkpoint at shutdown")?;
    tracing::info!(drained, "stopped; checkpoint saved");
    Ok(Summary {
        routed: routed.load(Ordering::Relaxed),
        drained,
    })
}

/// Hands every polled record to every sink.
async fn route(
    mut input: mpsc::Receiver<Polled>,
    sinks: Vec<mpsc::Sender<Delivery>>,
    routed: Arc<std::sync::atomic::AtomicU64>,
) {
    while let Some(polled) = input.recv().await {
        let group: Arc<dyn fim_sinks::Acknowledge> =
            Arc::new(AckGroup::new(sinks.len(), polled.ack));
        for sink in &sinks {
            let delivery = Delivery {
                record: polled.record.clone(),
                ack: group.clone(),
            };
            // A sink stops only after its channel closes, which happens after
            // this loop ends. A failed send therefore means it crashed, so its
            // records stay unacknowledged and are sent after the next start.
            if sink.send(delivery).await.is_err() {
                tracing::error!(
                    event_id = polled.record.id(),
                    "a sink stopped unexpectedly; the record stays unacknowledged"
                );
            }
        }
        routed.fetch_add(1, Ordering::Relaxed);
    }
}
