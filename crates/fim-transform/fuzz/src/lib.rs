//! The body every fuzz target shares: read the input as one JSON record of
//! each stream (and as a page of records), encode each record that parses,
//! and check the invariants every output keeps.

use fim_model::{ApiVersion, Record, RecordKind, Timestamp};
use fim_transform::config::{EncoderConfig, Encoding, SyslogPayload};

const FETCHED_AT: Timestamp = Timestamp::from_unix_ms(1_714_564_800_000);

/// Encodes `data` with `encoding` (and, for syslog, both payloads) and
/// panics when an output breaks an invariant.
pub fn run(encoding: Encoding, data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let mut records = Vec::new();
    for kind in RecordKind::ALL {
        if let Ok(record) = Record::from_json(kind, text) {
            records.push(record);
        }
    }
    for api in [ApiVersion::V1, ApiVersion::V2] {
        if let Ok(page) = Record::parse_page(RecordKind::Event, text, FETCHED_AT, api) {
            records.extend(page.into_iter().flatten());
        }
    }

    for payload in [SyslogPayload::Cef, SyslogPayload::Json] {
        let mut config = EncoderConfig::new(encoding);
        // An arbitrary private enterprise number for fuzzing only.
        config.syslog.pen = Some(99_999);
        config.syslog.payload = payload;
        config.content_max_bytes = fim_transform::config::ByteSize(16);
        let Ok(encoder) = fim_transform::build(&config) else {
            panic!("invalid fuzz configuration for {encoding:?}");
        };

        let mut out = Vec::new();
        for record in &records {
            out.clear();
            if encoder.encode(record, &mut out).is_err() {
                assert!(out.is_empty(), "an encoder wrote output and then failed");
                continue;
            }
            let Ok(line) = std::str::from_utf8(&out) else {
                panic!("output is not UTF-8");
            };
            assert!(!line.contains(['\n', '\r', '\0']), "raw CR, LF or NUL in {line:?}");
            if encoding == Encoding::SyslogRfc3164 {
                assert!(out.len() <= 1024, "RFC 3164 message of {} bytes", out.len());
            }
        }
    }
}
