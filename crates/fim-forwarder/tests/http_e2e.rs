//! The `fim-forwarder` binary from the simulator to an in-process receiver
//! that replies like Splunk HEC or Elasticsearch `_bulk`. It is a fake
//! because neither Splunk nor Elasticsearch can run on the machines this
//! project is tested on. It follows the documented replies of both (HEC's
//! `{"text":…,"code":…,"invalid-event-number":…}`, `_bulk`'s per-item
//! `status` in request order).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::{Running, sim_config, start_sim, wait_until, write_config};
use fim_sim::Stream;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

/// What the fake stored, and how often each id was sent.
#[derive(Default)]
struct Store {
    requests: usize,
    stored: BTreeMap<String, usize>,
    sent: BTreeMap<String, usize>,
    /// Ids the `_bulk` fake already rejected once with 429.
    rejected_once: HashSet<String>,
}

type Shared = Arc<Mutex<Store>>;

/// A receiver on a runtime of its own; returns its base URL.
fn start_receiver(
    store: Shared,
    handler: fn(State<Shared>, Bytes) -> Response,
) -> (String, tokio::runtime::Runtime) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(move |state: State<Shared>, body: Bytes| async move { handler(state, body) })
        .with_state(store);
    runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{address}"), runtime)
}

/// HEC: busy for the first two requests, then in the fifth request the
/// third event is invalid (code 6), then success.
fn hec(State(store): State<Shared>, body: Bytes) -> Response {
    let ids: Vec<String> = serde_json::Deserializer::from_slice(&body)
        .into_iter::<Value>()
        .map(|envelope| {
            envelope.unwrap()["fields"]["event_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let mut store = store.lock().unwrap();
    store.requests += 1;
    for id in &ids {
        *store.sent.entry(id.clone()).or_insert(0) += 1;
    }
    if store.requests <= 2 {
        let reply = json!({"text": "Server is busy", "code": 9});
        return (StatusCode::SERVICE_UNAVAILABLE, axum::Json(reply)).into_response();
    }
    if store.requests == 5 && ids.len() > 3 {
        for id in &ids[..2] {
            *store.stored.entry(id.clone()).or_insert(0) += 1;
        }
        let reply = json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 2});
        return (StatusCode::BAD_REQUEST, axum::Json(reply)).into_response();
    }
    for id in &ids {
        *store.stored.entry(id.clone()).or_insert(0) += 1;
    }
    (
        StatusCode::OK,
        axum::Json(json!({"text": "Success", "code": 0})),
    )
        .into_response()
}

/// `_bulk`: every id ending in 7 gets a 429 on its first try; a repeated
/// `create` of a stored id gets 409.
fn bulk(State(store): State<Shared>, body: Bytes) -> Response {
    let text = String::from_utf8(body.to_vec()).unwrap();
    let mut store = store.lock().unwrap();
    store.requests += 1;
    let mut items = Vec::new();
    for action in text.lines().step_by(2) {
        let action: Value = serde_json::from_str(action).unwrap();
        let id = action["create"]["_id"].as_str().unwrap().to_owned();
        *store.sent.entry(id.clone()).or_insert(0) += 1;
        let item = if id.ends_with('7') && store.rejected_once.insert(id.clone()) {
            json!({"create": {"status": 429, "error": {"type": "es_rejected_execution_exception"}}})
        } else if let std::collections::btree_map::Entry::Vacant(e) = store.stored.entry(id) {
            e.insert(1);
            json!({"create": {"status": 201}})
        } else {
            json!({"create": {"status": 409, "error": {"type": "version_conflict_engine_exception"}}})
        };
        items.push(item);
    }
    let errors = items.iter().any(|item| item["create"]["status"] != 201);
    (
        StatusCode::OK,
        axum::Json(json!({"errors": errors, "items": items})),
    )
        .into_response()
}

fn dead_lettered_ids(state_dir: &std::path::Path) -> Vec<String> {
    let mut ids = Vec::new();
    let Ok(entries) = std::fs::read_dir(state_dir.join("dead-letter")) else {
        return ids;
    };
    for entry in entries {
        for line in common::lines(&entry.unwrap().path()) {
            let value: Value = serde_json::from_str(&line).unwrap();
            ids.push(value["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

#[test]
fn hec_retries_and_resends_only_unindexed() {
    let store: Shared = Arc::default();
    let (url, _receiver) = start_receiver(store.clone(), hec);
    let sim = start_sim(fim_sim::SimConfig {
        incident_every: 0,
        ignored_share: 0.0,
        ..sim_config(2_000)
    });
    let dir = tempfile::tempdir().unwrap();
    let sink = format!(
        "[[sinks]]\nname = \"splunk\"\ntype = \"http\"\nmode = \"splunk_hec\"\nurl = \"{url}/services/collector/event\"\ntoken = \"${{E2E_HEC_TOKEN}}\"\nencoding = \"json\"\n[sinks.batch]\nmax_events = 100\ntimeout = \"100ms\"\n[sinks.retry]\nmax_backoff = \"200ms\"\n"
    );
    let config = write_config(dir.path(), &sim.handle, r#"["events"]"#, "", &sink);
    let expected: HashSet<String> = sim.handle.visible_ids(Stream::Events).into_iter().collect();
    assert!(
        expected.len() >= 1_000,
        "the simulator lists {} events",
        expected.len()
    );

    let mut running = {
        let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = common::forwarder()
            .env("E2E_HEC_TOKEN", "e2e-hec-token-secret")
            .args(["run", "--config"])
            .arg(&config)
            .stdout(std::process::Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Running {
            child,
            stderr_path: dir.path().join("stderr.log"),
        }
    };
    wait_until(
        Duration::from_secs(120),
        "every event stored or dead-lettered",
        || {
            store.lock().unwrap().stored.len() + dead_lettered_ids(&dir.path().join("state")).len()
                >= expected.len()
        },
    );
    running.signal(Signal::SIGTERM);
    assert_eq!(
        running.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        running.stderr()
    );

    let store = store.lock().unwrap();
    let dead = dead_lettered_ids(&dir.path().join("state"));
    assert_eq!(dead.len(), 1, "dead-lettered: {dead:?}");
    assert!(
        !store.stored.contains_key(&dead[0]),
        "the invalid event was stored"
    );
    for id in &expected {
        if *id == dead[0] {
            continue;
        }
        assert_eq!(store.stored.get(id), Some(&1), "stores of {id}");
    }
    assert!(
        !running.stderr().contains("e2e-hec-token-secret"),
        "the HEC token appears in the log"
    );
}

#[test]
fn bulk_partial_failures_store_each_once() {
    let store: Shared = Arc::default();
    let (url, _receiver) = start_receiver(store.clone(), bulk);
    let sim = start_sim(fim_sim::SimConfig {
        incident_every: 0,
        ignored_share: 0.0,
        ..sim_config(2_000)
    });
    let dir = tempfile::tempdir().unwrap();
    let sink = format!(
        "[[sinks]]\nname = \"elastic\"\ntype = \"http\"\nmode = \"elasticsearch\"\nurl = \"{url}/_bulk\"\nencoding = \"ecs\"\n[sinks.batch]\nmax_events = 100\ntimeout = \"100ms\"\n[sinks.retry]\nmax_backoff = \"200ms\"\n"
    );
    let config = write_config(dir.path(), &sim.handle, r#"["events"]"#, "", &sink);
    let expected: HashSet<String> = sim.handle.visible_ids(Stream::Events).into_iter().collect();
    assert!(
        expected.len() >= 1_000,
        "the simulator lists {} events",
        expected.len()
    );

    let mut running = Running::start(&config, dir.path().join("stderr.log"));
    wait_until(Duration::from_secs(120), "every event stored", || {
        store.lock().unwrap().stored.len() >= expected.len()
    });
    running.signal(Signal::SIGTERM);
    assert_eq!(
        running.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        running.stderr()
    );

    let store = store.lock().unwrap();
    for id in &expected {
        assert_eq!(store.stored.get(id), Some(&1), "stores of {id}");
        let sends = store.sent[id];
        let allowed = if id.ends_with('7') { 2 } else { 1 };
        assert_eq!(sends, allowed, "sends of {id}");
    }
    assert!(dead_lettered_ids(&dir.path().join("state")).is_empty());
}
