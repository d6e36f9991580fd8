//! File sink against a real file in a temporary directory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use fim_model::{Record, RecordKind};
use fim_transform::{EncoderConfig, Encoding};
use tokio::sync::watch;

use super::*;
use crate::{Acknowledge, DeadLetter, Delivery, SinkContext, SinkMetrics, spawn};

#[derive(Debug, Default)]
struct Counter(AtomicUsize);

impl Acknowledge for Counter {
    fn ack(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn context(dir: &std::path::Path, reopen: watch::Receiver<u64>) -> SinkContext {
    SinkContext {
        name: "archive".to_owned(),
        encoder: Arc::from(fim_transform::build(&EncoderConfig::new(Encoding::Json)).unwrap()),
        dead_letter: Arc::new(DeadLetter::new("archive", dir.join("dead.ndjson"))),
        metrics: Arc::new(SinkMetrics::default()),
        reopen,
    }
}

fn record(id: &str) -> fim_model::SharedRecord {
    Record::from_json(
        RecordKind::Event,
        &format!(r#"{{"id":"{id}","name":"line\nbreak"}}"#),
    )
    .unwrap()
    .shared()
}

#[tokio::test]
async fn writes_one_line_per_record_and_acks() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/events.ndjson");
    let (_reopen_tx, reopen) = watch::channel(0);
    let context = context(dir.path(), reopen);
    let metrics = context.metrics.clone();
    let sink = FileSink::new(
        FileConfig {
            path: path.clone(),
            fsync: true,
        },
        context,
    );
    let (sender, handle) = spawn("archive".to_owned(), Box::new(sink), metrics.clone(), 16);

    let acks = Arc::new(Counter::default());
    for index in 0..100 {
        let delivery = Delivery {
            record: record(&format!("e{index}")),
            ack: acks.clone(),
        };
        sender.send(delivery).await.unwrap();
    }
    drop(sender);
    assert!(handle.flush_and_close(Duration::from_secs(10)).await);

    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 100);
    let first: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(first["id"], "e0");
    assert_eq!(acks.0.load(Ordering::SeqCst), 100);
    let snapshot = metrics.snapshot();
    assert_eq!(snapshot.acknowledged, 100);
    assert_eq!(snapshot.in_flight, 0);
}

#[tokio::test]
async fn reopen_follows_a_rotated_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.ndjson");
    let rotated = dir.path().join("events.ndjson.1");
    let (reopen_tx, reopen) = watch::channel(0);
    let context = context(dir.path(), reopen);
    let metrics = context.metrics.clone();
    let sink = FileSink::new(
        FileConfig {
            path: path.clone(),
            fsync: false,
        },
        context,
    );
    let (sender, handle) = spawn("archive".to_owned(), Box::new(sink), metrics.clone(), 16);
    let acks = Arc::new(Counter::default());

    sender
        .send(Delivery {
            record: record("before"),
            ack: acks.clone(),
        })
        .await
        .unwrap();
    while acks.0.load(Ordering::SeqCst) < 1 {
        tokio::task::yield_now().await;
    }
    std::fs::rename(&path, &rotated).unwrap();
    reopen_tx.send(1).unwrap();
    sender
        .send(Delivery {
            record: record("after"),
            ack: acks.clone(),
        })
        .await
        .unwrap();
    drop(sender);
    assert!(handle.flush_and_close(Duration::from_secs(10)).await);

    assert!(
        std::fs::read_to_string(&rotated)
            .unwrap()
            .contains("before")
    );
    let current = std::fs::read_to_string(&path).unwrap();
    assert!(current.contains("after"));
    assert!(!current.contains("before"));
}
