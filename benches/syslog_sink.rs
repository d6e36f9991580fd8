//! Syslog sink throughput: records per second from the sink's channel to a
//! local TCP receiver, octet-counted RFC 5424 messages carrying CEF.
//!
//! The receiver is an in-process tokio listener on 127.0.0.1 that reads and
//! discards what arrives, so the figure is the sink's own cost (encoding,
//! framing, one write and flush per batch) rather than a receiver's. Each
//! iteration builds the sink from a `[[sinks]]` table, sends `RECORDS`
//! records, closes the channel and waits until every record is
//! acknowledged.
//!
//! Run: `cargo bench -p fim-benches --bench syslog_sink`

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fim_model::{Record, RecordKind, SharedRecord};
use fim_sinks::{Acknowledge, DeadLetter, Delivery, SinkContext, SinkMetrics, SinkSpec};
use tokio::io::AsyncReadExt;
use tokio::sync::watch;

const RECORDS: usize = 20_000;

#[derive(Debug, Default)]
struct AckCount(AtomicUsize);

impl Acknowledge for AckCount {
    fn ack(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn records() -> Vec<SharedRecord> {
    (0..RECORDS)
        .map(|index| {
            let text = format!(
                r#"{{"id":"bench-{index}","dateTime":"2024-05-02T00:00:00.000+0000","fullPath":"/srv/data/file-{index}.txt","name":"file-{index}.txt","action":"Content","severity":3,"type":"File","platform":"LINUX","asset":{{"agentId":"5af82a14-4849-5666-a202-e5ca4ce994b1","hostname":"web-{index}","operatingSystem":"Debian 12"}},"actor":{{"process":"vim","processID":4242,"userName":"root"}}}}"#
            );
            Record::from_json(RecordKind::Event, &text)
                .unwrap_or_else(|err| panic!("bench record: {err}"))
                .shared()
        })
        .collect()
}

/// Starts a receiver that discards everything; returns its address.
async fn drain_receiver() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|err| panic!("bind: {err}"));
    let address = listener
        .local_addr()
        .unwrap_or_else(|err| panic!("address: {err}"));
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = vec![0u8; 256 * 1024];
                while matches!(stream.read(&mut buffer).await, Ok(read) if read > 0) {}
            });
        }
    });
    address
}

async fn run_once(table: &str, records: &[SharedRecord], dead_letter: &std::path::Path) {
    let table: toml::Table = toml::from_str(table).unwrap_or_else(|err| panic!("table: {err}"));
    let spec = SinkSpec::from_table(0, table).unwrap_or_else(|err| panic!("spec: {err}"));
    let (_reopen_tx, reopen) = watch::channel(0);
    let metrics = Arc::new(SinkMetrics::default());
    let context = SinkContext {
        name: spec.name.clone(),
        encoder: fim_sinks::spec::encoder(&spec).unwrap_or_else(|err| panic!("encoder: {err}")),
        dead_letter: Arc::new(DeadLetter::new(&spec.name, dead_letter)),
        metrics: metrics.clone(),
        reopen,
    };
    let sink = fim_sinks::build(&spec, context).unwrap_or_else(|err| panic!("sink: {err}"));
    let (sender, handle) = fim_sinks::spawn(spec.name.clone(), sink, metrics, 1_000);
    let acks = Arc::new(AckCount::default());
    for record in records {
        let delivery = Delivery {
            record: record.clone(),
            ack: acks.clone(),
        };
        if sender.send(delivery).await.is_err() {
            panic!("the sink stopped early");
        }
    }
    drop(sender);
    assert!(handle.flush_and_close(Duration::from_secs(120)).await);
    assert_eq!(acks.0.load(Ordering::Relaxed), records.len());
}

fn syslog_sink(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap_or_else(|err| panic!("runtime: {err}"));
    let address = runtime.block_on(drain_receiver());
    let records = records();
    let dir = tempfile::tempdir().unwrap_or_else(|err| panic!("tempdir: {err}"));
    let dead_letter = dir.path().join("dead.ndjson");
    let table = format!(
        r#"
        name = "bench"
        type = "syslog"
        encoding = "cef"
        address = "{address}"
        transport = "tcp"
        framing = "octet-counting"
        format = "rfc5424"
        [syslog]
        pen = 99999
        "#
    );

    let mut group = criterion.benchmark_group("syslog_sink");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.sample_size(10);
    group.bench_function("tcp_octet_rfc5424_cef", |bencher| {
        bencher
            .to_async(&runtime)
            .iter(|| run_once(&table, &records, &dead_letter));
    });
    group.finish();
}

criterion_group!(benches, syslog_sink);
criterion_main!(benches);
