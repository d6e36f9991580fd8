//! Unit tests of the response rules, the request bodies and secret
//! handling; the whole sink is tested against a fake receiver in
//! `tests/http.rs`.

use std::time::Duration;

use bytes::Bytes;
use reqwest::StatusCode;

use super::config::HttpMode;
use super::retry::{ItemOutcome, Outcome, ResponseLogic};
use super::service::{Response, parse_retry_after};
use super::{Auth, HttpConfig, Secret};

fn response(status: u16, body: &str) -> Response {
    Response {
        status: StatusCode::from_u16(status).unwrap(),
        retry_after: None,
        body: Bytes::from(body.to_owned()),
    }
}

#[test]
fn bulk_item_statuses_map_to_outcomes() {
    let body = r#"{"errors":true,"items":[
        {"create":{"status":201}},
        {"create":{"status":409,"error":{"type":"version_conflict_engine_exception"}}},
        {"create":{"status":429,"error":{"type":"es_rejected_execution_exception"}}},
        {"create":{"status":400,"error":{"type":"document_parsing_exception","reason":"bad"}}},
        {"create":{"status":503,"error":{"type":"unavailable_shards_exception"}}}
    ]}"#;
    let outcome = ResponseLogic::new(HttpMode::Elasticsearch).classify(&response(200, body), 5);
    let Outcome::PerItem(items) = outcome else {
        panic!("expected per-item outcome, got {outcome:?}");
    };
    assert_eq!(items[0], ItemOutcome::Delivered);
    assert_eq!(items[1], ItemOutcome::Delivered);
    assert!(matches!(items[2], ItemOutcome::Retry(_)));
    assert!(
        matches!(&items[3], ItemOutcome::Rejected(reason) if reason.contains("document_parsing_exception"))
    );
    assert!(matches!(items[4], ItemOutcome::Retry(_)));
}

#[test]
fn bulk_without_errors_is_delivered() {
    let outcome = ResponseLogic::new(HttpMode::Elasticsearch)
        .classify(&response(200, r#"{"errors":false,"items":[]}"#), 3);
    assert_eq!(outcome, Outcome::Delivered);
}

#[test]
fn bulk_item_count_mismatch_retries_batch() {
    let body = r#"{"errors":true,"items":[{"create":{"status":201}}]}"#;
    let outcome = ResponseLogic::new(HttpMode::Elasticsearch).classify(&response(200, body), 2);
    assert!(matches!(outcome, Outcome::Retry { .. }), "{outcome:?}");
}

#[test]
fn hec_invalid_event_number_splits_batch() {
    let body = r#"{"text":"Invalid data format","code":6,"invalid-event-number":2}"#;
    let outcome = ResponseLogic::new(HttpMode::SplunkHec).classify(&response(400, body), 4);
    let Outcome::PerItem(items) = outcome else {
        panic!("expected per-item outcome, got {outcome:?}");
    };
    assert_eq!(items[0], ItemOutcome::Delivered);
    assert_eq!(items[1], ItemOutcome::Delivered);
    assert!(matches!(items[2], ItemOutcome::Rejected(_)));
    assert_eq!(items[3], ItemOutcome::NotProcessed);
}

#[test]
fn hec_bad_token_is_misconfiguration() {
    let body = r#"{"text":"Invalid token","code":4}"#;
    let outcome = ResponseLogic::new(HttpMode::SplunkHec).classify(&response(403, body), 1);
    assert!(
        matches!(
            outcome,
            Outcome::Retry {
                misconfigured: true,
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[test]
fn hec_busy_retries() {
    let body = r#"{"text":"Server is busy","code":9}"#;
    let outcome = ResponseLogic::new(HttpMode::SplunkHec).classify(&response(503, body), 1);
    assert!(
        matches!(
            outcome,
            Outcome::Retry {
                misconfigured: false,
                ..
            }
        ),
        "{outcome:?}"
    );
}

#[test]
fn generic_statuses_map_to_outcomes() {
    let logic = ResponseLogic::new(HttpMode::Generic);
    assert_eq!(logic.classify(&response(204, ""), 1), Outcome::Delivered);
    assert!(matches!(
        logic.classify(&response(413, ""), 2),
        Outcome::Split { .. }
    ));
    assert!(matches!(
        logic.classify(&response(422, ""), 2),
        Outcome::Isolate { .. }
    ));
    assert!(matches!(
        logic.classify(&response(502, ""), 2),
        Outcome::Retry {
            misconfigured: false,
            ..
        }
    ));
    assert!(matches!(
        logic.classify(&response(401, ""), 2),
        Outcome::Retry {
            misconfigured: true,
            ..
        }
    ));
}

#[test]
fn retry_after_reads_seconds_and_dates() {
    assert_eq!(parse_retry_after("7"), Some(Duration::from_secs(7)));
    assert_eq!(
        parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
        Some(Duration::ZERO)
    );
    assert_eq!(parse_retry_after("soon"), None);
}

#[test]
fn debug_output_hides_secrets() {
    let config: HttpConfig = toml::from_str(
        r#"
        mode = "splunk_hec"
        url = "https://splunk.example.org:8088/services/collector/event"
        token = "hec-token-value"
        auth = { strategy = "basic", user = "fim", password = "basic-password" }
        "#,
    )
    .unwrap();
    let text = format!("{config:?}");
    assert!(!text.contains("hec-token-value"), "{text}");
    assert!(!text.contains("basic-password"), "{text}");
    assert!(text.contains("fim"), "{text}");
    let bearer = Auth::Bearer {
        token: Secret::new("bearer-value"),
    };
    assert!(!format!("{bearer:?}").contains("bearer-value"));
}
