//! Property tests: records whose every text field is an arbitrary string,
//! rich in separators (`|`, `=`, `\`, `"`, `]`), CR, LF, NUL, other control
//! characters, multi-byte characters and emoji. For every format the output
//! is one line, parses back with an independent parser, and injected text
//! never becomes a separate field, header or frame.

// Helpers outside `#[test]` functions unwrap too; a failure is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::cef_parser;
use common::{cef_expected, config, source_without_content};
use fim_model::{Record, RecordKind};
use fim_transform::config::{Encoding, SyslogPayload};
use fim_transform::{Encoder, build};
use proptest::prelude::*;
use serde_json::{Value, json};

/// Characters that break naive encoders, mixed into arbitrary ones.
const HOSTILE: &[char] = &[
    '|', '=', '\\', '"', ']', '[', ' ', '\r', '\n', '\0', '\t', '\u{1b}', '\u{7f}', '\u{85}',
    '\u{2028}', 'é', '共', '📁', '\u{feff}',
];

fn hostile_string() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![any::<char>(), prop::sample::select(HOSTILE)],
        0..24,
    )
    .prop_map(String::from_iter)
}

/// Text that may also be a forged CEF header or syslog frame.
fn field() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => hostile_string(),
        1 => hostile_string().prop_map(|s| format!("{s}\nCEF:0|Fake|Injected|1|1|forged|10|act=x")),
        1 => hostile_string().prop_map(|s| format!("{s}\n<13>1 2024-01-01T00:00:00Z h a - - - forged")),
        1 => hostile_string().prop_map(|s| format!("{s} cs1Label=Forged act=forged")),
        1 => hostile_string().prop_map(|s| format!("{s}\" forged=\"x\"] [forged@1 a=\"b")),
    ]
}

#[derive(Debug, Clone)]
struct Fields {
    id: String,
    path: String,
    name: String,
    object_type: String,
    action: String,
    user: String,
    process: String,
    host: String,
    agent: String,
    tag: String,
    profile: String,
    content: String,
    severity: u8,
    kind: RecordKind,
}

fn fields() -> impl Strategy<Value = Fields> {
    let text = (
        field(),
        field(),
        field(),
        field(),
        field(),
        field(),
        field(),
        field(),
    );
    let more = (field(), field(), field(), field(), 1u8..=5, 0usize..4);
    (text, more).prop_map(
        |(
            (id, path, name, object_type, action, user, process, host),
            (agent, tag, profile, content, severity, kind),
        )| {
            Fields {
                // An empty or blank id is rejected by the model, so keep one
                // visible character.
                id: format!("i{id}"),
                path,
                name,
                object_type,
                action,
                user,
                process,
                host,
                agent,
                tag,
                profile,
                content,
                severity,
                kind: RecordKind::ALL[kind],
            }
        },
    )
}

fn record(fields: &Fields) -> Record {
    let source = json!({
        "id": fields.id,
        "dateTime": "2024-05-01T10:16:28.163+0000",
        "processedTime": 1_714_558_601_502_i64,
        "fullPath": fields.path,
        "name": fields.name,
        "type": fields.object_type,
        "action": fields.action,
        "severity": fields.severity,
        "platform": "LINUX",
        "actor": {"process": fields.process, "processID": 7, "userName": fields.user, "userID": fields.user},
        "asset": {
            "agentId": fields.agent,
            "name": fields.host,
            "interfaces": [{"address": "10.0.0.1", "macAddress": fields.tag, "hostname": fields.host}],
            "tags": [fields.tag],
            "operatingSystem": fields.profile,
        },
        "profiles": [{"name": fields.profile, "category": {"name": fields.tag}, "rules": [{"id": fields.tag, "name": fields.name}]}],
        "oldContent": fields.content,
        "newContent": fields.content,
        "status": fields.action,
        "comment": fields.content,
        "createdBy": {"date": 1_714_552_981_681_i64, "user": {"name": fields.user, "id": fields.agent}},
        fields.name.clone(): fields.content,
    });
    Record::from_json(fields.kind, &source.to_string()).unwrap()
}

fn encode(encoding: Encoding, payload: SyslogPayload, record: &Record) -> String {
    let encoder: Box<dyn Encoder> = build(&config(encoding, payload)).unwrap();
    let mut out = Vec::new();
    encoder.encode(record, &mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn assert_one_line(output: &str) -> Result<(), TestCaseError> {
    prop_assert!(!output.contains('\n'), "LF in output: {output:?}");
    prop_assert!(!output.contains('\r'), "CR in output: {output:?}");
    prop_assert!(!output.contains('\0'), "NUL in output: {output:?}");
    Ok(())
}

/// Extension keys the CEF encoder may write; anything else was injected.
const CEF_KEYS: &[&str] = &[
    "rt",
    "deviceCustomDate1",
    "deviceCustomDate1Label",
    "deviceCustomDate2",
    "deviceCustomDate2Label",
    "externalId",
    "act",
    "cat",
    "fname",
    "filePath",
    "fileType",
    "fileHash",
    "oldFileHash",
    "oldFilePath",
    "oldFileName",
    "suser",
    "suid",
    "sproc",
    "spid",
    "dvchost",
    "dhost",
    "dvc",
    "dst",
    "dvcmac",
    "deviceExternalId",
    "msg",
    "cs1",
    "cs1Label",
    "cs2",
    "cs2Label",
    "cs3",
    "cs3Label",
    "cs4",
    "cs4Label",
    "cs5",
    "cs5Label",
    "cs6",
    "cs6Label",
    "cn1",
    "cn1Label",
    "flexString1",
    "flexString1Label",
    "flexString2",
    "flexString2Label",
    "outcome",
    "start",
    "end",
    "reason",
];

fn check_cef(line: &str, record: &Record, fields: &Fields) -> Result<(), TestCaseError> {
    let cef = cef_parser::parse(line).map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
    prop_assert_eq!(&cef.vendor, "Qualys");
    prop_assert_eq!(&cef.product, "FIM");
    prop_assert_eq!(&cef.class_id, &fim_transform::cef::class_id(record));
    prop_assert!(cef.class_id.starts_with("FIM:"));
    for key in cef.keys() {
        prop_assert!(CEF_KEYS.contains(&key), "injected key {key}");
    }
    let expected_id = Some(cef_expected(&fields.id, 40)).filter(|s| !s.is_empty());
    prop_assert_eq!(cef.get("externalId").map(str::to_owned), expected_id);
    if record.kind() != RecordKind::Incident {
        let expect =
            |value: &str, max: usize| Some(cef_expected(value, max)).filter(|s| !s.is_empty());
        prop_assert_eq!(
            cef.get("filePath").map(str::to_owned),
            expect(&fields.path, 1023)
        );
        prop_assert_eq!(
            cef.get("fname").map(str::to_owned),
            expect(&fields.name, 1023)
        );
        prop_assert_eq!(
            cef.get("suser").map(str::to_owned),
            expect(&fields.user, 1023)
        );
        prop_assert_eq!(
            cef.get("sproc").map(str::to_owned),
            expect(&fields.process, 1023)
        );
        prop_assert_eq!(
            cef.get("deviceExternalId").map(str::to_owned),
            expect(&fields.agent, 255)
        );
        prop_assert_eq!(cef.get("cs1Label"), cef.get("cs1").map(|_| "Profiles"));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn cef_is_one_parsable_line(fields in fields()) {
        let record = record(&fields);
        let line = encode(Encoding::Cef, SyslogPayload::Cef, &record);
        assert_one_line(&line)?;
        prop_assert!(line.starts_with("CEF:0|Qualys|FIM|"));
        check_cef(&line, &record, &fields)?;
    }

    #[test]
    fn rfc5424_is_one_frame_with_one_sd_element(fields in fields()) {
        let record = record(&fields);
        for payload in [SyslogPayload::Cef, SyslogPayload::Json] {
            let line = encode(Encoding::SyslogRfc5424, payload, &record);
            assert_one_line(&line)?;
            let message = syslog_rfc5424::parse_message(&line)
                .map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
            prop_assert_eq!(message.sd.len(), 1);
            let params = message.sd.find_sdid("fim@99999");
            prop_assert!(params.is_some());
            let params = params.unwrap();
            for key in params.keys() {
                prop_assert!(["id", "stream", "agentId", "sev"].contains(&key.as_str()), "injected {key}");
            }
            // syslog_rfc5424 drops the backslash of every escape, so `\n`
            // (the escaped LF) reads back as `n`.
            let expected_id: String = fields.id.chars().map(|c| match c {
                '\n' => 'n',
                '\r' => 'r',
                '\0' => '0',
                c if c.is_control() && c != '\t' => char::REPLACEMENT_CHARACTER,
                c => c,
            }).collect();
            prop_assert_eq!(params.get("id"), Some(&expected_id));
            let hostname = message.hostname.unwrap_or_default();
            prop_assert!(hostname.bytes().all(|b| (33..=126).contains(&b)));
            match payload {
                SyslogPayload::Cef => check_cef(&message.msg, &record, &fields)?,
                SyslogPayload::Json => {
                    let document: Value = serde_json::from_str(&message.msg)
                        .map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(&document["data"], &source_without_content(&record));
                }
            }
        }
    }

    #[test]
    fn rfc3164_is_one_short_frame(fields in fields()) {
        let record = record(&fields);
        for payload in [SyslogPayload::Cef, SyslogPayload::Json] {
            let line = encode(Encoding::SyslogRfc3164, payload, &record);
            assert_one_line(&line)?;
            prop_assert!(line.len() <= 1024);
            let message = syslog_loose::parse_message_with_year_exact_tz(
                &line,
                |_| 2024,
                Some(chrono::Utc),
                syslog_loose::Variant::RFC3164,
            )
            .map_err(|e| TestCaseError::fail(format!("{e}: {line:?}")))?;
            prop_assert_eq!(message.appname, Some("qualysfim"));
            if payload == SyslogPayload::Cef {
                // A message cut to 1024 bytes carries a prefix of the CEF
                // line; an uncut one carries all of it.
                let full = encode(Encoding::Cef, SyslogPayload::Cef, &record);
                prop_assert!(full.starts_with(message.msg));
                if message.msg == full {
                    check_cef(message.msg, &record, &fields)?;
                }
            }
        }
    }

    #[test]
    fn json_formats_are_one_line_and_lossless(fields in fields()) {
        let record = record(&fields);
        let json = encode(Encoding::Json, SyslogPayload::Cef, &record);
        assert_one_line(&json)?;
        let document: Value = serde_json::from_str(&json).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(&document["data"], &source_without_content(&record));

        let flat = encode(Encoding::FlatJson, SyslogPayload::Cef, &record);
        assert_one_line(&flat)?;
        let flat: Value = serde_json::from_str(&flat).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(flat.as_object().is_some());

        let ecs = encode(Encoding::Ecs, SyslogPayload::Cef, &record);
        assert_one_line(&ecs)?;
        let ecs: Value = serde_json::from_str(&ecs).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(ecs["event"]["id"].as_str(), Some(fields.id.as_str()));
    }

    #[test]
    fn arbitrary_json_records_never_panic(raw in any_json(4)) {
        let text = raw.to_string();
        for kind in RecordKind::ALL {
            let Ok(record) = Record::from_json(kind, &text) else { continue };
            for format in common::formats() {
                let encoder = build(&format.config).unwrap();
                let mut out = Vec::new();
                if encoder.encode(&record, &mut out).is_ok() {
                    let text = String::from_utf8(out);
                    prop_assert!(text.is_ok());
                    assert_one_line(&text.unwrap())?;
                }
            }
        }
    }
}

/// Arbitrary JSON objects whose known keys are likely to appear, with values
/// of any type, nested up to `depth`.
fn any_json(depth: u32) -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        hostile_string().prop_map(Value::String),
    ];
    let tree = leaf.prop_recursive(depth, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|members| Value::Object(members.into_iter().collect())),
        ]
    });
    (
        prop::collection::vec((key(), tree), 0..12),
        hostile_string(),
    )
        .prop_map(|(members, id)| {
            let mut object: serde_json::Map<String, Value> = members.into_iter().collect();
            object.insert("id".to_owned(), Value::String(format!("i{id}")));
            Value::Object(object)
        })
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(
            &[
                "dateTime",
                "processedTime",
                "fullPath",
                "name",
                "type",
                "action",
                "severity",
                "platform",
                "actor",
                "asset",
                "profiles",
                "oldHash",
                "newHash",
                "oldContent",
                "newContent",
                "changedAttributes",
                "incidentId",
                "customerId",
                "interfaces",
                "tags",
                "agentId",
                "processID",
                "userName",
                "userID",
                "macAddress",
                "address",
                "hostname",
                "rules",
                "category",
                "createdBy",
                "lastUpdatedBy",
                "date",
                "user",
                "status",
                "filterFromDate",
                "filterToDate",
                "created",
                "updated",
            ][..]
        )
        .prop_map(str::to_owned),
        hostile_string(),
    ]
}
