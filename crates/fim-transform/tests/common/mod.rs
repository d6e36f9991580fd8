//! Fixture loading and encoder set-up shared by the integration tests.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use fim_model::{ApiVersion, Record, RecordKind, Timestamp};
use fim_transform::Encoder;
use fim_transform::config::{EncoderConfig, Encoding, SyslogPayload};

/// Fetch time given to every fixture record, so outputs are reproducible.
pub const FETCHED_AT: Timestamp = Timestamp::from_unix_ms(1_714_564_800_000);

/// Private enterprise number used by the tests; an arbitrary value, not
/// this project's.
pub const TEST_PEN: u32 = 99_999;

/// A fixture file of API records.
pub struct Fixture {
    /// Golden-file directory name, e.g. `v1_events`.
    pub name: &'static str,
    pub path: &'static str,
    pub kind: RecordKind,
    pub api: ApiVersion,
}

pub const FIXTURES: [Fixture; 10] = [
    Fixture {
        name: "v1_event",
        path: "v1/event.json",
        kind: RecordKind::Event,
        api: ApiVersion::V1,
    },
    Fixture {
        name: "v1_events",
        path: "v1/events.json",
        kind: RecordKind::Event,
        api: ApiVersion::V1,
    },
    Fixture {
        name: "v1_ignored_events",
        path: "v1/ignored_events.json",
        kind: RecordKind::IgnoredEvent,
        api: ApiVersion::V1,
    },
    Fixture {
        name: "v1_incidents",
        path: "v1/incidents.json",
        kind: RecordKind::Incident,
        api: ApiVersion::V1,
    },
    Fixture {
        name: "v1_incident_events",
        path: "v1/incident_events.json",
        kind: RecordKind::IncidentEvent,
        api: ApiVersion::V1,
    },
    Fixture {
        name: "v2_events_search",
        path: "v2/events_search.json",
        kind: RecordKind::Event,
        api: ApiVersion::V2,
    },
    Fixture {
        name: "v2_ignored_events_search",
        path: "v2/ignored_events_search.json",
        kind: RecordKind::IgnoredEvent,
        api: ApiVersion::V2,
    },
    Fixture {
        name: "v2_incident_events_search",
        path: "v2/incident_events_search.json",
        kind: RecordKind::IncidentEvent,
        api: ApiVersion::V2,
    },
    Fixture {
        name: "v3_incidents_search",
        path: "v3/incidents_search.json",
        kind: RecordKind::Incident,
        api: ApiVersion::V3,
    },
    Fixture {
        name: "edge_tricky_events",
        path: "edge/tricky_events.json",
        kind: RecordKind::Event,
        api: ApiVersion::V1,
    },
];

pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/qualys-fim")
}

/// Reads a fixture's records; a single-object file (`v1/event.json`) is one
/// record.
pub fn load(fixture: &Fixture) -> Vec<Record> {
    let body = std::fs::read_to_string(fixtures_dir().join(fixture.path)).unwrap();
    if body.trim_start().starts_with('{') {
        let record = Record::from_json(fixture.kind, &body).unwrap();
        return vec![record.with_fetch(fim_model::FetchInfo {
            fetched_at: FETCHED_AT,
            api_version: fixture.api,
            sort_values: None,
        })];
    }
    Record::parse_page(fixture.kind, &body, FETCHED_AT, fixture.api)
        .unwrap()
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// Every record of every fixture.
pub fn all_records() -> Vec<Record> {
    FIXTURES.iter().flat_map(load).collect()
}

/// A named output format with the options the tests use.
pub struct Format {
    /// Golden file name within a fixture's directory.
    pub file: &'static str,
    pub config: EncoderConfig,
}

pub fn config(encoding: Encoding, payload: SyslogPayload) -> EncoderConfig {
    let mut config = EncoderConfig::new(encoding);
    config.syslog.pen = Some(TEST_PEN);
    config.syslog.payload = payload;
    config.cef.device_version = "1.0".to_owned();
    config.ecs.agent_version = "1.0".to_owned();
    config
}

pub fn formats() -> Vec<Format> {
    vec![
        Format {
            file: "ecs.ndjson",
            config: config(Encoding::Ecs, SyslogPayload::Cef),
        },
        Format {
            file: "cef.txt",
            config: config(Encoding::Cef, SyslogPayload::Cef),
        },
        Format {
            file: "syslog5424_cef.txt",
            config: config(Encoding::SyslogRfc5424, SyslogPayload::Cef),
        },
        Format {
            file: "syslog5424_json.txt",
            config: config(Encoding::SyslogRfc5424, SyslogPayload::Json),
        },
        Format {
            file: "syslog3164_cef.txt",
            config: config(Encoding::SyslogRfc3164, SyslogPayload::Cef),
        },
        Format {
            file: "syslog3164_json.txt",
            config: config(Encoding::SyslogRfc3164, SyslogPayload::Json),
        },
        Format {
            file: "json.ndjson",
            config: config(Encoding::Json, SyslogPayload::Cef),
        },
        Format {
            file: "flat_json.ndjson",
            config: config(Encoding::FlatJson, SyslogPayload::Cef),
        },
    ]
}

pub fn encode(encoder: &dyn Encoder, record: &Record) -> String {
    let mut out = Vec::new();
    encoder.encode(record, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}
pub mod cef_parser;

/// Returns the value a strict parse of a CEF extension value yields for
/// `source`: cut to `max_bytes`, with control characters other than tab, CR
/// and LF replaced by U+FFFD.
pub fn cef_expected(source: &str, max_bytes: usize) -> String {
    fim_transform::text::truncate_utf8(source, max_bytes)
        .chars()
        .map(|ch| {
            if ch.is_control() && !matches!(ch, '\t' | '\n' | '\r') {
                char::REPLACEMENT_CHARACTER
            } else {
                ch
            }
        })
        .collect()
}

/// Returns the record as `serde_json::Value` without content fields, as the
/// default policy sends records other than renames.
pub fn source_without_content(record: &Record) -> serde_json::Value {
    let mut value = serde_json::to_value(record.source()).unwrap();
    let is_rename = record
        .action()
        .is_some_and(|a| a.eq_ignore_ascii_case("Rename"));
    if !is_rename {
        let object = value.as_object_mut().unwrap();
        object.remove("oldContent");
        object.remove("newContent");
    }
    value
}
