//! Helpers shared by the sink benchmarks: records with fresh ids, a sink
//! built from a `[[sinks]]` table, and a timed run that waits for every
//! acknowledgement.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fim_model::{Record, RecordKind, SharedRecord};
use fim_sinks::{Acknowledge, DeadLetter, Delivery, SinkContext, SinkMetrics, SinkSpec, spawn};
use tokio::sync::{Notify, mpsc, watch};

pub const BATCH: usize = 1_000;

#[derive(Debug, Default)]
struct Acks {
    count: AtomicUsize,
    changed: Notify,
}

impl Acknowledge for Acks {
    fn ack(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

impl Acks {
    async fn wait_for(&self, count: usize) {
        loop {
            let changed = self.changed.notified();
            if self.count.load(Ordering::SeqCst) >= count {
                return;
            }
            changed.await;
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Returns `count` event records with ids never used before in this run.
pub fn records(count: usize) -> Vec<SharedRecord> {
    let run = std::process::id();
    (0..count)
        .map(|_| {
            let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
            let raw = format!(
                r#"{{"id":"bench-{run}-{id}","dateTime":"2024-05-01T10:00:00.000+0000","processedTime":"2024-05-01T10:00:05.000+0000","action":"Content","name":"/etc/ssh/sshd_config","fullPath":"/etc/ssh/sshd_config","severity":3,"platform":"LINUX","asset":{{"agentId":"6f2a3c1e-0000-4000-8000-000000000001","hostName":"web-01","interfaces":[{{"address":"10.0.0.5"}}]}},"actor":{{"userName":"root","process":"vim","processID":4242}}}}"#
            );
            Record::from_json(RecordKind::Event, &raw)
                .expect("bench record parses")
                .shared()
        })
        .collect()
}

/// A running sink; clones share it.
#[derive(Clone)]
pub struct Running {
    sender: mpsc::Sender<Delivery>,
    acks: Arc<Acks>,
    /// Records sent so far, so each run waits for its own.
    sent: Arc<AtomicUsize>,
    _dir: Arc<tempfile::TempDir>,
}

pub fn start(kind: &str, options: &str) -> Running {
    let dir = tempfile::tempdir().expect("temporary directory");
    let text = format!("name = \"bench\"\ntype = \"{kind}\"\nencoding = \"ecs\"\n{options}");
    let spec = SinkSpec::from_table(0, toml::from_str(&text).expect("bench table"))
        .expect("bench sink spec");
    let metrics = Arc::new(SinkMetrics::default());
    let (_reopen_tx, reopen) = watch::channel(0);
    let context = SinkContext {
        name: spec.name.clone(),
        encoder: fim_sinks::spec::encoder(&spec).expect("encoder"),
        dead_letter: Arc::new(DeadLetter::new(&spec.name, dir.path().join("dead.ndjson"))),
        metrics: metrics.clone(),
        reopen,
    };
    let sink = fim_sinks::build(&spec, context).expect("sink builds");
    let (sender, _handle) = spawn(spec.name.clone(), sink, metrics, 2 * BATCH);
    Running {
        sender,
        acks: Arc::new(Acks::default()),
        sent: Arc::new(AtomicUsize::new(0)),
        _dir: Arc::new(dir),
    }
}

/// Sends `iterations` batches and returns the time until the last record
/// was acknowledged.
pub async fn run(running: Running, iterations: u64) -> Duration {
    let batches: Vec<Vec<SharedRecord>> = (0..iterations).map(|_| records(BATCH)).collect();
    let start = Instant::now();
    for batch in batches {
        for record in batch {
            let delivery = Delivery {
                record,
                ack: running.acks.clone(),
            };
            running
                .sender
                .send(delivery)
                .await
                .expect("sink is running");
        }
    }
    let sent = running
        .sent
        .fetch_add(BATCH * iterations as usize, Ordering::SeqCst)
        + BATCH * iterations as usize;
    running.acks.wait_for(sent).await;
    start.elapsed()
}
