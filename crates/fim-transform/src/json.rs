//! The record as received, and its flattened form.
//!
//! The "as received" document wraps the source object with the stream it
//! came from and how it was fetched:
//!
//! ```json
//! {"id":"…","stream":"events","fetch":{"fetched_at":"…","api_version":"v2","sort_values":[…]},"data":{…}}
//! ```
//!
//! `id` is repeated at the top level so consumers find the dedup key without
//! knowing the record's shape.
//!
//! The flattened document has one member per leaf value, named by its dotted
//! path (`data.asset.interfaces.0.address`), for destinations without nested
//! objects. Empty arrays and objects are kept as `[]` and `{}` leaves so no
//! field disappears.

use fim_model::{JsonValue, Record};

use crate::json_out::{Object, write_value};
use crate::policy::{Content, FieldPolicy};
use crate::text::write_json_str;
use crate::{EncodeError, Encoder};

/// Encodes the record as received, with stream and fetch metadata.
#[derive(Debug, Clone, Default)]
pub struct JsonEncoder {
    policy: FieldPolicy,
}

impl JsonEncoder {
    pub fn new(policy: FieldPolicy) -> Self {
        Self { policy }
    }
}

impl Encoder for JsonEncoder {
    fn encode(&self, record: &Record, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let record = self.policy.apply(record);
        write_envelope(&record, &self.policy, out);
        Ok(())
    }
}

/// Appends the "as received" envelope of an already filtered record.
pub(crate) fn write_envelope(record: &Record, policy: &FieldPolicy, out: &mut Vec<u8>) {
    let mut root = Object::begin(out);
    root.str(out, "id", record.id());
    root.str(out, "stream", record.kind().stream_name());

    if let Some(fetch) = record.fetch() {
        let mut meta = root.child(out, "fetch");
        meta.time(out, "fetched_at", Some(fetch.fetched_at));
        meta.str(out, "api_version", fetch.api_version.as_str());
        if let Some(sort_values) = &fetch.sort_values {
            meta.value(out, "sort_values", sort_values);
        }
        root.end_child(out, meta);
    }

    root.key(out, "data");
    out.push(b'{');
    let mut first = true;
    for (key, value) in record.source().iter() {
        let content;
        let value = if FieldPolicy::is_content_key(key) {
            content = policy.content(record, value);
            match content {
                Content::Drop => continue,
                Content::Keep(value) => ContentValue::Value(value),
                Content::Truncated(text) => ContentValue::Text(text),
            }
        } else {
            ContentValue::Value(value)
        };

        if !first {
            out.push(b',');
        }
        first = false;
        write_json_str(out, key);
        out.push(b':');
        match value {
            ContentValue::Value(value) => write_value(out, value),
            ContentValue::Text(text) => write_json_str(out, text),
        }
    }
    out.push(b'}');
    root.end(out);
}

enum ContentValue<'v> {
    Value(&'v JsonValue),
    Text(&'v str),
}

/// Encodes the record as one flat object of dotted paths.
#[derive(Debug, Clone, Default)]
pub struct FlatJsonEncoder {
    policy: FieldPolicy,
}

impl FlatJsonEncoder {
    pub fn new(policy: FieldPolicy) -> Self {
        Self { policy }
    }
}

impl Encoder for FlatJsonEncoder {
    fn encode(&self, record: &Record, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let record = self.policy.apply(record);
        let mut root = Object::begin(out);
        root.str(out, "id", record.id());
        root.str(out, "stream", record.kind().stream_name());

        if let Some(fetch) = record.fetch() {
            root.time(out, "fetch.fetched_at", Some(fetch.fetched_at));
            root.str(out, "fetch.api_version", fetch.api_version.as_str());
            if let Some(sort_values) = &fetch.sort_values {
                let mut path = String::from("fetch.sort_values");
                flatten(&mut root, out, &mut path, sort_values);
            }
        }

        let mut path = String::with_capacity(64);
        for (key, value) in record.source().iter() {
            path.clear();
            path.push_str("data.");
            path.push_str(key);
            if FieldPolicy::is_content_key(key) {
                match self.policy.content(&record, value) {
                    Content::Drop => {}
                    Content::Keep(value) => flatten(&mut root, out, &mut path, value),
                    Content::Truncated(text) => root.str(out, &path, text),
                }
            } else {
                flatten(&mut root, out, &mut path, value);
            }
        }
        root.end(out);
        Ok(())
    }
}

fn flatten(root: &mut Object, out: &mut Vec<u8>, path: &mut String, value: &JsonValue) {
    match value {
        JsonValue::Array(items) if !items.is_empty() => {
            for (index, item) in items.iter().enumerate() {
                let parent_len = path.len();
                path.push('.');
                path.push_str(itoa_small(index, &mut [0u8; 20]));
                flatten(root, out, path, item);
                path.truncate(parent_len);
            }
        }
        JsonValue::Object(object) if !object.is_empty() => {
            for (key, member) in object.iter() {
                let parent_len = path.len();
                path.push('.');
                path.push_str(key);
                flatten(root, out, path, member);
                path.truncate(parent_len);
            }
        }
        leaf => root.value(out, path, leaf),
    }
}

/// Formats an array index without allocating.
fn itoa_small(mut value: usize, buffer: &mut [u8; 20]) -> &str {
    let mut start = buffer.len();
    loop {
        start -= 1;
        // `value % 10` is one digit.
        #[allow(clippy::cast_possible_truncation)]
        let digit = (value % 10) as u8;
        buffer[start] = b'0' + digit;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    std::str::from_utf8(&buffer[start..]).unwrap_or("0")
}

#[cfg(test)]
mod tests {
    use fim_model::RecordKind;

    use super::*;

    fn encode(encoder: &dyn Encoder, raw: &str) -> String {
        let record = Record::from_json(RecordKind::Event, raw).unwrap();
        let mut out = Vec::new();
        encoder.encode(&record, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn envelope_keeps_unknown_fields_in_order() {
        let out = encode(
            &JsonEncoder::default(),
            r#"{"z":1,"id":"a","newField":{"b":[1]}}"#,
        );
        assert_eq!(
            out,
            r#"{"id":"a","stream":"events","data":{"z":1,"id":"a","newField":{"b":[1]}}}"#
        );
    }

    #[test]
    fn envelope_drops_content_by_default() {
        let out = encode(&JsonEncoder::default(), r#"{"id":"a","newContent":"pw"}"#);
        assert_eq!(out, r#"{"id":"a","stream":"events","data":{"id":"a"}}"#);
    }

    #[test]
    fn flat_uses_dotted_paths_with_indices() {
        let raw = r#"{"id":"a","asset":{"interfaces":[{"address":"10.0.0.1"}]}}"#;
        let out = encode(&FlatJsonEncoder::default(), raw);
        assert_eq!(
            out,
            r#"{"id":"a","stream":"events","data.id":"a","data.asset.interfaces.0.address":"10.0.0.1"}"#
        );
    }

    #[test]
    fn flat_keeps_empty_arrays_as_leaves() {
        let out = encode(&FlatJsonEncoder::default(), r#"{"id":"a","profiles":[]}"#);
        assert_eq!(
            out,
            r#"{"id":"a","stream":"events","data.id":"a","data.profiles":[]}"#
        );
    }

    #[test]
    fn index_formatting_handles_multiple_digits() {
        assert_eq!(itoa_small(120, &mut [0u8; 20]), "120");
    }
}
