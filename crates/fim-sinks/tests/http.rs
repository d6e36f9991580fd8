//! The HTTP sink against an in-process receiver that answers like Splunk
//! HEC and Elasticsearch `_bulk`.
//!
//! A fake, because neither Splunk nor Elasticsearch can run on the machines
//! this project is tested on (no network beyond package registries, and
//! neither ships as a Debian package). The fake follows the documented
//! replies: HEC's `{"text":…,"code":…,"invalid-event-number":…}` and
//! `_bulk`'s `{"errors":…,"items":[{"create":{"status":…,"error":…}}]}` in
//! request order. Each test checks which records the receiver stored (each
//! exactly once), which were sent again, which were dead-lettered, and that
//! every record was acknowledged exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Read;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use fim_model::{Record, RecordKind, SharedRecord};
use fim_sinks::{Acknowledge, DeadLetter, Delivery, SinkContext, SinkMetrics, SinkSpec};
use serde_json::{Value, json};
use tokio::sync::watch;

const TRICKY_EVENTS: &str = include_str!("../../../fixtures/qualys-fim/edge/tricky_events.json");

/// One request as the fake received it, body decompressed.
#[derive(Debug, Clone)]
struct Received {
    at: Instant,
    headers: HeaderMap,
    body: Vec<u8>,
    /// Dedup keys of the records in the body, in order.
    ids: Vec<String>,
}

/// How the fake answers: given the request and the ids it already stored,
/// returns the reply and the ids it stores now.
type Handler = dyn Fn(&Received, &HashSet<String>) -> (Response, Vec<String>) + Send + Sync;

struct FakeState {
    requests: Mutex<Vec<Received>>,
    /// Every id stored, in order; a duplicate appears twice.
    stored: Mutex<Vec<String>>,
    handler: Box<Handler>,
    parse: fn(&[u8]) -> Vec<String>,
}

struct Fake {
    url: String,
    state: Arc<FakeState>,
}

impl Fake {
    async fn start(path: &str, parse: fn(&[u8]) -> Vec<String>, handler: Box<Handler>) -> Self {
        let state = Arc::new(FakeState {
            requests: Mutex::new(Vec::new()),
            stored: Mutex::new(Vec::new()),
            handler,
            parse,
        });
        let app = axum::Router::new()
            .fallback(receive)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self {
            url: format!("http://{address}{path}"),
            state,
        }
    }

    fn requests(&self) -> Vec<Received> {
        self.state.requests.lock().unwrap().clone()
    }

    fn stored(&self) -> Vec<String> {
        self.state.stored.lock().unwrap().clone()
    }

    /// How many times each id was sent, over every request.
    fn sent_counts(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for request in self.requests() {
            for id in request.ids {
                *counts.entry(id).or_insert(0) += 1;
            }
        }
        counts
    }
}

async fn receive(State(state): State<Arc<FakeState>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut bytes = body.to_vec();
    if headers
        .get("content-encoding")
        .is_some_and(|value| value == "gzip")
    {
        let mut plain = Vec::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_end(&mut plain)
            .unwrap();
        bytes = plain;
    }
    let received = Received {
        at: Instant::now(),
        headers,
        ids: (state.parse)(&bytes),
        body: bytes,
    };
    let already: HashSet<String> = state.stored.lock().unwrap().iter().cloned().collect();
    let (response, stored) = (state.handler)(&received, &already);
    state.stored.lock().unwrap().extend(stored);
    state.requests.lock().unwrap().push(received);
    response
}

/// Ids of HEC envelopes sent back to back.
fn hec_ids(body: &[u8]) -> Vec<String> {
    serde_json::Deserializer::from_slice(body)
        .into_iter::<Value>()
        .map(|envelope| {
            envelope.unwrap()["fields"]["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// `_id` of every `_bulk` action line.
fn bulk_ids(body: &[u8]) -> Vec<String> {
    assert!(
        body.ends_with(b"\n"),
        "a _bulk body must end with a newline"
    );
    let text = std::str::from_utf8(body).unwrap();
    text.lines()
        .step_by(2)
        .map(|line| {
            let action: Value = serde_json::from_str(line).unwrap();
            action["create"]["_id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// `id` of every element of a JSON array of records.
fn array_ids(body: &[u8]) -> Vec<String> {
    let records: Vec<Value> = serde_json::from_slice(body).unwrap();
    records
        .iter()
        .map(|record| record["id"].as_str().unwrap().to_owned())
        .collect()
}

/// `id` of every NDJSON line.
fn ndjson_ids(body: &[u8]) -> Vec<String> {
    std::str::from_utf8(body)
        .unwrap()
        .lines()
        .map(|line| {
            let record: Value = serde_json::from_str(line).unwrap();
            record["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn ok_json(value: Value) -> Response {
    (StatusCode::OK, axum::Json(value)).into_response()
}

fn hec_success() -> Response {
    ok_json(json!({"text": "Success", "code": 0}))
}

/// Acknowledgements received, by record id.
#[derive(Debug, Default)]
struct AckLog(Mutex<HashMap<String, usize>>);

#[derive(Debug)]
struct IdAck {
    id: String,
    log: Arc<AckLog>,
}

impl Acknowledge for IdAck {
    fn ack(&self) {
        *self
            .log
            .0
            .lock()
            .unwrap()
            .entry(self.id.clone())
            .or_insert(0) += 1;
    }
}

fn generated(count: usize) -> Vec<SharedRecord> {
    (0..count)
        .map(|index| {
            let text = format!(
                r#"{{"id":"rec-{index:04}","dateTime":"2024-05-02T00:00:0{}.123+0000","name":"file-{index}","severity":3,"asset":{{"hostname":"host-{index}"}}}}"#,
                index % 10
            );
            Record::from_json(RecordKind::Event, &text).unwrap().shared()
        })
        .collect()
}

fn tricky() -> Vec<SharedRecord> {
    let values: Vec<Value> = serde_json::from_str(TRICKY_EVENTS).unwrap();
    values
        .iter()
        .map(|value| {
            Record::from_json(RecordKind::Event, &value.to_string())
                .unwrap()
                .shared()
        })
        .collect()
}

/// What a run left behind.
struct Run {
    acks: HashMap<String, usize>,
    dead_letters: Vec<Value>,
    metrics: fim_sinks::SinkMetricsSnapshot,
}

/// Builds the sink from `table` (a `[[sinks]]` table in TOML), feeds it
/// `records`, closes it and waits until it has finished.
async fn run_sink(table: &str, records: &[SharedRecord]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let dead_path = dir.path().join("dead.ndjson");
    let spec = SinkSpec::from_table(0, toml::from_str(table).unwrap()).unwrap();
    let (_reopen_tx, reopen) = watch::channel(0);
    let context = SinkContext {
        name: spec.name.clone(),
        encoder: fim_sinks::spec::encoder(&spec).unwrap(),
        dead_letter: Arc::new(DeadLetter::new(&spec.name, &dead_path)),
        metrics: Arc::new(SinkMetrics::default()),
        reopen,
    };
    let metrics = context.metrics.clone();
    let sink = fim_sinks::build(&spec, context).unwrap();
    let (sender, handle) = fim_sinks::spawn(spec.name.clone(), sink, metrics.clone(), 64);

    let log = Arc::new(AckLog::default());
    for record in records {
        let delivery = Delivery {
            record: record.clone(),
            ack: Arc::new(IdAck {
                id: record.dedup_key(),
                log: log.clone(),
            }),
        };
        sender.send(delivery).await.unwrap();
    }
    drop(sender);
    assert!(
        handle.flush_and_close(Duration::from_secs(60)).await,
        "the sink did not finish"
    );

    let dead_letters = std::fs::read_to_string(&dead_path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let acks = log.0.lock().unwrap().clone();
    Run {
        acks,
        dead_letters,
        metrics: metrics.snapshot(),
    }
}

fn ids(records: &[SharedRecord]) -> Vec<String> {
    records.iter().map(|record| record.dedup_key()).collect()
}

fn dead_ids(run: &Run) -> Vec<String> {
    run.dead_letters
        .iter()
        .map(|line| line["id"].as_str().unwrap().to_owned())
        .collect()
}

fn sorted(mut values: Vec<String>) -> Vec<String> {
    values.sort();
    values
}

/// Every record acknowledged exactly once.
fn assert_each_acked_once(run: &Run, records: &[SharedRecord]) {
    for id in ids(records) {
        assert_eq!(run.acks.get(&id), Some(&1), "acknowledgements of {id}");
    }
    assert_eq!(run.acks.len(), records.len(), "acknowledged ids");
    assert_eq!(run.metrics.in_flight, 0, "records still in flight");
    assert_eq!(
        run.metrics.acknowledged,
        records.len() as u64,
        "acknowledged metric"
    );
}

fn hec_table(url: &str, extra: &str) -> String {
    format!(
        r#"
        name = "splunk"
        type = "http"
        mode = "splunk_hec"
        url = "{url}"
        token = "hec-secret-token"
        encoding = "json"
        {extra}
        [batch]
        max_events = 10
        timeout = "50ms"
        [retry]
        initial_backoff = "10ms"
        max_backoff = "50ms"
        "#
    )
}

fn bulk_table(url: &str) -> String {
    format!(
        r#"
        name = "elastic"
        type = "http"
        mode = "elasticsearch"
        url = "{url}"
        encoding = "ecs"
        [batch]
        max_events = 10
        timeout = "50ms"
        [retry]
        initial_backoff = "10ms"
        max_backoff = "50ms"
        "#
    )
}

/// A receiver that stores whatever arrives and answers HEC success.
fn store_all_hec() -> Box<Handler> {
    Box::new(|request, _| (hec_success(), request.ids.clone()))
}

#[tokio::test]
async fn hec_delivers_envelopes_with_token_and_metadata() {
    let fake = Fake::start("/services/collector/event", hec_ids, store_all_hec()).await;
    let mut records = generated(25);
    records.extend(tricky());
    let run = run_sink(&hec_table(&fake.url, ""), &records).await;

    assert_eq!(sorted(fake.stored()), sorted(ids(&records)));
    assert_each_acked_once(&run, &records);
    assert!(run.dead_letters.is_empty());

    let requests = fake.requests();
    for request in &requests {
        assert_eq!(request.headers["authorization"], "Splunk hec-secret-token");
        assert!(request.ids.len() <= 10, "batch over max_events");
        assert_ne!(
            request.body.first(),
            Some(&b'['),
            "HEC batches are not arrays"
        );
    }
    let first: Value = serde_json::Deserializer::from_slice(&requests[0].body)
        .into_iter::<Value>()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(first["time"].as_f64(), Some(1_714_608_000.123));
    assert_eq!(first["sourcetype"], "qualys:fim:event");
    assert_eq!(first["source"], "qualys:fim");
    assert_eq!(first["host"], "host-0");
    assert_eq!(first["event"]["id"], "rec-0000");
}

#[tokio::test]
async fn hec_invalid_event_resends_only_unindexed() {
    // HEC indexes the events before the invalid one, rejects the batch at
    // it, and never reads the rest.
    let poison = "rec-0003";
    let fake = Fake::start(
        "/services/collector/event",
        hec_ids,
        Box::new(move |request, _| {
            match request.ids.iter().position(|id| id == poison) {
                Some(index) => (
                    (
                        StatusCode::BAD_REQUEST,
                        axum::Json(json!({"text": "Invalid data format", "code": 6, "invalid-event-number": index})),
                    )
                        .into_response(),
                    request.ids[..index].to_vec(),
                ),
                None => (hec_success(), request.ids.clone()),
            }
        }),
    )
    .await;
    let records = generated(8);
    let run = run_sink(&hec_table(&fake.url, ""), &records).await;

    let expected: Vec<String> = ids(&records)
        .into_iter()
        .filter(|id| id != poison)
        .collect();
    assert_eq!(sorted(fake.stored()), sorted(expected.clone()));
    assert_eq!(dead_ids(&run), vec![poison.to_owned()]);
    assert_each_acked_once(&run, &records);

    let sent = fake.sent_counts();
    assert_eq!(sent["rec-0000"], 1, "an indexed event was resent");
    assert_eq!(sent["rec-0002"], 1, "an indexed event was resent");
    assert_eq!(sent[poison], 1, "the invalid event was resent");
    assert_eq!(sent["rec-0004"], 2, "an unread event was not resent once");
    assert_eq!(sent["rec-0007"], 2, "an unread event was not resent once");
}

#[tokio::test]
async fn hec_busy_503_retries_until_success() {
    let failures = Arc::new(Mutex::new(2));
    let remaining = failures.clone();
    let fake = Fake::start(
        "/services/collector/event",
        hec_ids,
        Box::new(move |request, _| {
            let mut remaining = remaining.lock().unwrap();
            if *remaining > 0 {
                *remaining -= 1;
                let reply = json!({"text": "Server is busy", "code": 9});
                return (
                    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(reply)).into_response(),
                    Vec::new(),
                );
            }
            (hec_success(), request.ids.clone())
        }),
    )
    .await;
    let records = generated(5);
    let run = run_sink(&hec_table(&fake.url, ""), &records).await;

    assert_eq!(sorted(fake.stored()), sorted(ids(&records)));
    assert_eq!(fake.requests().len(), 3);
    assert_each_acked_once(&run, &records);
    assert_eq!(run.metrics.retried, 10);
    assert!(run.dead_letters.is_empty());
}

#[tokio::test]
async fn hec_bad_token_is_retried_not_dead_lettered() {
    let failures = Arc::new(Mutex::new(1));
    let remaining = failures.clone();
    let fake = Fake::start(
        "/services/collector/event",
        hec_ids,
        Box::new(move |request, _| {
            let mut remaining = remaining.lock().unwrap();
            if *remaining > 0 {
                *remaining -= 1;
                let reply = json!({"text": "Invalid token", "code": 4});
                return (
                    (StatusCode::FORBIDDEN, axum::Json(reply)).into_response(),
                    Vec::new(),
                );
            }
            (hec_success(), request.ids.clone())
        }),
    )
    .await;
    let records = generated(3);
    let run = run_sink(&hec_table(&fake.url, ""), &records).await;

    assert!(
        run.dead_letters.is_empty(),
        "a token error dead-lettered records"
    );
    assert_eq!(sorted(fake.stored()), sorted(ids(&records)));
    assert_each_acked_once(&run, &records);
}

#[tokio::test]
async fn too_large_splits_and_dead_letters_single_record() {
    // The receiver takes bodies of at most 2 KiB; one record alone is larger.
    const LIMIT: usize = 2048;
    let fake = Fake::start(
        "/services/collector/event",
        hec_ids,
        Box::new(|request, _| {
            if request.body.len() > LIMIT {
                return (
                    (
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Content-Length exceeds limit",
                    )
                        .into_response(),
                    Vec::new(),
                );
            }
            (hec_success(), request.ids.clone())
        }),
    )
    .await;
    let mut records = generated(9);
    let huge = Record::from_json(
        RecordKind::Event,
        &format!(
            r#"{{"id":"huge","dateTime":"2024-05-02T00:00:00.000+0000","fullPath":"/{}"}}"#,
            "x".repeat(4000)
        ),
    )
    .unwrap()
    .shared();
    records.insert(4, huge);
    let run = run_sink(&hec_table(&fake.url, ""), &records).await;

    let expected: Vec<String> = ids(&records)
        .into_iter()
        .filter(|id| id != "huge")
        .collect();
    assert_eq!(sorted(fake.stored()), sorted(expected));
    assert_eq!(dead_ids(&run), vec!["huge".to_owned()]);
    assert!(
        run.dead_letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("413"),
        "dead-letter reason names the 413"
    );
    assert_each_acked_once(&run, &records);
    for request in fake.requests() {
        if request.body.len() <= LIMIT {
            continue;
        }
        assert!(request.ids.len() > 1 || request.ids == ["huge"]);
    }
}

#[tokio::test]
async fn retry_after_429_is_honoured() {
    let first = Arc::new(Mutex::new(true));
    let flag = first.clone();
    let fake = Fake::start(
        "/services/collector/event",
        hec_ids,
        Box::new(move |request, _| {
            let mut first = flag.lock().unwrap();
            if *first {
                *first = false;
                return (
                    (
                        StatusCode::TOO_MANY_REQUESTS,
                        [("retry-after", "1")],
                        "slow down",
                    )
                        .into_response(),
                    Vec::new(),
                );
            }
            (hec_success(), request.ids.clone())
        }),
    )
    .await;
    let records = generated(4);
    let run = run_sink(&hec_table(&fake.url, ""), &records).await;

    let requests = fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(
        requests[0].ids, requests[1].ids,
        "the same batch was resent"
    );
    assert!(
        requests[1].at.duration_since(requests[0].at) >= Duration::from_secs(1),
        "resent before Retry-After"
    );
    assert_eq!(sorted(fake.stored()), sorted(ids(&records)));
    assert_each_acked_once(&run, &records);
}

#[tokio::test]
async fn bulk_partial_failure_retries_429_and_dead_letters_400() {
    // rec-0001 and rec-0005 are rejected with 429 on their first try,
    // rec-0003 is unmappable, rec-0006 is already stored (409 on create).
    let seen = Arc::new(Mutex::new(HashSet::<String>::new()));
    let tried = seen.clone();
    let fake = Fake::start(
        "/_bulk",
        bulk_ids,
        Box::new(move |request, already| {
            let mut tried = tried.lock().unwrap();
            let mut items = Vec::new();
            let mut stored = Vec::new();
            for id in &request.ids {
                let first_try = tried.insert(id.clone());
                let item = match id.as_str() {
                    "rec-0001" | "rec-0005" if first_try => json!({"create": {"status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}}),
                    "rec-0003" => json!({"create": {"status": 400, "error": {"type": "document_parsing_exception", "reason": "failed to parse field [file.size]"}}}),
                    _ if already.contains(id) || id == "rec-0006" => json!({"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}}),
                    _ => {
                        stored.push(id.clone());
                        json!({"create": {"status": 201, "result": "created"}})
                    }
                };
                items.push(item);
            }
            let errors = items.iter().any(|item| item["create"]["status"] != 201);
            (ok_json(json!({"took": 3, "errors": errors, "items": items})), stored)
        }),
    )
    .await;
    let records = generated(8);
    let run = run_sink(&bulk_table(&fake.url), &records).await;

    let expected: Vec<String> = ids(&records)
        .into_iter()
        .filter(|id| id != "rec-0003" && id != "rec-0006")
        .collect();
    assert_eq!(sorted(fake.stored()), sorted(expected));
    assert_eq!(dead_ids(&run), vec!["rec-0003".to_owned()]);
    assert!(
        run.dead_letters[0]["reason"]
            .as_str()
            .unwrap()
            .contains("document_parsing_exception")
    );
    assert_each_acked_once(&run, &records);

    let sent = fake.sent_counts();
    assert_eq!(sent["rec-0001"], 2, "a 429 item was not resent once");
    assert_eq!(sent["rec-0005"], 2, "a 429 item was not resent once");
    assert_eq!(sent["rec-0000"], 1, "a created item was resent");
    assert_eq!(sent["rec-0003"], 1, "a rejected item was resent");
    assert_eq!(sent["rec-0006"], 1, "an already stored item was resent");
}

#[tokio::test]
async fn bulk_uses_create_with_dedup_id_and_data_stream() {
    let fake = Fake::start(
        "/_bulk",
        bulk_ids,
        Box::new(|request, _| {
            let items: Vec<Value> = request
                .ids
                .iter()
                .map(|_| json!({"create": {"status": 201}}))
                .collect();
            (
                ok_json(json!({"errors": false, "items": items})),
                request.ids.clone(),
            )
        }),
    )
    .await;
    let mut records = tricky();
    let incident = Record::from_json(
        RecordKind::Incident,
        r#"{"id":"inc-1","name":"weekly","createdBy":{"date":1714608000000},"lastUpdatedBy":{"date":1714611600000}}"#,
    )
    .unwrap()
    .shared();
    records.push(incident);
    let run = run_sink(&bulk_table(&fake.url), &records).await;

    assert_eq!(sorted(fake.stored()), sorted(ids(&records)));
    assert_each_acked_once(&run, &records);
    let requests = fake.requests();
    assert_eq!(requests[0].headers["content-type"], "application/x-ndjson");
    let text = String::from_utf8(requests.iter().flat_map(|r| r.body.clone()).collect()).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let actions: Vec<&Value> = lines.iter().step_by(2).collect();
    assert_eq!(
        actions[0]["create"]["_index"],
        "logs-qualys_fim.event-default"
    );
    let last = actions.last().unwrap();
    assert_eq!(last["create"]["_id"], "inc-1@1714611600000");
    assert_eq!(last["create"]["_index"], "logs-qualys_fim.incident-default");
    for document in lines.iter().skip(1).step_by(2) {
        assert!(
            document.get("@timestamp").is_some(),
            "document without @timestamp"
        );
    }
}

#[tokio::test]
async fn bulk_whole_request_429_resends_batch() {
    let first = Arc::new(Mutex::new(true));
    let flag = first.clone();
    let fake = Fake::start(
        "/_bulk",
        bulk_ids,
        Box::new(move |request, _| {
            let mut first = flag.lock().unwrap();
            if *first {
                *first = false;
                let reply = json!({"error": {"type": "circuit_breaking_exception"}, "status": 429});
                return (
                    (StatusCode::TOO_MANY_REQUESTS, axum::Json(reply)).into_response(),
                    Vec::new(),
                );
            }
            let items: Vec<Value> = request
                .ids
                .iter()
                .map(|_| json!({"create": {"status": 201}}))
                .collect();
            (
                ok_json(json!({"errors": false, "items": items})),
                request.ids.clone(),
            )
        }),
    )
    .await;
    let records = generated(6);
    let run = run_sink(&bulk_table(&fake.url), &records).await;

    assert_eq!(sorted(fake.stored()), sorted(ids(&records)));
    assert_eq!(fake.requests().len(), 2);
    assert_each_acked_once(&run, &records);
    assert!(run.dead_letters.is_empty());
}

#[tokio::test]
async fn generic_array_with_basic_auth() {
    let fake = Fake::start(
        "/ingest",
        array_ids,
        Box::new(|request, _| (StatusCode::NO_CONTENT.into_response(), request.ids.clone())),
    )
    .await;
    let records = generated(12);
    let table = format!(
        r#"
        name = "webhook"
        type = "http"
        url = "{}"
        encoding = "json"
        headers = {{ "X-Source" = "fim" }}
        auth = {{ strategy = "basic", user = "fim", password = "pa55" }}
        [batch]
        max_events = 5
        timeout = "50ms"
        "#,
        fake.url
    );
    let run = run_sink(&table, &records).await;

    assert_eq!(sorted(fake.stored()), sorted(ids(&records)));
    assert_each_acked_once(&run, &records);
    let requests = fake.requests();
    assert!(requests.len() >= 3, "batches of at most 5");
    // base64("fim:pa55")
    assert_eq!(requests[0].headers["authorization"], "Basic ZmltOnBhNTU=");
    assert_eq!(requests[0].headers["x-source"], "fim");
    assert_eq!(requests[0].headers["content-type"], "application/json");
}

#[tokio::test]
async fn generic_ndjson_gzip_isolates_rejected_record() {
    // The collector rejects any body holding rec-0006 with a plain 400, and
    // says nothing about which record is at fault.
    let fake = Fake::start(
        "/ingest",
        ndjson_ids,
        Box::new(|request, _| {
            if request.ids.iter().any(|id| id == "rec-0006") {
                return (
                    (StatusCode::BAD_REQUEST, "invalid record").into_response(),
                    Vec::new(),
                );
            }
            (StatusCode::OK.into_response(), request.ids.clone())
        }),
    )
    .await;
    let records = generated(10);
    let table = format!(
        r#"
        name = "webhook"
        type = "http"
        url = "{}"
        method = "put"
        body = "ndjson"
        compression = "gzip"
        encoding = "json"
        [batch]
        max_events = 10
        timeout = "1s"
        "#,
        fake.url
    );
    let run = run_sink(&table, &records).await;

    let expected: Vec<String> = ids(&records)
        .into_iter()
        .filter(|id| id != "rec-0006")
        .collect();
    assert_eq!(sorted(fake.stored()), sorted(expected));
    assert_eq!(dead_ids(&run), vec!["rec-0006".to_owned()]);
    assert_each_acked_once(&run, &records);
    let requests = fake.requests();
    assert_eq!(requests[0].headers["content-encoding"], "gzip");
    assert_eq!(requests[0].headers["content-type"], "application/x-ndjson");
    let stored = fake.stored();
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "a record was stored twice");
}

#[tokio::test]
async fn receiver_down_then_up_loses_nothing() {
    // Bind a port, close it so connections are refused, then start the
    // receiver there once the sink has failed at least once.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    let url = format!("http://{address}/services/collector/event");
    let records = generated(5);
    let table = hec_table(&url, "");

    let dir = tempfile::tempdir().unwrap();
    let spec = SinkSpec::from_table(0, toml::from_str(&table).unwrap()).unwrap();
    let (_reopen_tx, reopen) = watch::channel(0);
    let metrics = Arc::new(SinkMetrics::default());
    let context = SinkContext {
        name: spec.name.clone(),
        encoder: fim_sinks::spec::encoder(&spec).unwrap(),
        dead_letter: Arc::new(DeadLetter::new(&spec.name, dir.path().join("dead.ndjson"))),
        metrics: metrics.clone(),
        reopen,
    };
    let sink = fim_sinks::build(&spec, context).unwrap();
    let (sender, handle) = fim_sinks::spawn(spec.name.clone(), sink, metrics.clone(), 16);
    let log = Arc::new(AckLog::default());
    for record in &records {
        sender
            .send(Delivery {
                record: record.clone(),
                ack: Arc::new(IdAck {
                    id: record.dedup_key(),
                    log: log.clone(),
                }),
            })
            .await
            .unwrap();
    }
    drop(sender);
    while metrics.snapshot().retried == 0 {
        tokio::task::yield_now().await;
    }
    assert!(
        log.0.lock().unwrap().is_empty(),
        "acknowledged while the receiver was down"
    );

    let state = Arc::new(FakeState {
        requests: Mutex::new(Vec::new()),
        stored: Mutex::new(Vec::new()),
        handler: store_all_hec(),
        parse: hec_ids,
    });
    let app = axum::Router::new()
        .fallback(receive)
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind(address).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    assert!(handle.flush_and_close(Duration::from_secs(60)).await);
    let mut stored = state.stored.lock().unwrap().clone();
    stored.sort();
    assert_eq!(stored, sorted(ids(&records)));
    let acks = log.0.lock().unwrap().clone();
    assert!(acks.values().all(|count| *count == 1));
    assert_eq!(acks.len(), records.len());
}

#[test]
fn elasticsearch_rejects_cef_encoding() {
    let table = r#"
        name = "elastic"
        type = "http"
        mode = "elasticsearch"
        url = "http://127.0.0.1:9200/_bulk"
        encoding = "cef"
    "#;
    let err = SinkSpec::from_table(0, toml::from_str(table).unwrap()).unwrap_err();
    assert!(err.message.contains("ecs, json or flat_json"), "{err}");
}

#[test]
fn hec_without_token_is_rejected() {
    let table = r#"
        name = "splunk"
        type = "http"
        mode = "splunk_hec"
        url = "http://127.0.0.1:8088/services/collector/event"
        encoding = "json"
    "#;
    let err = SinkSpec::from_table(0, toml::from_str(table).unwrap()).unwrap_err();
    assert!(err.message.contains("token is missing"), "{err}");
}

#[test]
fn unknown_http_option_is_named() {
    let table = r#"
        name = "splunk"
        type = "http"
        url = "http://127.0.0.1:8088/"
        encoding = "json"
        batch_size = 3
    "#;
    let err = SinkSpec::from_table(0, toml::from_str(table).unwrap()).unwrap_err();
    assert!(err.message.contains("batch_size"), "{err}");
}
