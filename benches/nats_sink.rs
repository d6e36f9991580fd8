//! NATS sink throughput: records per second from the sink's channel to a
//! JetStream PubAck (and, for comparison, to a core NATS flush) on the
//! local `nats-server`, which `scripts/test.sh` starts on 127.0.0.1:4222.
//! Set `FIM_BENCH_NATS_URL` to use another local server.
//!
//! Each iteration sends `BATCH` records with fresh ids through one running
//! sink and waits until every one is acknowledged, so the figure includes
//! encoding (ECS JSON), publishing and the server's confirmation.
//!
//! Run: `cargo bench -p fim-benches --bench nats_sink`

#![allow(clippy::expect_used)]

#[path = "sink_support.rs"]
mod sink_support;

use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sink_support::{BATCH, run, start};

const STREAM: &str = "FIM_BENCH";

fn bench(c: &mut Criterion) {
    let url =
        std::env::var("FIM_BENCH_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_owned());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");

    // A stream of its own, capped so repeated runs do not fill the disk.
    runtime.block_on(async {
        let client = async_nats::connect(&url).await.unwrap_or_else(|err| {
            panic!("no nats-server at {url}: {err}; run scripts/test.sh, which starts one")
        });
        let jetstream = async_nats::jetstream::new(client);
        let _ = jetstream.delete_stream(STREAM).await;
        jetstream
            .create_stream(async_nats::jetstream::stream::Config {
                name: STREAM.to_owned(),
                subjects: vec!["bench.fim.*".to_owned()],
                max_messages: 200_000,
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await
            .expect("bench stream");
    });

    let mut group = c.benchmark_group("nats_sink");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(10));

    let jetstream = runtime.block_on(async {
        start(
            "nats",
            &format!(
                "servers = [\"{url}\"]\nsubject = \"bench.fim.{{stream}}\"\nstream = \"{STREAM}\"\n"
            ),
        )
    });
    group.bench_function("jetstream_pub_ack_1000", |b| {
        b.to_async(&runtime).iter_custom(|iterations| {
            let running = jetstream.clone();
            async move { run(running, iterations).await }
        });
    });

    let core = runtime.block_on(async {
        start(
            "nats",
            &format!(
                "servers = [\"{url}\"]\nsubject = \"bench.core.{{stream}}\"\njetstream = false\n"
            ),
        )
    });
    group.bench_function("core_flush_1000", |b| {
        b.to_async(&runtime).iter_custom(|iterations| {
            let running = core.clone();
            async move { run(running, iterations).await }
        });
    });
    group.finish();

    runtime.block_on(async {
        if let Ok(client) = async_nats::connect(&url).await {
            let _ = async_nats::jetstream::new(client)
                .delete_stream(STREAM)
                .await;
        }
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
