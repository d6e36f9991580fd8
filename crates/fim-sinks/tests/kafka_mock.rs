//! The Kafka sink against librdkafka's mock cluster (`rdkafka::mocking`),
//! which runs in this process and can take brokers down, fail requests and
//! enforce size limits on demand.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod kafka_common;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kafka_common::*;
use rdkafka::mocking::MockCluster;
use rdkafka::types::{RDKafkaApiKey, RDKafkaRespErr};

const TOPIC: &str = "qualys.fim.events";

fn options(cluster_servers: &str, extra: &str) -> String {
    format!(
        "brokers = [\"{cluster_servers}\"]\ntopic = \"qualys.fim.{{stream}}\"\nhealth_interval = \"1s\"\n{extra}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_cluster_gets_every_id() {
    let cluster = MockCluster::new(3).unwrap();
    cluster.create_topic(TOPIC, 3, 3).unwrap();
    let servers = cluster.bootstrap_servers();
    let running = start_sink(&options(&servers, ""), 100);
    let acks = Arc::new(Acks::default());
    let ids = ids("mock", 1_000);

    send_all(&running.sender, &ids, &acks).await;
    acks.wait_for(ids.len()).await;
    assert!(!running.metrics.disconnected.load(Ordering::Relaxed));
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    let metrics = running.metrics.snapshot();
    assert_eq!(metrics.acknowledged, 1_000);
    assert_eq!(metrics.in_flight, 0);
    assert_eq!(metrics.dead_lettered, 0);
    let messages = tokio::task::spawn_blocking(move || read_topic(&servers, TOPIC, 3, 1_000))
        .await
        .unwrap();
    assert_every_id(&messages, &ids);
    let first = &messages[0];
    assert_eq!(
        first.headers.get("stream").map(String::as_str),
        Some("events")
    );
    assert_eq!(
        first.headers.get("record_type").map(String::as_str),
        Some("event")
    );
    assert_eq!(first.payload["id"].as_str(), Some(first.key.as_str()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_down_at_start_recover() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    cluster.broker_down(-1).unwrap();
    let servers = cluster.bootstrap_servers();
    let running = start_sink(&options(&servers, ""), 100);
    let acks = Arc::new(Acks::default());
    let ids = ids("late", 50);

    send_all(&running.sender, &ids, &acks).await;
    // librdkafka reports the brokers down from its own thread, some time
    // after the producer starts.
    let flag = running.metrics.clone();
    let reported = tokio::time::timeout(DEADLINE, async {
        while !flag.disconnected.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(reported.is_ok(), "the sink never reported the brokers down");
    // The sink hands records to librdkafka while the brokers are down;
    // none is acknowledged and the sink stays reported unreachable.
    let metrics = running.metrics.clone();
    tokio::time::timeout(DEADLINE, async {
        while metrics.snapshot().sent == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap();
    assert_eq!(acks.count(), 0);
    assert!(running.metrics.disconnected.load(Ordering::Relaxed));

    cluster.broker_up(-1).unwrap();
    acks.wait_for(ids.len()).await;
    assert!(!running.metrics.disconnected.load(Ordering::Relaxed));
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    let messages = tokio::task::spawn_blocking(move || read_topic(&servers, TOPIC, 1, 50))
        .await
        .unwrap();
    assert_every_id(&messages, &ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_errors_are_retried() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    // More retriable errors than librdkafka retries within
    // message.timeout.ms, so messages time out and the sink produces them
    // again.
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; 30],
    );
    let servers = cluster.bootstrap_servers();
    let extra = "[librdkafka]\n\"message.timeout.ms\" = 300\n\"retry.backoff.ms\" = 50\n";
    let running = start_sink(&options(&servers, extra), 100);
    let acks = Arc::new(Acks::default());
    let ids = ids("flaky", 200);

    send_all(&running.sender, &ids, &acks).await;
    acks.wait_for(ids.len()).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    let metrics = running.metrics.snapshot();
    assert!(metrics.retried > 0, "{metrics:?}");
    assert_eq!(metrics.acknowledged, 200);
    assert_eq!(metrics.dead_lettered, 0);
    let messages = tokio::task::spawn_blocking(move || read_topic(&servers, TOPIC, 1, 200))
        .await
        .unwrap();
    assert_every_id(&messages, &ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_large_record_is_dead_lettered() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let servers = cluster.bootstrap_servers();
    let extra = "[librdkafka]\n\"message.max.bytes\" = 4096\n";
    let running = start_sink(&options(&servers, extra), 100);
    let acks = Arc::new(Acks::default());

    let big = fim_model::Record::from_json(
        fim_model::RecordKind::Event,
        &format!(r#"{{"id":"big-1","content":"{}"}}"#, "x".repeat(10_000)),
    )
    .unwrap()
    .shared();
    let small = ids("small", 20);
    send_all(&running.sender, &small[..10], &acks).await;
    running
        .sender
        .send(fim_sinks::Delivery {
            record: big,
            ack: acks.clone(),
        })
        .await
        .unwrap();
    send_all(&running.sender, &small[10..], &acks).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    assert_eq!(acks.count(), 21);
    let metrics = running.metrics.snapshot();
    assert_eq!(metrics.dead_lettered, 1);
    assert_eq!(metrics.in_flight, 0);
    let dead = std::fs::read_to_string(&running.dead_letter).unwrap();
    assert!(dead.contains("big-1"), "{dead}");
    let messages = tokio::task::spawn_blocking(move || read_topic(&servers, TOPIC, 1, 20))
        .await
        .unwrap();
    assert_every_id(&messages, &small);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_size_rejection_is_dead_lettered() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE],
    );
    let servers = cluster.bootstrap_servers();
    let running = start_sink(&options(&servers, ""), 10);
    let acks = Arc::new(Acks::default());

    // The first produce request fails as too large; it holds only the
    // first record because the sink is fed one record at a time.
    send_all(&running.sender, &ids("first", 1), &acks).await;
    acks.wait_for(1).await;
    send_all(&running.sender, &ids("next", 5), &acks).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    let metrics = running.metrics.snapshot();
    assert_eq!(metrics.dead_lettered, 1);
    assert_eq!(metrics.acknowledged, 6);
    let dead = std::fs::read_to_string(&running.dead_letter).unwrap();
    assert!(dead.contains("first-00000"), "{dead}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fatal_error_recreates_producer() {
    let logs = capture_logs();
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    let servers = cluster.bootstrap_servers();
    let extra = "[librdkafka]\n\"enable.gapless.guarantee\" = true\n";
    let running = start_sink(&options(&servers, extra), 100);
    let acks = Arc::new(Acks::default());

    send_all(&running.sender, &ids("before", 10), &acks).await;
    acks.wait_for(10).await;
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER],
    );
    let ids = ids("after", 50);
    send_all(&running.sender, &ids, &acks).await;
    acks.wait_for(60).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    let metrics = running.metrics.snapshot();
    assert_eq!(metrics.retried, 50);
    let text = String::from_utf8(logs.lock().unwrap().clone()).unwrap();
    assert!(text.contains("kafka producer failed fatally"), "{text}");
    let messages = tokio::task::spawn_blocking(move || read_topic(&servers, TOPIC, 1, 60))
        .await
        .unwrap();
    assert_every_id(&messages, &ids);
}

/// Sends every log line of this test binary to a buffer, because the log
/// is where the sink reports that it recreated the producer. With
/// librdkafka's `enable.gapless.guarantee`, an out-of-order sequence is a
/// fatal producer error.
fn capture_logs() -> Arc<Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = Arc::new(Mutex::new(Vec::new()));
    let buffer = Buffer(logs.clone());
    tracing_subscriber::fmt()
        .with_writer(move || buffer.clone())
        .with_ansi(false)
        .init();
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_queue_waits_for_reports() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic(TOPIC, 1, 1).unwrap();
    cluster
        .broker_round_trip_time(1, Duration::from_millis(20))
        .unwrap();
    let servers = cluster.bootstrap_servers();
    // librdkafka's queue takes 5 messages, far fewer than the sink has in
    // its channel, so producing fails with QueueFull until reports arrive.
    let extra = "[librdkafka]\n\"queue.buffering.max.messages\" = 5\n";
    let running = start_sink(&options(&servers, extra), 100);
    let acks = Arc::new(Acks::default());
    let ids = ids("queue", 300);

    send_all(&running.sender, &ids, &acks).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    assert_eq!(acks.count(), 300);
    let metrics = running.metrics.snapshot();
    assert_eq!(metrics.dead_lettered, 0);
    assert_eq!(metrics.sent, 300);
    let messages = tokio::task::spawn_blocking(move || read_topic(&servers, TOPIC, 1, 300))
        .await
        .unwrap();
    assert_every_id(&messages, &ids);
}
