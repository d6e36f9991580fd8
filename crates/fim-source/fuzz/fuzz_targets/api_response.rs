//! Arbitrary bytes as a Qualys API response body, through every reader the
//! client applies to one: search pages of every stream and API version, the
//! `sortValues` paging continues after, count bodies, error bodies and the
//! JWT from `POST /auth`.

#![no_main]

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use fim_model::json::JsonValue;
use fim_model::{ApiVersion, Record, RecordError, RecordKind, Timestamp};
use fim_source::fuzzing;
use libfuzzer_sys::fuzz_target;

const FETCHED_AT: Timestamp = Timestamp::from_unix_ms(1_714_564_800_000);

/// Maximum length of a `server_reason` result, in characters: 300 and an
/// ellipsis.
const MAX_REASON_CHARS: usize = 301;

fuzz_target!(|data: &[u8]| {
    // The client reads bodies with `reqwest::Response::text`, which replaces
    // invalid UTF-8 the same way.
    let body = String::from_utf8_lossy(data);
    for kind in RecordKind::ALL {
        for version in [ApiVersion::V1, ApiVersion::V2, ApiVersion::V3] {
            check_page(kind, version, &body);
        }
    }
    check_count(&body);
    check_error_reason(&body);
    check_token(body.trim());
    // The body as the JWT's claims, so the fuzzer reaches the `exp` reader.
    check_token(&format!(
        "header.{}.signature",
        URL_SAFE_NO_PAD.encode(data)
    ));
});

/// Comparable form of a page: records as they are, errors as their text.
type Outcome = Result<Vec<Result<Record, String>>, String>;

fn parse_page(kind: RecordKind, version: ApiVersion, body: &str) -> Outcome {
    Record::parse_page(kind, body, FETCHED_AT, version)
        .map(|items| {
            items
                .into_iter()
                .map(|item| item.map_err(|err: RecordError| err.to_string()))
                .collect()
        })
        .map_err(|err| err.to_string())
}

fn check_page(kind: RecordKind, version: ApiVersion, body: &str) {
    let outcome = parse_page(kind, version, body);
    assert_eq!(
        outcome,
        parse_page(kind, version, body),
        "parsing is not deterministic"
    );

    let client_page = fuzzing::parse_page(kind, version, body);
    assert_eq!(
        client_page.is_ok(),
        outcome.is_ok(),
        "the client and the model disagree"
    );
    let (Ok(items), Ok(client_page)) = (outcome, client_page) else {
        return;
    };
    assert_eq!(
        client_page.items.len(),
        items.len(),
        "the client lost or added items"
    );

    for (item, client_item) in items.iter().zip(&client_page.items) {
        assert_eq!(
            item.is_ok(),
            client_item.is_ok(),
            "the client read an item differently"
        );
        if let Ok(record) = item {
            check_record(kind, version, record);
        }
    }

    if !version.wraps_records() {
        assert_eq!(
            client_page.last_sort_values, None,
            "v1 pages have no sortValues"
        );
        return;
    }
    if let Some(values) = &client_page.last_sort_values {
        assert!(
            values.is_array(),
            "paging would continue after a non-array {values}"
        );
    }
    // Paging continues after the last item's sortValues; when that item
    // parsed, they must be the ones the record carries.
    if let Some(Ok(last)) = items.last() {
        let carried = last
            .fetch()
            .and_then(|fetch| fetch.sort_values.as_ref())
            .filter(|values| values.as_array().is_some())
            .map(to_serde);
        assert_eq!(
            client_page.last_sort_values, carried,
            "paging cursor differs from the record's sortValues"
        );
    }
}

/// Checks that a parsed record keeps its id and that its source object
/// serializes to JSON that parses back to the same record.
fn check_record(kind: RecordKind, version: ApiVersion, record: &Record) {
    assert!(!record.id().trim().is_empty(), "a record has a blank id");
    let source_id = record.source().get("id").and_then(JsonValue::as_text);
    assert_eq!(
        source_id.as_deref(),
        Some(record.id()),
        "the id is not the source's id"
    );
    assert_eq!(record.kind(), kind);
    assert_eq!(record.fetch().map(|fetch| fetch.api_version), Some(version));

    let source = JsonValue::Object(record.source().clone());
    let Ok(text) = serde_json::to_string(&source) else {
        panic!(
            "the source object of record {:?} does not serialize",
            record.id()
        );
    };
    let reparsed = match Record::from_json(kind, &text) {
        Ok(reparsed) => reparsed,
        Err(err) => panic!("the serialized source does not parse again: {err}"),
    };
    assert_eq!(reparsed.id(), record.id());
    assert_eq!(
        reparsed.source(),
        record.source(),
        "the source changed on a round trip"
    );
    assert_eq!(reparsed.processed_time(), record.processed_time());
    assert_eq!(reparsed.created_time(), record.created_time());
    assert_eq!(reparsed.updated_time(), record.updated_time());
    assert_eq!(reparsed.dedup_key(), record.dedup_key());
}

fn to_serde(value: &JsonValue) -> serde_json::Value {
    match serde_json::to_value(value) {
        Ok(value) => value,
        Err(err) => panic!("a parsed JSON value does not convert: {err}"),
    }
}

fn check_count(body: &str) {
    if let Ok(count) = fuzzing::parse_count(body) {
        assert!(
            count.is_object(),
            "a count result that is not an object was accepted"
        );
    }
}

fn check_error_reason(body: &str) {
    let reason = fuzzing::server_reason(body);
    assert!(!reason.is_empty(), "an empty reason for body {body:?}");
    assert!(
        reason.chars().count() <= MAX_REASON_CHARS,
        "a reason of {} characters",
        reason.chars().count()
    );
}

fn check_token(token: &str) {
    let expiry = fuzzing::token_expiry_ms(token);
    for now_ms in [0, 1_714_564_800_000, 4_102_444_800_000] {
        for margin in [
            Duration::ZERO,
            Duration::from_secs(300),
            Duration::from_secs(86_400),
        ] {
            let renew_at = fuzzing::token_renew_at_ms(token, now_ms, margin);
            assert!(
                renew_at >= now_ms,
                "renewal at {renew_at} before receipt at {now_ms}"
            );
            if let Some(expiry) = expiry.filter(|expiry| *expiry > now_ms) {
                assert!(
                    renew_at <= expiry,
                    "renewal at {renew_at} after expiry at {expiry}"
                );
            }
        }
    }
}
