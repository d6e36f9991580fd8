//! One record of a stream, parsed once and shared between sinks.

use std::fmt;
use std::sync::Arc;

use serde_json::value::RawValue;

use crate::json::{JsonObject, JsonValue};
use crate::time::Timestamp;

/// The API collection a record comes from. Each kind is polled as its own
/// stream with its own cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecordKind {
    Event,
    IgnoredEvent,
    Incident,
    /// An event listed under one incident (`/incidents/{id}/events`).
    IncidentEvent,
}

impl RecordKind {
    /// Every kind, in the order streams are listed in configuration.
    pub const ALL: [RecordKind; 4] = [
        RecordKind::Event,
        RecordKind::IgnoredEvent,
        RecordKind::Incident,
        RecordKind::IncidentEvent,
    ];

    /// Returns the stream name used in configuration, metrics and output
    /// metadata: `events`, `ignored_events`, `incidents`, `incident_events`.
    pub const fn stream_name(self) -> &'static str {
        match self {
            RecordKind::Event => "events",
            RecordKind::IgnoredEvent => "ignored_events",
            RecordKind::Incident => "incidents",
            RecordKind::IncidentEvent => "incident_events",
        }
    }

    /// Returns whether records of this kind are incidents rather than file
    /// or registry events.
    pub const fn is_incident(self) -> bool {
        matches!(self, RecordKind::Incident)
    }

    /// Looks a kind up by its stream name.
    pub fn from_stream_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.stream_name() == name)
    }
}

impl fmt::Display for RecordKind {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.stream_name())
    }
}

/// The API generation a page was fetched from. v1 lists are bare arrays of
/// records; v2 and v3 searches wrap each record as `{"sortValues", "data"}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ApiVersion {
    V1,
    V2,
    V3,
}

impl ApiVersion {
    /// Returns the path segment: `v1`, `v2` or `v3`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => "v1",
            ApiVersion::V2 => "v2",
            ApiVersion::V3 => "v3",
        }
    }

    /// Returns whether list responses wrap each record with `sortValues`.
    pub const fn wraps_records(self) -> bool {
        !matches!(self, ApiVersion::V1)
    }
}

/// Fetch metadata of a record, carried into the "as received" JSON output so
/// a destination can tell which request produced a record.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchInfo {
    /// When the response holding the record arrived.
    pub fetched_at: Timestamp,
    pub api_version: ApiVersion,
    /// The `sortValues` of a v2/v3 search item, as received; `None` on v1.
    pub sort_values: Option<JsonValue>,
}

/// A record that could not be read. Each variant carries the record's raw
/// text so the caller can log it or write it to a dead-letter file.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(
        "invalid JSON in a {kind} record ({source}); raw text: {}",
        excerpt(raw)
    )]
    InvalidJson {
        kind: RecordKind,
        raw: String,
        source: serde_json::Error,
    },
    #[error("a {kind} record is not a JSON object; raw text: {}", excerpt(raw))]
    NotAnObject { kind: RecordKind, raw: String },
    #[error(
        "a {kind} search item has no `data` object (expected {{\"sortValues\": [...], \"data\": {{...}}}}); raw text: {}",
        excerpt(raw)
    )]
    MissingData { kind: RecordKind, raw: String },
    #[error(
        "a {kind} record has no `id` (a string or number is required as the dedup key); raw text: {}",
        excerpt(raw)
    )]
    MissingId { kind: RecordKind, raw: String },
}

impl RecordError {
    /// Returns the raw text of the record that failed.
    pub fn raw(&self) -> &str {
        match self {
            RecordError::InvalidJson { raw, .. }
            | RecordError::NotAnObject { raw, .. }
            | RecordError::MissingData { raw, .. }
            | RecordError::MissingId { raw, .. } => raw,
        }
    }
}

/// Reason a parsed value is not a record. It becomes a [`RecordError`] once
/// the raw text is at hand.
#[derive(Debug, Clone, Copy)]
enum Invalid {
    NotAnObject,
    MissingData,
    MissingId,
}

impl Invalid {
    fn into_error(self, kind: RecordKind, raw: &str) -> RecordError {
        let raw = raw.to_owned();
        match self {
            Invalid::NotAnObject => RecordError::NotAnObject { kind, raw },
            Invalid::MissingData => RecordError::MissingData { kind, raw },
            Invalid::MissingId => RecordError::MissingId { kind, raw },
        }
    }
}

/// A response body that is not a JSON array of records.
#[derive(Debug, thiserror::Error)]
#[error(
    "the {kind} page from the {api} API is not a JSON array ({source}); body starts with: {}",
    excerpt(body)
)]
pub struct PageError {
    pub kind: RecordKind,
    pub api: &'static str,
    pub body: String,
    pub source: serde_json::Error,
}

/// Limits error messages to a readable prefix; the full text stays in the
/// error value.
fn excerpt(raw: &str) -> String {
    const MAX_CHARS: usize = 200;
    match raw.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}… ({} bytes)", &raw[..end], raw.len()),
        None => raw.to_owned(),
    }
}

/// One event, ignored event, incident or incident event.
///
/// The source object is kept whole, in received order, with every field the
/// API sent (known or not), so no encoder loses data. The fields the poller
/// orders and deduplicates by are parsed once here; everything else is read
/// through the typed views in [`crate::view`]. Share it as [`SharedRecord`].
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    kind: RecordKind,
    id: Box<str>,
    date_time: Option<Timestamp>,
    processed_time: Option<Timestamp>,
    created_time: Option<Timestamp>,
    updated_time: Option<Timestamp>,
    fetch: Option<FetchInfo>,
    source: JsonObject,
}

/// A record shared between the router and every sink without copying.
pub type SharedRecord = Arc<Record>;

impl Record {
    /// Parses one record object (a v1 list item or the `data` of a v2/v3
    /// search item).
    pub fn from_json(kind: RecordKind, raw: &str) -> Result<Self, RecordError> {
        let value: JsonValue =
            serde_json::from_str(raw).map_err(|source| RecordError::InvalidJson {
                kind,
                raw: raw.to_owned(),
                source,
            })?;
        Self::from_value(kind, value, raw)
    }

    /// Parses one v2/v3 search item, `{"sortValues": [...], "data": {...}}`,
    /// keeping `sortValues` in the record's fetch information.
    pub fn from_search_item(
        kind: RecordKind,
        raw: &str,
        fetched_at: Timestamp,
        api_version: ApiVersion,
    ) -> Result<Self, RecordError> {
        let value: JsonValue =
            serde_json::from_str(raw).map_err(|source| RecordError::InvalidJson {
                kind,
                raw: raw.to_owned(),
                source,
            })?;
        Self::search_item_from_value(kind, value, fetched_at, api_version)
            .map_err(|invalid| invalid.into_error(kind, raw))
    }

    /// Parses a whole list response. The outer error means the body is not a
    /// JSON array. Each element parses on its own, so one bad record does
    /// not hide the others.
    pub fn parse_page(
        kind: RecordKind,
        body: &str,
        fetched_at: Timestamp,
        api_version: ApiVersion,
    ) -> Result<Vec<Result<Self, RecordError>>, PageError> {
        // One pass over the body serves a page whose records are all valid.
        // Anything else (invalid JSON, nesting deeper than serde_json's
        // limit, a record without an id) goes through the item-by-item parse
        // below, which gives each bad record its own error and raw text.
        if let Ok(values) = serde_json::from_str::<Vec<JsonValue>>(body) {
            let records: Result<Vec<Self>, Invalid> = values
                .into_iter()
                .map(|value| Self::page_item_from_value(kind, value, fetched_at, api_version))
                .collect();
            if let Ok(records) = records {
                return Ok(records.into_iter().map(Ok).collect());
            }
        }

        let items: Vec<&RawValue> = serde_json::from_str(body).map_err(|source| PageError {
            kind,
            api: api_version.as_str(),
            body: body.to_owned(),
            source,
        })?;

        let records = items
            .into_iter()
            .map(|item| {
                if api_version.wraps_records() {
                    Self::from_search_item(kind, item.get(), fetched_at, api_version)
                } else {
                    Self::from_json(kind, item.get()).map(|record| {
                        record.with_fetch(FetchInfo {
                            fetched_at,
                            api_version,
                            sort_values: None,
                        })
                    })
                }
            })
            .collect();
        Ok(records)
    }

    /// Builds a record from an already parsed object; `raw` is only used for
    /// error reports.
    pub fn from_value(kind: RecordKind, value: JsonValue, raw: &str) -> Result<Self, RecordError> {
        Self::record_from_value(kind, value).map_err(|invalid| invalid.into_error(kind, raw))
    }

    /// Builds a record from one parsed element of a list response.
    fn page_item_from_value(
        kind: RecordKind,
        value: JsonValue,
        fetched_at: Timestamp,
        api_version: ApiVersion,
    ) -> Result<Self, Invalid> {
        if api_version.wraps_records() {
            return Self::search_item_from_value(kind, value, fetched_at, api_version);
        }
        let record = Self::record_from_value(kind, value)?;
        Ok(record.with_fetch(FetchInfo {
            fetched_at,
            api_version,
            sort_values: None,
        }))
    }

    fn search_item_from_value(
        kind: RecordKind,
        value: JsonValue,
        fetched_at: Timestamp,
        api_version: ApiVersion,
    ) -> Result<Self, Invalid> {
        let JsonValue::Object(wrapper) = value else {
            return Err(Invalid::NotAnObject);
        };

        let mut data = None;
        let mut sort_values = None;
        for (key, member) in wrapper.into_members() {
            match key.as_str() {
                "data" => data = Some(member),
                "sortValues" => sort_values = Some(member),
                _ => {}
            }
        }
        let Some(data) = data else {
            return Err(Invalid::MissingData);
        };

        let record = Self::record_from_value(kind, data)?;
        Ok(record.with_fetch(FetchInfo {
            fetched_at,
            api_version,
            sort_values,
        }))
    }

    fn record_from_value(kind: RecordKind, value: JsonValue) -> Result<Self, Invalid> {
        let JsonValue::Object(source) = value else {
            return Err(Invalid::NotAnObject);
        };

        let id = source
            .get("id")
            .and_then(JsonValue::as_text)
            .filter(|id| !id.trim().is_empty())
            .map(|id| Box::<str>::from(id.as_ref()));
        let Some(id) = id else {
            return Err(Invalid::MissingId);
        };

        let time_of = |key: &str| source.get(key).and_then(Timestamp::from_json);
        let date_of = |key: &str| {
            source
                .get(key)
                .and_then(|by| by.get("date"))
                .and_then(Timestamp::from_json)
        };

        Ok(Self {
            kind,
            id,
            date_time: time_of("dateTime"),
            processed_time: time_of("processedTime"),
            created_time: date_of("createdBy"),
            updated_time: date_of("lastUpdatedBy"),
            fetch: None,
            source,
        })
    }

    /// Attaches fetch information (replacing any already attached).
    #[must_use]
    pub fn with_fetch(mut self, fetch: FetchInfo) -> Self {
        self.fetch = Some(fetch);
        self
    }

    /// Wraps the record for sharing.
    pub fn shared(self) -> SharedRecord {
        Arc::new(self)
    }

    pub fn kind(&self) -> RecordKind {
        self.kind
    }

    /// Returns the Qualys id (a UUID in practice), as text even when the API
    /// sent a number.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Returns the key that identifies this version of the record for
    /// deduplication. Events are immutable, so their id is enough. An
    /// incident is emitted again each time it changes, with the same id, so
    /// its key adds the `lastUpdatedBy.date` milliseconds (`<id>@<ms>`).
    pub fn dedup_key(&self) -> String {
        match (self.kind, self.updated_time) {
            (RecordKind::Incident, Some(updated)) => format!("{}@{}", self.id, updated.unix_ms()),
            _ => self.id.to_string(),
        }
    }

    /// Returns `dateTime`: when the change happened on the asset.
    pub fn date_time(&self) -> Option<Timestamp> {
        self.date_time
    }

    /// Returns `processedTime`: when Qualys processed the event.
    pub fn processed_time(&self) -> Option<Timestamp> {
        self.processed_time
    }

    /// Returns an incident's `createdBy.date`.
    pub fn created_time(&self) -> Option<Timestamp> {
        self.created_time
    }

    /// Returns an incident's `lastUpdatedBy.date`.
    pub fn updated_time(&self) -> Option<Timestamp> {
        self.updated_time
    }

    /// Returns the time the record describes: for events `dateTime`, then
    /// `processedTime`; for incidents the last update, then the creation,
    /// then `dateTime`.
    pub fn event_time(&self) -> Option<Timestamp> {
        if self.kind.is_incident() {
            self.updated_time.or(self.created_time).or(self.date_time)
        } else {
            self.date_time.or(self.processed_time)
        }
    }

    pub fn fetch(&self) -> Option<&FetchInfo> {
        self.fetch.as_ref()
    }

    /// Returns the source object as received, every field included.
    pub fn source(&self) -> &JsonObject {
        &self.source
    }

    /// Returns a top-level field of the source.
    pub fn get(&self, key: &str) -> Option<&JsonValue> {
        self.source.get(key)
    }

    /// Returns a top-level field as text (see [`JsonValue::as_text`]).
    pub fn text(&self, key: &str) -> Option<std::borrow::Cow<'_, str>> {
        self.source.get(key).and_then(JsonValue::as_text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FETCHED: Timestamp = Timestamp::from_unix_ms(1_714_560_000_000);

    #[test]
    fn missing_id_reports_the_raw_text() {
        let raw = r#"{"name":"x"}"#;
        let error = Record::from_json(RecordKind::Event, raw).unwrap_err();
        assert_eq!(error.raw(), raw);
    }

    #[test]
    fn empty_id_counts_as_missing() {
        let error = Record::from_json(RecordKind::Event, r#"{"id":"  "}"#).unwrap_err();
        assert!(matches!(error, RecordError::MissingId { .. }));
    }

    #[test]
    fn numeric_id_becomes_text() {
        let record = Record::from_json(RecordKind::Event, r#"{"id":42}"#).unwrap();
        assert_eq!(record.id(), "42");
    }

    #[test]
    fn invalid_json_is_an_error_not_a_panic() {
        let error = Record::from_json(RecordKind::Event, "{\"id\":").unwrap_err();
        assert!(matches!(error, RecordError::InvalidJson { .. }));
    }

    #[test]
    fn array_record_is_rejected() {
        let error = Record::from_json(RecordKind::Incident, "[1]").unwrap_err();
        assert!(matches!(error, RecordError::NotAnObject { .. }));
    }

    #[test]
    fn search_item_keeps_sort_values() {
        let raw = r#"{"sortValues":[1714558601502,"a"],"data":{"id":"a"}}"#;
        let record =
            Record::from_search_item(RecordKind::Event, raw, FETCHED, ApiVersion::V2).unwrap();
        let sort_values = record.fetch().unwrap().sort_values.as_ref().unwrap();
        assert_eq!(sort_values.as_array().map(<[_]>::len), Some(2));
    }

    #[test]
    fn page_with_one_bad_record_keeps_the_others() {
        let body = r#"[{"id":"a"},{"name":"no id"},{"id":"c"}]"#;
        let records = Record::parse_page(RecordKind::Event, body, FETCHED, ApiVersion::V1).unwrap();
        let ok: Vec<bool> = records.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, true]);
    }

    #[test]
    fn valid_page_matches_item_by_item_parse() {
        let items = [
            r#"{"sortValues":[1714558601502,"a"],"data":{"id":"a","n":1.5,"x":[null,true]}}"#,
            r#"{"data":{"id":7},"sortValues":[1714558601503,"7"],"data":{"id":"b"}}"#,
        ];
        let body = format!("[{}]", items.join(","));
        let page = Record::parse_page(RecordKind::Event, &body, FETCHED, ApiVersion::V2).unwrap();
        let one_by_one: Vec<Record> = items
            .iter()
            .map(|raw| {
                Record::from_search_item(RecordKind::Event, raw, FETCHED, ApiVersion::V2).unwrap()
            })
            .collect();
        let page: Vec<Record> = page.into_iter().map(Result::unwrap).collect();
        assert_eq!(page, one_by_one);
    }

    #[test]
    fn search_item_without_data_is_its_own_error() {
        let body = r#"[{"sortValues":[1,"a"],"data":{"id":"a"}},{"sortValues":[2,"b"]}]"#;
        let records = Record::parse_page(RecordKind::Event, body, FETCHED, ApiVersion::V2).unwrap();
        assert!(records[0].is_ok());
        assert!(matches!(records[1], Err(RecordError::MissingData { .. })));
    }

    #[test]
    fn too_deep_record_keeps_the_others() {
        let deep = format!(r#"{{"id":"d","x":{}{}}}"#, "[".repeat(200), "]".repeat(200));
        let body = format!(r#"[{{"id":"a"}},{deep},{{"id":"c"}}]"#);
        let records =
            Record::parse_page(RecordKind::Event, &body, FETCHED, ApiVersion::V1).unwrap();
        let ok: Vec<bool> = records.iter().map(Result::is_ok).collect();
        assert_eq!(ok, [true, false, true]);
        assert!(matches!(records[1], Err(RecordError::InvalidJson { .. })));
    }

    #[test]
    fn page_must_be_an_array() {
        let error = Record::parse_page(RecordKind::Event, "{}", FETCHED, ApiVersion::V1);
        assert!(error.is_err());
    }

    #[test]
    fn incident_dedup_key_includes_update_time() {
        let raw = r#"{"id":"i1","lastUpdatedBy":{"date":1714558385773}}"#;
        let record = Record::from_json(RecordKind::Incident, raw).unwrap();
        assert_eq!(record.dedup_key(), "i1@1714558385773");
    }

    #[test]
    fn stream_names_round_trip() {
        for kind in RecordKind::ALL {
            assert_eq!(RecordKind::from_stream_name(kind.stream_name()), Some(kind));
        }
    }
}
