//! Every recorded API payload parses into records with ids and times.

// Helpers outside `#[test]` functions unwrap too; a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use fim_model::{ApiVersion, Record, RecordKind, Timestamp};

const FETCHED_AT: Timestamp = Timestamp::from_unix_ms(1_714_564_800_000);

fn page(path: &str, kind: RecordKind, api: ApiVersion) -> Vec<Record> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/qualys-fim");
    let body = std::fs::read_to_string(root.join(path)).unwrap();
    Record::parse_page(kind, &body, FETCHED_AT, api)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn v1_and_v2_events_are_the_same_records() {
    let v1 = page("v1/events.json", RecordKind::Event, ApiVersion::V1);
    let v2 = page("v2/events_search.json", RecordKind::Event, ApiVersion::V2);
    let sources = |records: &[Record]| {
        records
            .iter()
            .map(|r| r.source().clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(sources(&v1), sources(&v2));
}

#[test]
fn every_event_has_both_times() {
    let files = [
        ("v1/events.json", RecordKind::Event),
        ("v1/ignored_events.json", RecordKind::IgnoredEvent),
        ("v1/incident_events.json", RecordKind::IncidentEvent),
        ("edge/tricky_events.json", RecordKind::Event),
    ];
    for (path, kind) in files {
        for record in page(path, kind, ApiVersion::V1) {
            assert!(record.date_time().is_some(), "{path} {}", record.id());
            assert!(record.processed_time().is_some(), "{path} {}", record.id());
        }
    }
}

#[test]
fn v2_sort_values_match_processed_time() {
    for record in page("v2/events_search.json", RecordKind::Event, ApiVersion::V2) {
        let sort_values = record.fetch().unwrap().sort_values.clone().unwrap();
        let first = sort_values.as_array().unwrap()[0].as_i64();
        assert_eq!(
            first,
            record.processed_time().map(Timestamp::unix_ms),
            "{}",
            record.id()
        );
    }
}

#[test]
fn incident_times_come_from_created_and_updated_by() {
    let incidents = page(
        "v3/incidents_search.json",
        RecordKind::Incident,
        ApiVersion::V3,
    );
    let incident = &incidents[0];
    assert_eq!(
        incident.created_time(),
        Some(Timestamp::from_unix_ms(1_714_552_981_681))
    );
    assert_eq!(
        incident.updated_time(),
        Some(Timestamp::from_unix_ms(1_714_558_385_773))
    );
}

#[test]
fn numbers_sent_as_strings_are_read() {
    let records = page("edge/tricky_events.json", RecordKind::Event, ApiVersion::V1);
    let record = records
        .iter()
        .find(|r| r.id() == "1d2a0f07-544c-5ec9-9774-9d57f83c96de")
        .unwrap();
    assert_eq!(record.severity().map(|s| s.level()), Some(4));
    assert_eq!(record.actor().process_id(), Some(3311));
    assert_eq!(record.actor().user_id().as_deref(), Some("0"));
}

#[test]
fn unknown_fields_are_kept() {
    let records = page("edge/tricky_events.json", RecordKind::Event, ApiVersion::V1);
    let record = records
        .iter()
        .find(|r| r.id() == "1d2a0f07-544c-5ec9-9774-9d57f83c96de")
        .unwrap();
    assert!(record.get("newField").is_some());
}

#[test]
fn asset_times_parse_as_numbers_and_strings() {
    let records = page("v1/events.json", RecordKind::Event, ApiVersion::V1);
    let created: Vec<Option<Timestamp>> = records
        .iter()
        .map(|r| {
            r.get("asset")
                .and_then(|a| a.get("created"))
                .and_then(Timestamp::from_json)
        })
        .collect();
    assert!(created.iter().all(Option::is_some), "{created:?}");
}
