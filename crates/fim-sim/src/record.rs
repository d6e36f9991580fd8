//! One stored API record: its JSON text as served, plus the few fields kept
//! typed because every search sorts or windows on them.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use serde_json::Value;

/// A record as the API serves it.
///
/// `json` is the exact object text sent to clients. Fields other than the
/// typed ones are read by parsing `json` on demand, which only filters on
/// uncommon fields pay for.
#[derive(Debug)]
pub struct Record {
    pub kind: RecordKind,
    pub id: Arc<str>,
    pub json: Box<str>,
    /// The time the stream is ordered by, in epoch ms: `processedTime` of
    /// events, `createdBy.date` of incidents.
    pub order_ms: i64,
    /// `dateTime` in epoch ms, when the record has a readable one.
    pub date_time_ms: Option<i64>,
    /// `lastUpdatedBy.date` of incidents (epoch ms).
    pub updated_ms: Option<i64>,
    /// Incident the event belongs to.
    pub incident_id: Option<Arc<str>>,
    /// Wall-clock time (epoch ms) from which searches can see the record.
    pub visible_at_ms: i64,
}

/// Events (including ignored events) or incidents: they differ in which
/// typed time fields they have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    Event,
    Incident,
}

impl Record {
    /// Parses the stored text back into a JSON tree.
    pub fn value(&self) -> Value {
        // The text was produced by serde_json from a JSON value, so it parses.
        serde_json::from_str(&self.json).unwrap_or(Value::Null)
    }
}

/// A field value as filters and sorts compare it.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    Text(String),
    Number(f64),
    Bool(bool),
    /// Epoch milliseconds, for the date fields.
    Time(i64),
}

/// Fields that hold times; filters and sorts compare them as instants.
pub const DATE_FIELDS: &[&str] = &[
    "dateTime",
    "processedTime",
    "createdBy.date",
    "lastUpdatedBy.date",
    "ignoreDate",
    "approvalDate",
    "assignDate",
    "filterFromDate",
    "filterToDate",
    "slaViolationDate",
    "asset.created",
    "asset.updated",
    "asset.lastCheckedIn",
    "asset.system.lastBoot",
];

pub fn is_date_field(field: &str) -> bool {
    DATE_FIELDS.contains(&field)
}

/// Looks up a dotted field path in a record; arrays along the path are
/// flattened, so `asset.interfaces.address` yields every address.
pub fn lookup(record: &Record, field: &str, parsed: &mut Option<Value>) -> Vec<FieldValue> {
    match (record.kind, field) {
        (_, "id") => return vec![FieldValue::Text(record.id.to_string())],
        (RecordKind::Event, "processedTime") | (RecordKind::Incident, "createdBy.date") => {
            return vec![FieldValue::Time(record.order_ms)];
        }
        (RecordKind::Incident, "lastUpdatedBy.date") => {
            if let Some(updated) = record.updated_ms {
                return vec![FieldValue::Time(updated)];
            }
        }
        (_, "dateTime") => {
            if let Some(date_time) = record.date_time_ms {
                return vec![FieldValue::Time(date_time)];
            }
        }
        (_, "incidentId") => {
            if let Some(incident) = &record.incident_id {
                return vec![FieldValue::Text(incident.to_string())];
            }
        }
        _ => {}
    }

    let value = parsed.get_or_insert_with(|| record.value());
    let mut found = Vec::new();
    collect(value, &field.split('.').collect::<Vec<_>>(), &mut found);
    if is_date_field(field) {
        found = found
            .into_iter()
            .filter_map(|value| match value {
                FieldValue::Text(text) => parse_time_ms(&text).map(FieldValue::Time),
                FieldValue::Number(ms) => Some(FieldValue::Time(ms as i64)),
                other => Some(other),
            })
            .collect();
    }
    found
}

fn collect(value: &Value, path: &[&str], out: &mut Vec<FieldValue>) {
    if let Value::Array(items) = value {
        for item in items {
            collect(item, path, out);
        }
        return;
    }
    let Some((head, rest)) = path.split_first() else {
        match value {
            Value::String(text) => out.push(FieldValue::Text(text.clone())),
            Value::Number(number) => out.push(FieldValue::Number(number.as_f64().unwrap_or(0.0))),
            Value::Bool(flag) => out.push(FieldValue::Bool(*flag)),
            Value::Null | Value::Array(_) | Value::Object(_) => {}
        }
        return;
    };
    if let Some(child) = value.get(*head) {
        collect(child, rest, out);
    }
}

/// Parses the time formats the Qualys API sends: `2019-02-26T10:16:28.163+0000`,
/// `2019-02-14T07:35:23.000Z`, RFC 3339, a date alone, or epoch
/// milliseconds written as a string.
pub fn parse_time_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if let Ok(ms) = text.parse::<i64>() {
        return Some(ms);
    }
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.timestamp_millis());
    }
    if let Ok(time) = DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(time.timestamp_millis());
    }
    if let Ok(time) = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f") {
        return Some(time.and_utc().timestamp_millis());
    }
    if let Ok(date) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return date
            .and_hms_opt(0, 0, 0)
            .map(|time| time.and_utc().timestamp_millis());
    }
    None
}

/// Formats epoch ms the way most Qualys responses do: `...T10:16:28.163+0000`.
pub fn format_offset(ms: i64) -> String {
    to_utc(ms).format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

/// Formats epoch ms in the other style Qualys responses use: `...T10:16:28.163Z`.
pub fn format_zulu(ms: i64) -> String {
    to_utc(ms).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub fn to_utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// Current wall-clock time in epoch milliseconds.
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_offset_without_colon() {
        assert_eq!(
            parse_time_ms("2024-05-01T10:16:28.163+0000"),
            Some(1_714_558_588_163)
        );
    }

    #[test]
    fn parses_zulu() {
        assert_eq!(
            parse_time_ms("2024-05-01T10:16:28.163Z"),
            Some(1_714_558_588_163)
        );
    }

    #[test]
    fn parses_date_only() {
        assert_eq!(parse_time_ms("2019-02-13"), Some(1_550_016_000_000));
    }

    #[test]
    fn parses_epoch_ms_string() {
        assert_eq!(parse_time_ms("1529296486000"), Some(1_529_296_486_000));
    }

    #[test]
    fn formats_both_styles() {
        assert_eq!(
            format_offset(1_714_558_588_163),
            "2024-05-01T10:16:28.163+0000"
        );
        assert_eq!(format_zulu(1_714_558_588_163), "2024-05-01T10:16:28.163Z");
    }
}
