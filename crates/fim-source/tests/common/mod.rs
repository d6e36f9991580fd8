//! Helpers for the poller tests: a simulator on a free loopback port, a
//! source pointed at it, and a consumer that acknowledges what it receives.

#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fim_model::{ApiVersion, RecordKind};
use fim_sim::{RateLimit, RequestLogEntry, SimConfig, SimHandle, Simulator, Stream};
use fim_source::{
    CheckpointStore, FileCheckpointStore, Polled, Secret, SourceConfig, SourceHandle,
    SourceOptions, StartFrom,
};
use tokio::sync::mpsc;

pub const USERNAME: &str = "poller";
pub const PASSWORD: &str = "correct-horse-battery";

pub fn sim_config(backlog: usize) -> SimConfig {
    SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        username: USERNAME.to_owned(),
        password: PASSWORD.to_owned(),
        seed: 7,
        backlog,
        rate: 0.0,
        rate_limit: RateLimit::NONE,
        concurrency_limit: 0,
        ..SimConfig::default()
    }
}

pub async fn start_sim(config: SimConfig) -> SimHandle {
    Simulator::start(config).await.expect("simulator starts")
}

/// A source for `sim` on `version` with fast polling and no lag.
pub fn source_config(sim: &SimHandle, version: ApiVersion, streams: &[RecordKind]) -> SourceConfig {
    let mut config = SourceConfig::new(sim.base_url(), USERNAME, Secret::new(PASSWORD.to_owned()));
    config.api_version = version;
    config.streams = streams.to_vec();
    config.poll_interval = Duration::from_millis(100);
    config.lag = Duration::ZERO;
    config.start_from = StartFrom::LookBack(Duration::from_secs(30 * 86_400));
    config.rate_limit.calls = 1_000_000;
    config.rate_limit.burst = 1_000_000;
    config.rate_limit.concurrency = 4;
    config.max_backoff = Duration::from_millis(200);
    config
}

/// What a consumer received, by stream.
#[derive(Debug, Default)]
pub struct Received {
    pub ids: HashMap<RecordKind, Vec<String>>,
    pub records: HashMap<RecordKind, Vec<fim_model::SharedRecord>>,
}

impl Received {
    pub fn ids(&self, kind: RecordKind) -> Vec<String> {
        self.ids.get(&kind).cloned().unwrap_or_default()
    }

    pub fn total(&self) -> usize {
        self.ids.values().map(Vec::len).sum()
    }
}

/// A running source with a consumer that acknowledges every record.
pub struct Running {
    pub handle: SourceHandle,
    pub received: Arc<Mutex<Received>>,
    consumer: tokio::task::JoinHandle<()>,
}

impl Running {
    pub fn snapshot_ids(&self, kind: RecordKind) -> Vec<String> {
        self.received.lock().unwrap().ids(kind)
    }

    /// Waits until `kind` has received at least `count` records.
    pub async fn wait_for(&self, kind: RecordKind, count: usize, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let have = self.snapshot_ids(kind).len();
            if have >= count {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{kind}: only {have} of {count} records after {limit:?}; status {:?}",
                self.handle.status(kind)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn stop_consumer(&self) {
        self.consumer.abort();
    }
}

pub async fn run_source(
    config: SourceConfig,
    store: Arc<dyn CheckpointStore>,
    capacity: usize,
) -> Running {
    let (sender, mut receiver) = mpsc::channel::<Polled>(capacity);
    let options = SourceOptions {
        checkpoint_interval: None,
        ..SourceOptions::default()
    };
    let handle = fim_source::start(config, store, sender, options)
        .await
        .expect("source starts");
    let received = Arc::new(Mutex::new(Received::default()));
    let sink = received.clone();
    let consumer = tokio::spawn(async move {
        while let Some(polled) = receiver.recv().await {
            let kind = polled.record.kind();
            {
                let mut received = sink.lock().unwrap();
                received
                    .ids
                    .entry(kind)
                    .or_default()
                    .push(polled.record.id().to_owned());
                received
                    .records
                    .entry(kind)
                    .or_default()
                    .push(polled.record.clone());
            }
            polled.ack.ack();
        }
    });
    Running {
        handle,
        received,
        consumer,
    }
}

pub fn temp_store() -> (tempfile::TempDir, Arc<dyn CheckpointStore>) {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn CheckpointStore> = Arc::new(FileCheckpointStore::new(dir.path()).unwrap());
    (dir, store)
}

pub fn stream_of(kind: RecordKind) -> Stream {
    match kind {
        RecordKind::Event => Stream::Events,
        RecordKind::IgnoredEvent => Stream::IgnoredEvents,
        RecordKind::Incident => Stream::Incidents,
        RecordKind::IncidentEvent => Stream::IncidentEvents,
    }
}

/// Asserts every id appears exactly once and the set equals `expected`.
pub fn assert_exactly_once(kind: RecordKind, received: &[String], expected: &[String]) {
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in received {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let repeated: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).take(5).collect();
    assert!(repeated.is_empty(), "{kind}: repeated ids {repeated:?}");
    let expected_set: std::collections::HashSet<&str> =
        expected.iter().map(String::as_str).collect();
    let missing: Vec<_> = expected_set
        .iter()
        .filter(|id| !counts.contains_key(**id))
        .take(5)
        .collect();
    assert!(
        missing.is_empty(),
        "{kind}: {} missing, e.g. {missing:?}",
        expected_set.len() - counts.len().min(expected_set.len())
    );
    let unexpected: Vec<_> = counts
        .keys()
        .filter(|id| !expected_set.contains(**id))
        .take(5)
        .collect();
    assert!(
        unexpected.is_empty(),
        "{kind}: unexpected ids {unexpected:?}"
    );
}

pub fn search_calls(log: &[RequestLogEntry]) -> Vec<&RequestLogEntry> {
    log.iter()
        .filter(|entry| entry.path.contains("/fim/") && !entry.path.ends_with("/count"))
        .collect()
}

pub fn count_calls(log: &[RequestLogEntry]) -> Vec<&RequestLogEntry> {
    log.iter()
        .filter(|entry| entry.path.ends_with("/count"))
        .collect()
}
