//! Hostile API responses through the whole binary. The simulator spoils
//! search pages: not JSON, wrong shape, a record without an id, a 10 MiB
//! record, deep nesting, bytes that are not UTF-8, a repeated id, no
//! `sortValues`. The forwarder must retry broken pages and skip unreadable
//! records into the source dead-letter file. It must deliver everything
//! else once and keep running.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Running, json_sink, lines, sim_config, start_sim, wait_until, write_config};
use fim_sim::spoil::{HUGE_RECORD_PADDING, Spoil};
use fim_sim::{FaultUpdate, Stream};
use nix::sys::signal::Signal;
use serde_json::Value;

const EVENTS: &str = r#"["events"]"#;

const EVERY_SPOIL: [Spoil; 8] = [
    Spoil::NotJson,
    Spoil::MissingId,
    Spoil::WrongShape,
    Spoil::HugeRecord,
    Spoil::DeepNesting,
    Spoil::InvalidUtf8,
    Spoil::DuplicateId,
    Spoil::MissingSortValues,
];

#[test]
fn hostile_pages_v2() {
    run_with_every_spoil("v2");
}

#[test]
fn hostile_pages_v1() {
    run_with_every_spoil("v1");
}

/// Queues every spoil before the forwarder starts, so the first eight
/// search pages are spoiled one way each, then checks what arrived.
fn run_with_every_spoil(api_version: &str) {
    let sim = start_sim(fim_sim::SimConfig {
        ignored_share: 0.0,
        ..sim_config(3_000)
    });
    sim.handle
        .update(&FaultUpdate {
            spoil_pages: Some(EVERY_SPOIL.to_vec()),
            ..FaultUpdate::default()
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("events.json");
    let config = write_config(
        dir.path(),
        &sim.handle,
        EVENTS,
        "",
        &json_sink("json", &out),
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "api_version = \"v2\"",
            &format!("api_version = \"{api_version}\""),
        ),
    )
    .unwrap();
    let expected = sim.handle.visible_ids(Stream::Events);

    let mut running = Running::start(&config, dir.path().join("stderr.log"));
    let spoiled = wait_for_spoils(&sim.handle);
    let unreadable = [
        spoiled_id(&spoiled, "missing-id"),
        spoiled_id(&spoiled, "deep-nesting"),
    ];
    wait_until(
        Duration::from_secs(120),
        "every readable event in the sink",
        || lines(&out).len() >= expected.len() - unreadable.len(),
    );
    // Room for a duplicate or a stray record to arrive before counting.
    std::thread::sleep(Duration::from_millis(500));
    running.signal(Signal::SIGTERM);
    let exit = running.wait_exit(Duration::from_secs(20));
    let stderr = running.stderr();
    assert_eq!(exit, Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    let records = received(&out);
    for id in &expected {
        let copies = records.get(id).map_or(0, Vec::len);
        if unreadable.contains(id) {
            assert_eq!(copies, 0, "unreadable record {id} was delivered");
        } else {
            assert_eq!(copies, 1, "{id} arrived {copies} times");
        }
    }
    assert_eq!(records.len(), expected.len() - unreadable.len());

    let huge = &records[&spoiled_id(&spoiled, "huge-record")][0];
    let padding = huge["data"]["hostilePadding"].as_str().unwrap();
    assert_eq!(padding.len(), HUGE_RECORD_PADDING);
    let mangled = &records[&spoiled_id(&spoiled, "invalid-utf8")][0];
    assert_eq!(
        mangled["data"]["hostileBytes"],
        "bad \u{fffd}\u{fffd} bytes"
    );

    let dead_letter = dir.path().join("state").join("source-dead-letter.ndjson");
    let rejected: Vec<Value> = lines(&dead_letter)
        .iter()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    for line in &rejected {
        assert_eq!(line["stream"], "events");
        assert!(line["request"].as_str().unwrap().contains("with filter"));
    }
    let reasons: Vec<&str> = rejected
        .iter()
        .map(|line| line["reason"].as_str().unwrap())
        .collect();
    assert!(
        reasons.iter().any(|reason| reason.contains("no `id`")),
        "{reasons:?}"
    );
    assert!(
        reasons
            .iter()
            .any(|reason| reason.contains("recursion limit")),
        "{reasons:?}"
    );
    let deep_raw = rejected
        .iter()
        .map(|line| line["raw"].as_str().unwrap())
        .find(|raw| raw.contains("hostileNesting"))
        .unwrap();
    assert!(deep_raw.contains(&unreadable[1]));

    assert!(
        stderr.contains("request failed, retrying") && stderr.contains("invalid body"),
        "no retry logged for the broken pages: {stderr}"
    );
    assert!(
        stderr.contains("skipping a record that cannot be read"),
        "{stderr}"
    );
}

/// Waits until the simulator has applied every queued spoil. Returns the
/// request log notes, such as `spoil:missing-id:<id>`.
fn wait_for_spoils(sim: &fim_sim::SimHandle) -> Vec<String> {
    let mut notes = Vec::new();
    wait_until(Duration::from_secs(60), "every spoil applied", || {
        notes = sim
            .request_log()
            .into_iter()
            .filter_map(|entry| entry.fault)
            .filter(|fault| fault.starts_with("spoil:"))
            .collect();
        notes.len() >= EVERY_SPOIL.len()
    });
    notes
}

fn spoiled_id(notes: &[String], spoil: &str) -> String {
    let prefix = format!("spoil:{spoil}:");
    notes
        .iter()
        .find_map(|note| note.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {spoil} note in {notes:?}"))
        .to_owned()
}

/// Reads the json sink's lines by record id.
fn received(path: &std::path::Path) -> HashMap<String, Vec<Value>> {
    let mut records: HashMap<String, Vec<Value>> = HashMap::new();
    for line in lines(path) {
        let value: Value = serde_json::from_str(&line).unwrap();
        let id = value["id"].as_str().unwrap().to_owned();
        records.entry(id).or_default().push(value);
    }
    records
}
