//! The selection of source fields a sink receives: include and exclude
//! lists, and the size cap for `oldContent`/`newContent`.
//!
//! Include and exclude lists are applied to a copy of the record before it is
//! encoded, so every format gets the same filtered record. That copy is made
//! only for sinks that configure a list. The content cap is applied while
//! writing, because it is on by default and must cost nothing extra.

use std::borrow::Cow;

use fim_model::{JsonObject, JsonValue, Record};

use crate::config::ConfigError;
use crate::text::truncate_utf8;

/// A sink's field selection.
#[derive(Debug, Clone, Default)]
pub struct FieldPolicy {
    include: Vec<String>,
    exclude: Vec<String>,
    content_max_bytes: usize,
}

/// The decision for one `oldContent` or `newContent` value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Content<'v> {
    Drop,
    Keep(&'v JsonValue),
    /// A string cut to the cap on a UTF-8 boundary.
    Truncated(&'v str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Keep,
    Drop,
    /// Some fields below this path are kept and others are not.
    Partial,
}

impl FieldPolicy {
    /// Validates the lists and builds the policy. `content_max_bytes` of 0
    /// drops content fields.
    pub fn new(
        include: &[String],
        exclude: &[String],
        content_max_bytes: usize,
    ) -> Result<Self, ConfigError> {
        for path in include.iter().chain(exclude) {
            if path.split('.').any(str::is_empty) {
                return Err(ConfigError::InvalidFieldPath(path.clone()));
            }
        }
        if exclude.iter().any(|path| path == "id") {
            return Err(ConfigError::ExcludesId);
        }

        Ok(Self {
            include: include.to_vec(),
            exclude: exclude.to_vec(),
            content_max_bytes,
        })
    }

    /// Returns whether include or exclude lists are configured.
    pub fn filters_fields(&self) -> bool {
        !self.include.is_empty() || !self.exclude.is_empty()
    }

    /// Returns the record with the include and exclude lists applied; the
    /// record itself when no list is configured.
    pub fn apply<'r>(&self, record: &'r Record) -> Cow<'r, Record> {
        if !self.filters_fields() {
            return Cow::Borrowed(record);
        }

        let mut path = String::new();
        let mut filtered = JsonObject::new();
        for (key, value) in record.source().iter() {
            if key == "id" {
                filtered.push(key, value.clone());
                continue;
            }
            path.clear();
            path.push_str(key);
            if let Some(kept) = self.filter_value(value, &mut path) {
                filtered.push(key, kept);
            }
        }

        // The id was copied above, so the record parses again.
        match Record::from_value(record.kind(), JsonValue::Object(filtered), "") {
            Ok(rebuilt) => match record.fetch() {
                Some(fetch) => Cow::Owned(rebuilt.with_fetch(fetch.clone())),
                None => Cow::Owned(rebuilt),
            },
            Err(_) => Cow::Borrowed(record),
        }
    }

    fn filter_value(&self, value: &JsonValue, path: &mut String) -> Option<JsonValue> {
        match self.verdict(path) {
            Verdict::Keep => Some(value.clone()),
            Verdict::Drop => None,
            Verdict::Partial => match value {
                JsonValue::Object(object) => {
                    let mut kept = JsonObject::new();
                    for (key, member) in object.iter() {
                        let parent_len = path.len();
                        path.push('.');
                        path.push_str(key);
                        if let Some(member) = self.filter_value(member, path) {
                            kept.push(key, member);
                        }
                        path.truncate(parent_len);
                    }
                    (!kept.is_empty()).then_some(JsonValue::Object(kept))
                }
                // Array elements share their array's path.
                JsonValue::Array(items) => {
                    let kept: Vec<JsonValue> = items
                        .iter()
                        .filter_map(|item| match item {
                            JsonValue::Object(_) => self.filter_value_below(item, path),
                            _ => None,
                        })
                        .collect();
                    (!kept.is_empty()).then_some(JsonValue::Array(kept))
                }
                _ => None,
            },
        }
    }

    /// Filters an array element, whose own path equals its array's.
    fn filter_value_below(&self, item: &JsonValue, path: &mut String) -> Option<JsonValue> {
        let JsonValue::Object(object) = item else {
            return None;
        };
        let mut kept = JsonObject::new();
        for (key, member) in object.iter() {
            let parent_len = path.len();
            path.push('.');
            path.push_str(key);
            if let Some(member) = self.filter_value(member, path) {
                kept.push(key, member);
            }
            path.truncate(parent_len);
        }
        (!kept.is_empty()).then_some(JsonValue::Object(kept))
    }

    fn verdict(&self, path: &str) -> Verdict {
        let within = |list_path: &str| {
            path == list_path
                || (path.starts_with(list_path)
                    && path.as_bytes().get(list_path.len()) == Some(&b'.'))
        };
        let above = |list_path: &str| {
            list_path.starts_with(path) && list_path.as_bytes().get(path.len()) == Some(&b'.')
        };

        if self.exclude.iter().any(|excluded| within(excluded)) {
            return Verdict::Drop;
        }
        let inside_include = self.include.is_empty() || self.include.iter().any(|i| within(i));
        if !inside_include {
            let leads_to_include = self.include.iter().any(|i| above(i));
            return if leads_to_include {
                Verdict::Partial
            } else {
                Verdict::Drop
            };
        }
        if self.exclude.iter().any(|excluded| above(excluded)) {
            Verdict::Partial
        } else {
            Verdict::Keep
        }
    }

    /// Returns whether `key` is a top-level content field.
    pub fn is_content_key(key: &str) -> bool {
        key == "oldContent" || key == "newContent"
    }

    /// Decides what to write for a content field of `record`.
    pub fn content<'v>(&self, record: &Record, value: &'v JsonValue) -> Content<'v> {
        // A rename reports the old and new path in the content fields; paths
        // are not the file content the cap protects.
        let is_rename = record
            .action()
            .is_some_and(|action| action.eq_ignore_ascii_case("Rename"));
        if is_rename {
            return Content::Keep(value);
        }
        if self.content_max_bytes == 0 {
            return Content::Drop;
        }

        match value {
            JsonValue::String(text) if text.len() > self.content_max_bytes => {
                Content::Truncated(truncate_utf8(text, self.content_max_bytes))
            }
            JsonValue::Array(_) | JsonValue::Object(_) => Content::Drop,
            _ => Content::Keep(value),
        }
    }

    /// Returns a content field of `record` as text after the cap, or `None`
    /// when it is dropped, absent or not text.
    pub fn content_text<'r>(&self, record: &'r Record, key: &str) -> Option<Cow<'r, str>> {
        let value = record.get(key)?;
        match self.content(record, value) {
            Content::Drop => None,
            Content::Keep(value) => value.as_text(),
            Content::Truncated(text) => Some(Cow::Borrowed(text)),
        }
    }
}

#[cfg(test)]
mod tests {
    use fim_model::RecordKind;

    use super::*;

    fn record(raw: &str) -> Record {
        Record::from_json(RecordKind::Event, raw).unwrap()
    }

    fn filtered(include: &[&str], exclude: &[&str], raw: &str) -> String {
        let include: Vec<String> = include.iter().map(|s| (*s).to_owned()).collect();
        let exclude: Vec<String> = exclude.iter().map(|s| (*s).to_owned()).collect();
        let policy = FieldPolicy::new(&include, &exclude, 0).unwrap();
        let record = record(raw);
        serde_json::to_string(policy.apply(&record).source()).unwrap()
    }

    #[test]
    fn exclude_removes_a_nested_field() {
        let out = filtered(
            &[],
            &["asset.tags"],
            r#"{"id":"a","asset":{"tags":[1],"name":"h"}}"#,
        );
        assert_eq!(out, r#"{"id":"a","asset":{"name":"h"}}"#);
    }

    #[test]
    fn include_keeps_only_listed_fields_and_id() {
        let out = filtered(&["name"], &[], r#"{"id":"a","name":"n","type":"File"}"#);
        assert_eq!(out, r#"{"id":"a","name":"n"}"#);
    }

    #[test]
    fn include_path_applies_to_every_array_element() {
        let raw = r#"{"id":"a","asset":{"interfaces":[{"address":"1","x":2},{"address":"3"}]}}"#;
        let out = filtered(&["asset.interfaces.address"], &[], raw);
        assert_eq!(
            out,
            r#"{"id":"a","asset":{"interfaces":[{"address":"1"},{"address":"3"}]}}"#
        );
    }

    #[test]
    fn excluding_id_is_rejected() {
        let error = FieldPolicy::new(&[], &["id".to_owned()], 0).unwrap_err();
        assert_eq!(error, ConfigError::ExcludesId);
    }

    #[test]
    fn empty_path_segment_is_rejected() {
        let error = FieldPolicy::new(&["asset..tags".to_owned()], &[], 0).unwrap_err();
        assert!(matches!(error, ConfigError::InvalidFieldPath(_)));
    }

    #[test]
    fn content_is_dropped_by_default() {
        let event = record(r#"{"id":"a","action":"Content","newContent":"secret"}"#);
        let policy = FieldPolicy::default();
        assert_eq!(policy.content_text(&event, "newContent"), None);
    }

    #[test]
    fn content_is_cut_to_the_cap() {
        let event = record(r#"{"id":"a","action":"Content","newContent":"secret"}"#);
        let policy = FieldPolicy::new(&[], &[], 3).unwrap();
        assert_eq!(
            policy.content_text(&event, "newContent").as_deref(),
            Some("sec")
        );
    }

    #[test]
    fn rename_paths_are_kept() {
        let event = record(r#"{"id":"a","action":"Rename","oldContent":"/old"}"#);
        let policy = FieldPolicy::default();
        assert_eq!(
            policy.content_text(&event, "oldContent").as_deref(),
            Some("/old")
        );
    }
}
