//! Hostile search responses: each queued [`Spoil`] rewrites the next
//! successful search page into something a real gateway or a buggy API
//! release could send, so the forwarder's handling of it can be tested
//! through real HTTP.
//!
//! Queue them with `POST /__sim/faults`, for example
//! `{"spoil-pages": ["missing-id", "not-json"]}`. The request log names the
//! spoil applied (and the id of the record it touched) in its `fault` field.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use serde_json::value::RawValue;

/// Size of the padding field [`Spoil::HugeRecord`] adds: 10 MiB.
pub const HUGE_RECORD_PADDING: usize = 10 * 1024 * 1024;

/// Array depth of the field [`Spoil::DeepNesting`] adds.
pub const DEEP_NESTING_DEPTH: usize = 10_000;

/// Placeholder string for raw bytes that `serde_json` cannot write.
const PLACEHOLDER: &str = "__fim_sim_spoil__";

/// One way to spoil a search page.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Spoil {
    /// The body is an HTML error page sent with status 200.
    NotJson,
    /// The records arrive wrapped in an object instead of a bare array.
    WrongShape,
    /// The middle record has no `id` member.
    MissingId,
    /// The middle record carries an extra 10 MiB string field.
    HugeRecord,
    /// The middle record carries an array nested 10,000 levels deep.
    DeepNesting,
    /// A string in the middle record contains bytes that are not UTF-8.
    InvalidUtf8,
    /// The middle record appears twice in a row.
    DuplicateId,
    /// No item has `sortValues` (v2/v3 pages; v1 pages have none anyway).
    MissingSortValues,
}

impl Spoil {
    /// Returns whether the spoil rewrites one record, and so needs a page
    /// with at least one record to mean anything.
    pub fn needs_record(self) -> bool {
        !matches!(self, Self::NotJson | Self::WrongShape)
    }

    fn name(self) -> &'static str {
        match self {
            Self::NotJson => "not-json",
            Self::WrongShape => "wrong-shape",
            Self::MissingId => "missing-id",
            Self::HugeRecord => "huge-record",
            Self::DeepNesting => "deep-nesting",
            Self::InvalidUtf8 => "invalid-utf8",
            Self::DuplicateId => "duplicate-id",
            Self::MissingSortValues => "missing-sort-values",
        }
    }
}

/// A spoiled page and the note the request log keeps for it.
#[derive(Debug)]
pub struct Spoiled {
    pub body: Vec<u8>,
    /// `spoil:<name>`, followed by `:<id>` of the record it changed.
    pub note: String,
}

/// Applies `spoil` to `body`, a search page the simulator built (a JSON
/// array of records, or of `{"sortValues", "data"}` items). Returns `None`
/// when the page has no record for a record-level spoil, so it can wait for
/// the next page.
pub fn apply(spoil: Spoil, body: &[u8]) -> Option<Spoiled> {
    let note = |id: Option<&str>| match id {
        Some(id) => format!("spoil:{}:{id}", spoil.name()),
        None => format!("spoil:{}", spoil.name()),
    };
    match spoil {
        Spoil::NotJson => {
            return Some(Spoiled {
                body: b"<html><head><title>502 Bad Gateway</title></head>\
                        <body><h1>Bad Gateway</h1></body></html>"
                    .to_vec(),
                note: note(None),
            });
        }
        Spoil::WrongShape => {
            let mut wrapped = b"{\"records\":".to_vec();
            wrapped.extend_from_slice(body);
            wrapped.push(b'}');
            return Some(Spoiled {
                body: wrapped,
                note: note(None),
            });
        }
        _ => {}
    }

    let mut items: Vec<Box<RawValue>> = serde_json::from_slice(body).ok()?;
    if items.is_empty() {
        return None;
    }
    if spoil == Spoil::MissingSortValues {
        for item in &mut items {
            let mut value: Value = serde_json::from_str(item.get()).ok()?;
            if let Some(object) = value.as_object_mut() {
                object.remove("sortValues");
            }
            *item = RawValue::from_string(value.to_string()).ok()?;
        }
        return Some(Spoiled {
            body: join(&items, None),
            note: note(None),
        });
    }

    let middle = items.len() / 2;
    let mut item: Value = serde_json::from_str(items[middle].get()).ok()?;
    let record = match item.get_mut("data") {
        Some(data) if data.is_object() => data,
        _ => &mut item,
    };
    let id = record
        .get("id")
        .map(|id| id.as_str().map_or_else(|| id.to_string(), str::to_owned));
    let fields = record.as_object_mut()?;
    let mut raw_field = None;
    match spoil {
        Spoil::MissingId => {
            fields.remove("id");
        }
        Spoil::HugeRecord => {
            fields.insert(
                "hostilePadding".to_owned(),
                Value::String("x".repeat(HUGE_RECORD_PADDING)),
            );
        }
        Spoil::DeepNesting => {
            fields.insert("hostileNesting".to_owned(), Value::from(PLACEHOLDER));
            let mut nested = "[".repeat(DEEP_NESTING_DEPTH).into_bytes();
            nested.extend(std::iter::repeat_n(b']', DEEP_NESTING_DEPTH));
            raw_field = Some(nested);
        }
        Spoil::InvalidUtf8 => {
            fields.insert("hostileBytes".to_owned(), Value::from(PLACEHOLDER));
            raw_field = Some(b"\"bad \xff\xfe bytes\"".to_vec());
        }
        Spoil::DuplicateId => {
            let copy = items[middle].clone();
            items.insert(middle + 1, copy);
        }
        Spoil::NotJson | Spoil::WrongShape | Spoil::MissingSortValues => {}
    }
    if spoil != Spoil::DuplicateId {
        items[middle] = RawValue::from_string(item.to_string()).ok()?;
    }
    Some(Spoiled {
        body: join(&items, raw_field.as_deref()),
        note: note(id.as_deref()),
    })
}

/// Writes `items` as a JSON array, with `raw_field` in place of the
/// placeholder string.
fn join(items: &[Box<RawValue>], raw_field: Option<&[u8]>) -> Vec<u8> {
    let quoted = format!("\"{PLACEHOLDER}\"");
    let mut body = Vec::with_capacity(items.iter().map(|item| item.get().len() + 1).sum());
    body.push(b'[');
    for (index, item) in items.iter().enumerate() {
        if index > 0 {
            body.push(b',');
        }
        let text = item.get();
        match (raw_field, text.find(&quoted)) {
            (Some(raw), Some(at)) => {
                body.extend_from_slice(&text.as_bytes()[..at]);
                body.extend_from_slice(raw);
                body.extend_from_slice(&text.as_bytes()[at + quoted.len()..]);
            }
            _ => body.extend_from_slice(text.as_bytes()),
        }
    }
    body.push(b']');
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_PAGE: &str = r#"[{"sortValues":[1,"a"],"data":{"id":"a","n":1}},{"sortValues":[2,"b"],"data":{"id":"b","n":2}},{"sortValues":[3,"c"],"data":{"id":"c","n":3}}]"#;
    const V1_PAGE: &str = r#"[{"id":"a"},{"id":"b"},{"id":"c"}]"#;

    fn spoiled(spoil: Spoil, page: &str) -> Spoiled {
        apply(spoil, page.as_bytes()).expect("the page has records")
    }

    fn page_items(body: &[u8]) -> Vec<Value> {
        serde_json::from_slice(body).expect("the spoiled page is JSON")
    }

    #[test]
    fn page_level_spoils_break_the_array() {
        let html = spoiled(Spoil::NotJson, V2_PAGE);
        assert!(serde_json::from_slice::<Value>(&html.body).is_err());
        assert_eq!(html.note, "spoil:not-json");

        let wrapped = spoiled(Spoil::WrongShape, "[]");
        let value: Value = serde_json::from_slice(&wrapped.body).unwrap();
        assert_eq!(value, serde_json::json!({"records": []}));
    }

    #[test]
    fn record_spoils_wait_for_records() {
        for spoil in [
            Spoil::MissingId,
            Spoil::DuplicateId,
            Spoil::MissingSortValues,
        ] {
            assert!(spoil.needs_record());
            assert!(apply(spoil, b"[]").is_none(), "{spoil:?}");
        }
    }

    #[test]
    fn missing_id_removes_middle_id() {
        let result = spoiled(Spoil::MissingId, V2_PAGE);
        assert_eq!(result.note, "spoil:missing-id:b");
        let items = page_items(&result.body);
        assert_eq!(items[1]["data"], serde_json::json!({"n": 2}));
        assert_eq!(items[0]["data"]["id"], "a");

        let v1 = spoiled(Spoil::MissingId, V1_PAGE);
        assert_eq!(v1.note, "spoil:missing-id:b");
        assert_eq!(page_items(&v1.body)[1], serde_json::json!({}));
    }

    #[test]
    fn duplicate_id_repeats_the_middle_item() {
        let result = spoiled(Spoil::DuplicateId, V2_PAGE);
        let items = page_items(&result.body);
        let ids: Vec<&str> = items
            .iter()
            .map(|item| item["data"]["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["a", "b", "b", "c"]);
    }

    #[test]
    fn missing_sort_values_strips_every_item() {
        let result = spoiled(Spoil::MissingSortValues, V2_PAGE);
        for item in page_items(&result.body) {
            assert!(item.get("sortValues").is_none());
            assert!(item.get("data").is_some());
        }
    }

    #[test]
    fn invalid_utf8_adds_raw_bytes() {
        let result = spoiled(Spoil::InvalidUtf8, V2_PAGE);
        assert!(std::str::from_utf8(&result.body).is_err());
        let lossy = String::from_utf8_lossy(&result.body);
        let items = page_items(lossy.as_bytes());
        assert_eq!(
            items[1]["data"]["hostileBytes"],
            "bad \u{fffd}\u{fffd} bytes"
        );
        assert_eq!(result.note, "spoil:invalid-utf8:b");
    }

    #[test]
    fn deep_and_huge_add_one_field() {
        let deep = spoiled(Spoil::DeepNesting, V1_PAGE);
        let text = std::str::from_utf8(&deep.body).unwrap();
        assert!(text.contains(&format!(
            "\"hostileNesting\":{}",
            "[".repeat(DEEP_NESTING_DEPTH)
        )));
        assert!(!text.contains(PLACEHOLDER));
        let ids: Vec<Box<RawValue>> = serde_json::from_slice(&deep.body).unwrap();
        assert_eq!(ids.len(), 3);

        let huge = spoiled(Spoil::HugeRecord, V1_PAGE);
        assert!(huge.body.len() > HUGE_RECORD_PADDING);
        let items = page_items(&huge.body);
        assert_eq!(
            items[1]["hostilePadding"].as_str().map(str::len),
            Some(HUGE_RECORD_PADDING)
        );
    }
}
