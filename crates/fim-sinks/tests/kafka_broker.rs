//! The Kafka sink against a real Kafka-protocol broker: tansu, started by
//! each test on a free loopback port with in-memory storage.
//! `scripts/test.sh` installs tansu into `~/.cargo/bin` when it is missing;
//! set `TANSU` to use another binary.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kafka_common;

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_common::*;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

/// A tansu broker process on a free loopback port.
struct Tansu {
    brokers: String,
    child: Child,
}

impl Tansu {
    fn start() -> Self {
        let binary = tansu_binary();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &url,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "failed to start {}: {err}; run scripts/test.sh, which installs tansu",
                    binary.display()
                )
            });
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "tansu did not listen on 127.0.0.1:{port} within 30 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Self {
            brokers: format!("127.0.0.1:{port}"),
            child,
        }
    }

    /// Creates `topic` with the Kafka admin API: tansu does not create
    /// topics on first use.
    async fn create_topic(&self, topic: &str, partitions: i32) {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .create()
            .unwrap();
        let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        let results = admin.create_topics([&new_topic], &options).await.unwrap();
        for result in results {
            result.unwrap();
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tansu_binary() -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let candidates = std::env::var_os("TANSU")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            home.join(".cargo/bin/tansu"),
            PathBuf::from("/usr/local/bin/tansu"),
        ]);
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("tansu not found (set TANSU or run scripts/test.sh, which installs it)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_gets_every_id() {
    let tansu = Tansu::start();
    tansu.create_topic("qualys.fim.events", 3).await;
    let options = format!(
        "brokers = [\"{}\"]\ntopic = \"qualys.fim.{{stream}}\"\n[librdkafka]\n\"compression.type\" = \"zstd\"\n",
        tansu.brokers
    );
    let running = start_sink(&options, 200);
    let acks = Arc::new(Acks::default());
    let ids = ids("tansu", 2_000);

    send_all(&running.sender, &ids, &acks).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    assert_eq!(acks.count(), ids.len());
    let metrics = running.metrics.snapshot();
    assert_eq!(metrics.acknowledged, 2_000);
    assert_eq!(metrics.in_flight, 0);
    assert_eq!(metrics.dead_lettered, 0);
    let brokers = tansu.brokers.clone();
    let messages =
        tokio::task::spawn_blocking(move || read_topic(&brokers, "qualys.fim.events", 3, 2_000))
            .await
            .unwrap();
    assert_every_id(&messages, &ids);
    assert_eq!(
        messages[0].headers.get("stream").map(String::as_str),
        Some("events")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_topic_waits_until_created() {
    let tansu = Tansu::start();
    let options = format!(
        // librdkafka refreshes its metadata every 5 minutes by default; a
        // one-second refresh lets the test see the new topic quickly.
        // NOTE: with the idempotent producer this test stalled with 0 acks
        // in 2 of 5 runs under CPU load (4 of 4 passed without it). The
        // cause is not confirmed: a request timed out in flight may leave
        // the producer waiting for a recovery that tansu 0.6 lacks.
        "brokers = [\"{}\"]\ntopic = \"late.fim.{{stream}}\"\n[librdkafka]\n\"message.timeout.ms\" = 2000\n\"topic.metadata.refresh.interval.ms\" = 1000\n\"enable.idempotence\" = false\n",
        tansu.brokers
    );
    let running = start_sink(&options, 50);
    let acks = Arc::new(Acks::default());
    let ids = ids("late", 20);

    send_all(&running.sender, &ids, &acks).await;
    let metrics = running.metrics.clone();
    tokio::time::timeout(DEADLINE, async {
        while metrics.snapshot().retried == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the sink never retried the records for the missing topic");
    assert_eq!(acks.count(), 0);

    tansu.create_topic("late.fim.events", 1).await;
    acks.wait_for(ids.len()).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);
    let brokers = tansu.brokers.clone();
    let messages =
        tokio::task::spawn_blocking(move || read_topic(&brokers, "late.fim.events", 1, 20))
            .await
            .unwrap();
    assert_every_id(&messages, &ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sink_creates_missing_topic() {
    let tansu = Tansu::start();
    let options = format!(
        "brokers = [\"{}\"]\ntopic = \"auto.fim.{{stream}}\"\ncreate_topics = true\ntopic_partitions = 2\ntopic_replication = 1\n",
        tansu.brokers
    );
    let running = start_sink(&options, 50);
    let acks = Arc::new(Acks::default());
    let ids = ids("auto", 100);

    send_all(&running.sender, &ids, &acks).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    assert_eq!(acks.count(), 100);
    assert_eq!(running.metrics.snapshot().retried, 0);
    let brokers = tansu.brokers.clone();
    let messages =
        tokio::task::spawn_blocking(move || read_topic(&brokers, "auto.fim.events", 2, 100))
            .await
            .unwrap();
    assert_every_id(&messages, &ids);
}
