//! Kafka sink throughput: records per second from the sink's channel to
//! their delivery reports (idempotent producer, `acks = all`), against
//! librdkafka's in-process mock cluster and against the local tansu broker
//! that `scripts/test.sh` starts on 127.0.0.1:9092. Set
//! `FIM_BENCH_KAFKA_BROKERS` to use another local broker.
//!
//! Each iteration sends `BATCH` records with fresh ids through one running
//! sink and waits until every one is acknowledged, so the figure includes
//! encoding (ECS JSON), producing and the broker's confirmation.
//!
//! Run: `cargo bench -p fim-benches --bench kafka_sink`

#![allow(clippy::expect_used)]

#[path = "sink_support.rs"]
mod sink_support;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use sink_support::{BATCH, run, start};

const TOPIC: &str = "bench.fim.events";

fn options(brokers: &str) -> String {
    format!("brokers = [\"{brokers}\"]\ntopic = \"bench.fim.{{stream}}\"\n")
}

/// Creates the bench topic on a real broker; an existing topic is kept.
async fn create_topic(brokers: &str) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .expect("admin client");
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .unwrap_or_else(|err| {
            panic!("no kafka broker at {brokers}: {err}; run scripts/test.sh, which starts tansu")
        });
    for result in results {
        if let Err((name, code)) = result
            && code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists
        {
            panic!("failed to create topic {name} on {brokers}: {code}");
        }
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let mut group = c.benchmark_group("kafka_sink");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));

    let cluster = MockCluster::new(1).expect("mock cluster");
    cluster.create_topic(TOPIC, 1, 1).expect("mock topic");
    let mock = runtime.block_on(async { start("kafka", &options(&cluster.bootstrap_servers())) });
    group.bench_function("mock_cluster_1000", |b| {
        b.to_async(&runtime).iter_custom(|iterations| {
            let running = mock.clone();
            async move { run(running, iterations).await }
        });
    });

    let brokers =
        std::env::var("FIM_BENCH_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:9092".to_owned());
    runtime.block_on(create_topic(&brokers));
    let tansu = runtime.block_on(async { start("kafka", &options(&brokers)) });
    group.bench_function("local_broker_1000", |b| {
        b.to_async(&runtime).iter_custom(|iterations| {
            let running = tansu.clone();
            async move { run(running, iterations).await }
        });
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
