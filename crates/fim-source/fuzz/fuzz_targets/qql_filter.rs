//! Differential target for the filters and request paths the poller builds.
//! The QQL parser and evaluator of `fim-sim` stand in for the Qualys API.
//!
//! Input layout: byte 0 picks the lane (`processedTime`, `createdBy.date`,
//! `lastUpdatedBy.date`), bytes 1..9 the window start, bytes 9..13 the
//! window length in ms, and the rest is the user's filter, which also serves
//! as an incident id. Checked:
//!
//! - the window parses as exactly the inclusive range `[from, to]` on the
//!   lane's field and selects exactly the records inside it;
//! - a user filter that `check_user_filter` accepts cannot change what the
//!   window applies to. The built filter is `user AND window`, or invalid
//!   QQL that the API rejects. The user filter alone parses if and only if
//!   the built filter does;
//! - every filter on one line that the parser accepts passes
//!   `check_user_filter`;
//! - an incident id that `is_valid_path_segment` accepts stays one
//!   unchanged path segment of the request URL;
//! - the `searchAfter` cursor round-trips through JSON.

#![no_main]

use std::sync::Arc;

use fim_sim::qql::{self, Filter, Literal};
use fim_sim::record::{Record as SimRecord, RecordKind as SimKind};
use fim_source::query::{OrderField, check_user_filter, combine, time_window};
use libfuzzer_sys::fuzz_target;
use percent_encoding::percent_decode_str;

/// Epoch ms of 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the
/// instants a window can spell in RFC 3339 with a four-digit year.
const EARLIEST_MS: i64 = -62_167_219_200_000;
const LATEST_MS: i64 = 253_402_300_799_999;

const HEADER_LEN: usize = 13;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER_LEN {
        return;
    }
    let field = match data[0] % 3 {
        0 => OrderField::ProcessedTime,
        1 => OrderField::CreatedDate,
        _ => OrderField::UpdatedDate,
    };
    let start = u64::from_le_bytes(data[1..9].try_into().unwrap_or_default());
    let span = u32::from_le_bytes(data[9..13].try_into().unwrap_or_default());
    let span_count = (LATEST_MS - EARLIEST_MS) as u64 + 1;
    let from_ms = EARLIEST_MS + (start % span_count) as i64;
    let to_ms = from_ms.saturating_add(i64::from(span)).min(LATEST_MS);
    let text = String::from_utf8_lossy(&data[HEADER_LEN..]);

    check_window(field, from_ms, to_ms);
    check_user_filter_meaning(&text, from_ms, to_ms);
    check_incident_path(&text);
    check_search_after(from_ms, &text);
});

fn check_window(field: OrderField, from_ms: i64, to_ms: i64) {
    let text = time_window(field, from_ms, to_ms);
    let fields = fields_of(field);
    let window = match qql::parse(&text, fields) {
        Ok(window) => window,
        Err(err) => panic!("the window {text:?} is not valid QQL: {err}"),
    };
    let expected = Filter::Range {
        field: field.name().to_owned(),
        from: Literal::Time(from_ms),
        to: Literal::Time(to_ms),
    };
    assert_eq!(window, expected, "the window {text:?} means another range");

    for time_ms in [
        from_ms - 1,
        from_ms,
        from_ms + (to_ms - from_ms) / 2,
        to_ms,
        to_ms + 1,
    ] {
        let inside = (from_ms..=to_ms).contains(&time_ms);
        let record = record_at(field, time_ms);
        assert_eq!(
            window.matches(&record),
            inside,
            "window {text:?} at {time_ms}"
        );
    }
}

fn check_user_filter_meaning(user: &str, from_ms: i64, to_ms: i64) {
    let fields = fim_sim::EVENT_FIELDS;
    let alone = qql::parse(user.trim(), fields);

    if let Err(problem) = check_user_filter(user) {
        assert!(!problem.is_empty(), "a rejection without a reason");
        // The API's parser must not accept what the check rejects, or valid
        // filters would be refused. Line breaks are the exception: the
        // configuration takes a filter on one line even where QQL would
        // accept one inside a quoted value.
        if user.contains(['\n', '\r']) {
            return;
        }
        assert!(
            alone.is_err(),
            "the check rejects the valid filter {user:?}: {problem}"
        );
        return;
    }
    let window_text = time_window(OrderField::ProcessedTime, from_ms, to_ms);
    let built = combine(user, &window_text);
    if user.trim().is_empty() {
        assert_eq!(
            built, window_text,
            "an empty user filter changed the window"
        );
        return;
    }

    match (alone, qql::parse(&built, fields)) {
        (Ok(alone), Ok(built_filter)) => {
            let expected = Filter::And(vec![alone, window_on_events(from_ms, to_ms)]);
            assert_eq!(
                built_filter, expected,
                "{built:?} does not mean user AND window"
            );
        }
        (Ok(_), Err(err)) => {
            // Wrapping in parentheses adds one level of nesting.
            assert!(
                err.message.contains("deeper than"),
                "{built:?} became invalid: {err}"
            );
        }
        (Err(err), Ok(built_filter)) => {
            panic!("the invalid filter {user:?} ({err}) became the valid {built_filter:?}");
        }
        (Err(_), Err(_)) => {}
    }
}

fn window_on_events(from_ms: i64, to_ms: i64) -> Filter {
    Filter::Range {
        field: "processedTime".to_owned(),
        from: Literal::Time(from_ms),
        to: Literal::Time(to_ms),
    }
}

fn check_incident_path(incident: &str) {
    if !fim_source::query::is_valid_path_segment(incident) {
        return;
    }
    let Ok(gateway) = url::Url::parse("https://gateway.example.test/") else {
        panic!("the test gateway URL is invalid");
    };
    let segments = vec![
        "fim".to_owned(),
        "v2".to_owned(),
        "incidents".to_owned(),
        incident.to_owned(),
        "events".to_owned(),
        "search".to_owned(),
    ];
    let url = fim_source::fuzzing::join_url(&gateway, &segments);
    assert_eq!(url.host_str(), Some("gateway.example.test"), "{url}");
    assert_eq!(url.query(), None, "{url}");
    assert_eq!(url.fragment(), None, "{url}");
    let Some(parsed) = url.path_segments() else {
        panic!("{url} has no path");
    };
    let decoded: Vec<String> = parsed
        .map(|segment| percent_decode_str(segment).decode_utf8_lossy().into_owned())
        .collect();
    assert_eq!(decoded, segments, "{url}");
}

fn check_search_after(time_ms: i64, id: &str) {
    let cursor = serde_json::json!([time_ms, id]);
    let Ok(text) = serde_json::to_string(&cursor) else {
        panic!("the cursor does not serialize");
    };
    let Ok(back) = serde_json::from_str::<serde_json::Value>(&text) else {
        panic!("the cursor {text} does not parse");
    };
    assert_eq!(back, cursor);
}

fn fields_of(field: OrderField) -> &'static [&'static str] {
    match field {
        OrderField::ProcessedTime => fim_sim::EVENT_FIELDS,
        OrderField::CreatedDate | OrderField::UpdatedDate => fim_sim::INCIDENT_FIELDS,
    }
}

fn record_at(field: OrderField, time_ms: i64) -> SimRecord {
    let (kind, order_ms, updated_ms) = match field {
        OrderField::ProcessedTime => (SimKind::Event, time_ms, None),
        OrderField::CreatedDate => (SimKind::Incident, time_ms, None),
        OrderField::UpdatedDate => (SimKind::Incident, 0, Some(time_ms)),
    };
    SimRecord {
        kind,
        id: Arc::from("record"),
        json: Box::from("{}"),
        order_ms,
        date_time_ms: None,
        updated_ms,
        incident_id: None,
        visible_at_ms: 0,
    }
}
