//! Encoder throughput, from raw API JSON bytes to encoded bytes.
//!
//! The corpus is every record of the shared fixtures (events, ignored
//! events, incidents, incident events and the edge cases), repeated to
//! `CORPUS_RECORDS` records. Each iteration parses every record into a
//! `Record` and encodes it into one reused buffer, as a sink would. The
//! `serde_json_value_floor` bench parses the same bytes into a
//! `serde_json::Value` and serializes it back: the least work any encoder
//! that must read its input does.
//!
//! Criterion reports MB/s of raw input; records/s is the corpus size divided
//! by the time per iteration, printed at the start.
//!
//! Run: `cargo bench -p fim-benches --bench encoders`

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use fim_model::{Record, RecordKind};
use fim_transform::config::{EncoderConfig, Encoding, SyslogPayload};
use serde_json::Value;

const CORPUS_RECORDS: usize = 1000;

/// Fixture files and the stream their records belong to.
const FIXTURES: [(&str, RecordKind); 5] = [
    ("v1/events.json", RecordKind::Event),
    ("v1/ignored_events.json", RecordKind::IgnoredEvent),
    ("v1/incidents.json", RecordKind::Incident),
    ("v1/incident_events.json", RecordKind::IncidentEvent),
    ("edge/tricky_events.json", RecordKind::Event),
];

/// Loads the raw JSON text of every fixture record, repeated to the corpus
/// size.
fn corpus() -> Vec<(RecordKind, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/qualys-fim");
    let mut records = Vec::new();
    for (file, kind) in FIXTURES {
        let body = std::fs::read_to_string(root.join(file)).unwrap_or_default();
        let items: Vec<&serde_json::value::RawValue> =
            serde_json::from_str(&body).unwrap_or_default();
        records.extend(items.iter().map(|item| (kind, item.get().to_owned())));
    }
    assert!(
        !records.is_empty(),
        "no fixture records found under {}",
        root.display()
    );
    records
        .iter()
        .cycle()
        .take(CORPUS_RECORDS)
        .cloned()
        .collect()
}

fn config(encoding: Encoding, payload: SyslogPayload) -> EncoderConfig {
    let mut config = EncoderConfig::new(encoding);
    // An arbitrary private enterprise number for the benchmark only.
    config.syslog.pen = Some(99_999);
    config.syslog.payload = payload;
    config
}

fn encoders(c: &mut Criterion) {
    let corpus = corpus();
    let bytes: usize = corpus.iter().map(|(_, raw)| raw.len()).sum();
    println!(
        "corpus: {} records, {} bytes of raw JSON ({} bytes per record on average)",
        corpus.len(),
        bytes,
        bytes / corpus.len()
    );

    let mut group = c.benchmark_group("encoders");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.sample_size(20);
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(4));

    group.bench_function("serde_json_value_floor", |b| {
        let mut out = Vec::with_capacity(64 * 1024);
        b.iter(|| {
            for (_, raw) in &corpus {
                out.clear();
                let value: Value = serde_json::from_str(raw).unwrap_or(Value::Null);
                let _ = serde_json::to_writer(&mut out, &value);
                black_box(&out);
            }
        });
    });

    let formats = [
        ("ecs", Encoding::Ecs, SyslogPayload::Cef),
        ("cef", Encoding::Cef, SyslogPayload::Cef),
        (
            "syslog_rfc5424_cef",
            Encoding::SyslogRfc5424,
            SyslogPayload::Cef,
        ),
        (
            "syslog_rfc5424_json",
            Encoding::SyslogRfc5424,
            SyslogPayload::Json,
        ),
        (
            "syslog_rfc3164_cef",
            Encoding::SyslogRfc3164,
            SyslogPayload::Cef,
        ),
        ("json", Encoding::Json, SyslogPayload::Cef),
        ("flat_json", Encoding::FlatJson, SyslogPayload::Cef),
    ];
    for (name, encoding, payload) in formats {
        let Ok(encoder) = fim_transform::build(&config(encoding, payload)) else {
            panic!("invalid benchmark configuration for {name}");
        };
        group.bench_function(name, |b| {
            let mut out = Vec::with_capacity(64 * 1024);
            b.iter(|| {
                for (kind, raw) in &corpus {
                    out.clear();
                    if let Ok(record) = Record::from_json(*kind, raw) {
                        let _ = encoder.encode(&record, &mut out);
                    }
                    black_box(&out);
                }
            });
        });
    }
    group.finish();
}

criterion_group!(benches, encoders);
criterion_main!(benches);
