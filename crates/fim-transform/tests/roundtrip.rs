//! Round trips through parsers that are not ours. Every fixture record is
//! encoded and parsed back, and each value must equal the source value. CEF
//! is read by the strict spec parser in `common/cef_parser.rs`, RFC 5424 by
//! `syslog_rfc5424`, RFC 3164 by `syslog_loose` and JSON by `serde_json`.

// Helpers outside `#[test]` functions unwrap too; a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use chrono::{Datelike, Timelike};
use common::cef_parser::{self, Cef};
use common::{all_records, cef_expected, config, encode, source_without_content};
use fim_model::view::split_domain_user;
use fim_model::{Record, RecordKind};
use fim_transform::config::{Encoding, SyslogPayload};
use fim_transform::{build, cef, syslog};
use serde_json::Value;

fn encoded(encoding: Encoding, payload: SyslogPayload, record: &Record) -> String {
    let encoder = build(&config(encoding, payload)).unwrap();
    encode(encoder.as_ref(), record)
}

fn assert_cef_matches(record: &Record, cef: &Cef) {
    let id = record.id();
    assert_eq!(cef.version, "0", "{id}");
    assert_eq!(cef.vendor, "Qualys", "{id}");
    assert_eq!(cef.product, "FIM", "{id}");
    assert_eq!(cef.class_id, cef::class_id(record), "{id}");
    assert_eq!(cef.name, cef::event_name(record), "{id}");
    let severity = record
        .severity()
        .map_or("Unknown".to_owned(), |s| (s.level() * 2).to_string());
    assert_eq!(cef.severity, severity, "{id}");
    assert_eq!(cef.get("externalId"), Some(id), "{id}");
    assert_eq!(
        cef.get("rt").map(|rt| rt.parse::<i64>().unwrap()),
        record.event_time().map(|t| t.unix_ms()),
        "{id}"
    );

    if record.kind() == RecordKind::Incident {
        let incident = record.incident();
        assert_eq!(
            cef.get("act").map(str::to_owned),
            incident.status().map(|s| cef_expected(&s, 63)),
            "{id}"
        );
        assert_eq!(
            cef.get("msg").map(str::to_owned),
            incident.name().map(|s| cef_expected(&s, 1023)),
            "{id}"
        );
        assert_eq!(
            cef.get("reason").map(str::to_owned),
            incident.comment().map(|s| cef_expected(&s, 1023)),
            "{id}"
        );
        return;
    }

    let text = |key: &str, value: Option<std::borrow::Cow<'_, str>>, max: usize| {
        assert_eq!(
            cef.get(key).map(str::to_owned),
            value.map(|v| cef_expected(&v, max)),
            "{id}: {key}"
        );
    };
    text("act", record.action(), 63);
    text("fname", record.name(), 1023);
    text("filePath", record.full_path(), 1023);
    text("fileType", record.object_type(), 1023);
    text("fileHash", record.new_hash(), 255);
    text("oldFileHash", record.old_hash(), 255);
    text("suser", record.actor().user_name(), 1023);
    text("suid", record.actor().user_id(), 1023);
    text("sproc", record.actor().process(), 1023);
    text("dvchost", record.asset().host_name(), 100);
    text("deviceExternalId", record.asset().agent_id(), 255);
    text("cs4", record.incident_id(), 4000);
    text("cs5", record.actor().image_path(), 4000);
    text("flexString1", record.customer_id(), 1023);
    text("flexString2", record.asset().operating_system(), 1023);
    assert_eq!(
        cef.get("spid").map(|pid| pid.parse::<i64>().unwrap()),
        record.actor().process_id(),
        "{id}"
    );
    assert_eq!(
        cef.get("cn1").map(|level| level.parse::<u8>().unwrap()),
        record.severity().map(|s| s.level()),
        "{id}"
    );
    if record.action().as_deref() == Some("Rename") {
        text("oldFilePath", record.text("oldContent"), 1023);
    }
    for (slot, label) in [
        ("cs1", "Profiles"),
        ("cs2", "Rules"),
        ("cs5", "Process Image Path"),
    ] {
        if cef.get(slot).is_some() {
            assert_eq!(cef.get(&format!("{slot}Label")), Some(label), "{id}");
        }
    }
}

#[test]
fn cef_round_trips_through_a_strict_parser() {
    for record in all_records() {
        let line = encoded(Encoding::Cef, SyslogPayload::Cef, &record);
        let parsed =
            cef_parser::parse(&line).unwrap_or_else(|e| panic!("{}: {e}: {line}", record.id()));
        assert_cef_matches(&record, &parsed);
    }
}

#[test]
fn cef_keeps_injected_header_in_value() {
    let record = all_records()
        .into_iter()
        .find(|r| r.id() == "1226adbc-51a0-5697-8944-961115cb9e47")
        .unwrap();
    let line = encoded(Encoding::Cef, SyslogPayload::Cef, &record);
    let parsed = cef_parser::parse(&line).unwrap();
    assert_eq!(
        parsed.get("fname"),
        Some("evil\nCEF:0|Fake|Injected|1|1|forged|10|")
    );
    assert_eq!(
        line.matches("CEF:").count(),
        4,
        "one real header and three quoted copies"
    );
}

#[test]
fn cef_cuts_long_paths_on_a_character_boundary() {
    let record = all_records()
        .into_iter()
        .find(|r| r.full_path().is_some_and(|p| p.len() > 1023))
        .unwrap();
    let parsed = cef_parser::parse(&encoded(Encoding::Cef, SyslogPayload::Cef, &record)).unwrap();
    assert_eq!(parsed.get("filePath").map(str::len), Some(1023));
}

#[test]
fn rfc5424_round_trips_through_syslog_rfc5424() {
    for record in all_records() {
        for payload in [SyslogPayload::Cef, SyslogPayload::Json] {
            let line = encoded(Encoding::SyslogRfc5424, payload, &record);
            let id = record.id();
            let message = syslog_rfc5424::parse_message(&line)
                .unwrap_or_else(|e| panic!("{id}: {e}: {line}"));

            assert_eq!(message.facility as u8, 16, "{id}: facility local0");
            let severity = 7 - record.severity().map_or(2, |s| s.level());
            assert_eq!(message.severity as u8, severity, "{id}");
            let millis = message.timestamp.unwrap() * 1000
                + i64::from(message.timestamp_nanos.unwrap() / 1_000_000);
            assert_eq!(
                Some(millis),
                record.event_time().map(|t| t.unix_ms()),
                "{id}"
            );
            assert_eq!(
                message.hostname,
                record.asset().host_name().map(|h| h.into_owned()),
                "{id}"
            );
            assert_eq!(message.appname.as_deref(), Some("qualys-fim"), "{id}");
            assert_eq!(
                message.msgid.as_deref(),
                Some(syslog::msg_id(record.kind())),
                "{id}"
            );

            assert_eq!(message.sd.len(), 1, "{id}: one SD element");
            let params = message.sd.find_sdid("fim@99999").unwrap();
            assert_eq!(params.get("id").map(String::as_str), Some(id));
            assert_eq!(
                params.get("stream").map(String::as_str),
                Some(record.kind().stream_name())
            );
            assert_eq!(
                params.get("agentId").cloned(),
                record.asset().agent_id().map(|a| a.into_owned()),
                "{id}"
            );

            match payload {
                SyslogPayload::Cef => {
                    let cef = cef_parser::parse(&message.msg).unwrap();
                    assert_cef_matches(&record, &cef);
                }
                SyslogPayload::Json => {
                    let document: Value = serde_json::from_str(&message.msg).unwrap();
                    assert_eq!(document["data"], source_without_content(&record), "{id}");
                }
            }
        }
    }
}

#[test]
fn rfc3164_round_trips_through_syslog_loose() {
    for record in all_records() {
        for payload in [SyslogPayload::Cef, SyslogPayload::Json] {
            let line = encoded(Encoding::SyslogRfc3164, payload, &record);
            let id = record.id();
            assert!(line.len() <= 1024, "{id}: {} bytes", line.len());

            let message = syslog_loose::parse_message_with_year_exact_tz(
                &line,
                |_| 2024,
                Some(chrono::Utc),
                syslog_loose::Variant::RFC3164,
            )
            .unwrap_or_else(|e| panic!("{id}: {e}: {line}"));
            let time = message.timestamp.unwrap();
            let source = record.event_time().unwrap().civil().unwrap();
            assert_eq!(
                (
                    time.month(),
                    time.day(),
                    time.hour(),
                    time.minute(),
                    time.second()
                ),
                (
                    u32::from(source.month),
                    u32::from(source.day),
                    u32::from(source.hour),
                    u32::from(source.minute),
                    u32::from(source.second)
                ),
                "{id}"
            );
            let host = record
                .asset()
                .host_name()
                .map(|h| h.split('.').next().unwrap().to_owned());
            // The encoder writes `-` for a record without a host, which the parser
            // reads as no host name.
            assert_eq!(message.hostname.map(str::to_owned), host, "{id}");
            assert_eq!(message.appname, Some("qualysfim"), "{id}");

            if payload == SyslogPayload::Cef {
                // A message cut to 1024 bytes carries a prefix of the CEF
                // line; an uncut one carries all of it.
                let full = encoded(Encoding::Cef, SyslogPayload::Cef, &record);
                assert!(full.starts_with(message.msg), "{id}");
                if message.msg == full {
                    let cef = cef_parser::parse(message.msg).unwrap();
                    assert_cef_matches(&record, &cef);
                }
            }
        }
    }
}

#[test]
fn json_round_trips_every_source_value() {
    for record in all_records() {
        let line = encoded(Encoding::Json, SyslogPayload::Cef, &record);
        let document: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(document["stream"], record.kind().stream_name());
        assert_eq!(
            document["data"],
            source_without_content(&record),
            "{}",
            record.id()
        );
        let fetch = record.fetch().unwrap();
        assert_eq!(document["fetch"]["api_version"], fetch.api_version.as_str());
    }
}

/// Rebuilds nested JSON from dotted keys, treating numeric segments as
/// array indices.
fn unflatten(flat: &serde_json::Map<String, Value>) -> Value {
    let mut root = Value::Object(serde_json::Map::new());
    for (path, leaf) in flat {
        let segments: Vec<&str> = path.split('.').collect();
        let mut node = &mut root;
        for (depth, segment) in segments.iter().enumerate() {
            let last = depth + 1 == segments.len();
            let next_is_index = segments
                .get(depth + 1)
                .is_some_and(|s| s.parse::<usize>().is_ok());
            let empty = if next_is_index {
                Value::Array(Vec::new())
            } else {
                Value::Object(serde_json::Map::new())
            };
            node = match node {
                Value::Array(items) => {
                    let index: usize = segment.parse().unwrap();
                    while items.len() <= index {
                        items.push(Value::Null);
                    }
                    if last {
                        items[index] = leaf.clone();
                    } else if items[index].is_null() {
                        items[index] = empty;
                    }
                    &mut items[index]
                }
                Value::Object(map) => {
                    if last {
                        map.insert((*segment).to_owned(), leaf.clone());
                    }
                    map.entry((*segment).to_owned()).or_insert(empty)
                }
                _ => panic!("path {path} crosses a leaf"),
            };
        }
    }
    root
}

#[test]
fn flat_json_unflattens_to_the_envelope() {
    for record in all_records() {
        let flat: Value =
            serde_json::from_str(&encoded(Encoding::FlatJson, SyslogPayload::Cef, &record))
                .unwrap();
        let nested: Value =
            serde_json::from_str(&encoded(Encoding::Json, SyslogPayload::Cef, &record)).unwrap();
        let flat = flat.as_object().unwrap();
        assert!(
            flat.values()
                .all(|v| !v.is_object() || v.as_object().unwrap().is_empty())
        );
        assert_eq!(unflatten(flat), nested, "{}", record.id());
    }
}

#[test]
fn ecs_maps_source_values() {
    for record in all_records() {
        let document: Value =
            serde_json::from_str(&encoded(Encoding::Ecs, SyslogPayload::Cef, &record)).unwrap();
        let id = record.id();
        assert_eq!(document["event"]["id"], id);
        assert_eq!(document["ecs"]["version"], "8.11.0");
        assert_eq!(
            document["event"]["dataset"],
            document["data_stream"]["dataset"]
        );
        let timestamp = document["@timestamp"].as_str().unwrap();
        assert_eq!(
            fim_model::Timestamp::parse(timestamp),
            record.event_time(),
            "{id}"
        );
        assert!(document["event"]["type"].is_array(), "{id}");
        assert!(document["event"]["category"].is_array(), "{id}");
        assert!(document["event"].get("ingested").is_none(), "{id}");
        if record.kind() == RecordKind::Incident {
            continue;
        }

        let registry = record.is_registry();
        let path_key = if registry { "registry" } else { "file" };
        assert_eq!(
            document[path_key]["path"].as_str(),
            record.full_path().as_deref(),
            "{id}"
        );
        assert_eq!(
            document["host"]["id"].as_str(),
            record.asset().agent_id().as_deref(),
            "{id}"
        );
        assert_eq!(
            document["process"]["pid"].as_i64(),
            record.actor().process_id(),
            "{id}"
        );
        assert_eq!(
            document["user"]["id"].as_str(),
            record.actor().user_id().as_deref(),
            "{id}"
        );
        let user = record
            .actor()
            .user_name()
            .map(|u| split_domain_user(&u).1.to_owned());
        assert_eq!(document["user"]["name"].as_str(), user.as_deref(), "{id}");
        assert_eq!(
            document["organization"]["id"].as_str(),
            record.customer_id().as_deref(),
            "{id}"
        );
        assert_eq!(
            document["event"]["severity"].as_u64(),
            record.severity().map(|s| u64::from(s.level())),
            "{id}"
        );
        for mac in document["host"]["mac"].as_array().into_iter().flatten() {
            let mac = mac.as_str().unwrap();
            assert!(
                mac.bytes()
                    .all(|b| b == b'-' || b.is_ascii_digit() || b.is_ascii_uppercase()),
                "{id}: {mac}"
            );
        }
        if registry {
            assert_eq!(document["event"]["category"][0], "registry");
            assert_ne!(
                document["event"]["type"][0], "info",
                "{id}: registry has no info type"
            );
        }
        for key in ["_case", "newField", "class", "type"] {
            if let Some(value) = record.get(key) {
                let snake = if key == "newField" { "new_field" } else { key };
                assert_eq!(
                    document["qualys"]["fim"][snake],
                    serde_json::to_value(value).unwrap(),
                    "{id}: {key}"
                );
            }
        }
    }
}
