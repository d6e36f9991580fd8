//! Helpers shared by the Kafka sink tests: building the sink from a
//! `[[sinks]]` table, counting acknowledgements, and reading a topic back
//! with an rdkafka consumer.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use fim_model::{Record, RecordKind, SharedRecord};
use fim_sinks::{
    Acknowledge, DeadLetter, Delivery, SinkContext, SinkHandle, SinkMetrics, SinkSpec, spawn,
};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::{Notify, mpsc, watch};

/// Long enough for any retry in these tests; reaching it means the sink is
/// stuck, not slow.
pub const DEADLINE: Duration = Duration::from_secs(120);

/// Counts acknowledgements and wakes waiters on each.
#[derive(Debug, Default)]
pub struct Acks {
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
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub async fn wait_for(&self, count: usize) {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let changed = self.changed.notified();
                if self.count() >= count {
                    return;
                }
                changed.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("only {} of {count} records acknowledged", self.count()));
    }
}

pub fn event(id: &str) -> SharedRecord {
    Record::from_json(
        RecordKind::Event,
        &format!(r#"{{"id":"{id}","dateTime":"2024-05-01T10:00:00.000+0000","name":"/etc/passwd","action":"Content"}}"#),
    )
    .unwrap()
    .shared()
}

pub fn ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|index| format!("{prefix}-{index:05}"))
        .collect()
}

pub struct Running {
    pub sender: mpsc::Sender<Delivery>,
    pub handle: SinkHandle,
    pub metrics: Arc<SinkMetrics>,
    pub dead_letter: PathBuf,
    _dir: tempfile::TempDir,
}

/// Builds a sink from a `[[sinks]]` table as the forwarder does.
pub fn start_sink(options: &str, buffer: usize) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("name = \"kafka\"\ntype = \"kafka\"\nencoding = \"json\"\n{options}");
    let spec = SinkSpec::from_table(0, toml::from_str(&text).unwrap()).unwrap();
    let dead_letter = dir.path().join("dead.ndjson");
    let metrics = Arc::new(SinkMetrics::default());
    let (_reopen_tx, reopen) = watch::channel(0);
    let context = SinkContext {
        name: spec.name.clone(),
        encoder: fim_sinks::spec::encoder(&spec).unwrap(),
        dead_letter: Arc::new(DeadLetter::new(&spec.name, &dead_letter)),
        metrics: metrics.clone(),
        reopen,
    };
    let sink = fim_sinks::build(&spec, context).unwrap();
    let (sender, handle) = spawn(spec.name.clone(), sink, metrics.clone(), buffer);
    Running {
        sender,
        handle,
        metrics,
        dead_letter,
        _dir: dir,
    }
}

pub async fn send_all(sender: &mpsc::Sender<Delivery>, ids: &[String], acks: &Arc<Acks>) {
    for id in ids {
        let delivery = Delivery {
            record: event(id),
            ack: acks.clone(),
        };
        sender.send(delivery).await.unwrap();
    }
}

/// One message read back.
#[derive(Debug, Clone)]
pub struct ReadBack {
    pub key: String,
    pub payload: serde_json::Value,
    pub headers: BTreeMap<String, String>,
}

/// Reads `expected` messages of `topic` (partitions `0..partitions`) from
/// the start; fails after [`DEADLINE`] with how many it found. Blocking:
/// call it once the sink is closed, or from a blocking thread.
pub fn read_topic(brokers: &str, topic: &str, partitions: i32, expected: usize) -> Vec<ReadBack> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "fim-sinks-test-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();

    let start = Instant::now();
    let mut messages = Vec::new();
    while messages.len() < expected {
        assert!(
            start.elapsed() < DEADLINE,
            "read {} of {expected} messages from {topic}",
            messages.len()
        );
        let Some(result) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = result.unwrap();
        let mut headers = BTreeMap::new();
        if let Some(list) = message.headers() {
            for header in list.iter() {
                let value = header
                    .value
                    .map(|value| String::from_utf8_lossy(value).into_owned())
                    .unwrap_or_default();
                headers.insert(header.key.to_owned(), value);
            }
        }
        messages.push(ReadBack {
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            payload: serde_json::from_slice(message.payload().unwrap_or_default()).unwrap(),
            headers,
        });
    }
    messages
}

/// Checks that every id was read back, each at least once, as its key.
pub fn assert_every_id(messages: &[ReadBack], ids: &[String]) {
    let keys: std::collections::HashSet<&str> = messages
        .iter()
        .map(|message| message.key.as_str())
        .collect();
    let missing: Vec<&String> = ids
        .iter()
        .filter(|id| !keys.contains(id.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "{} ids missing, first {:?}",
        missing.len(),
        missing.first()
    );
}
