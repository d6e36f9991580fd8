//! Streaming JSON output into a byte buffer, without building a value tree.
//!
//! [`Object`] writes members one by one. A child object that ends up with no
//! members is removed again, so encoders can open `"process":{` and fill it
//! only from the fields a record has, without checking first.

use std::io::Write;

use fim_model::{JsonValue, Timestamp};

use crate::text::write_json_str;

/// An open JSON object in the output buffer.
#[derive(Debug)]
pub struct Object {
    /// Output length before this object's key (or its `{` for the root), so
    /// an empty child can be cut off again.
    mark: usize,
    members: usize,
}

impl Object {
    /// Opens the root object.
    pub fn begin(out: &mut Vec<u8>) -> Self {
        let mark = out.len();
        out.push(b'{');
        Self { mark, members: 0 }
    }

    /// Writes the separator and `"key":`, leaving the value to the caller.
    pub fn key(&mut self, out: &mut Vec<u8>, key: &str) {
        if self.members > 0 {
            out.push(b',');
        }
        self.members += 1;
        write_json_str(out, key);
        out.push(b':');
    }

    pub fn str(&mut self, out: &mut Vec<u8>, key: &str, value: &str) {
        self.key(out, key);
        write_json_str(out, value);
    }

    /// Writes a string member when `value` is present.
    pub fn opt_str(&mut self, out: &mut Vec<u8>, key: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.str(out, key, value);
        }
    }

    pub fn int(&mut self, out: &mut Vec<u8>, key: &str, value: i64) {
        self.key(out, key);
        // `io::Write` for `Vec<u8>` never returns an error.
        let _ = write!(out, "{value}");
    }

    /// Writes a timestamp in RFC 3339 form; a time outside the years 0000 to
    /// 9999 is left out.
    pub fn time(&mut self, out: &mut Vec<u8>, key: &str, value: Option<Timestamp>) {
        let Some(value) = value else {
            return;
        };
        let mark = out.len();
        let members = self.members;
        self.key(out, key);
        out.push(b'"');
        if value.write_rfc3339(out) {
            out.push(b'"');
        } else {
            out.truncate(mark);
            self.members = members;
        }
    }

    /// Writes an array of strings; an empty list is left out.
    pub fn str_array<'s>(
        &mut self,
        out: &mut Vec<u8>,
        key: &str,
        values: impl IntoIterator<Item = &'s str>,
    ) {
        let mut values = values.into_iter().peekable();
        if values.peek().is_none() {
            return;
        }
        self.key(out, key);
        out.push(b'[');
        for (index, value) in values.enumerate() {
            if index > 0 {
                out.push(b',');
            }
            write_json_str(out, value);
        }
        out.push(b']');
    }

    /// Writes a member whose value is a received JSON value.
    pub fn value(&mut self, out: &mut Vec<u8>, key: &str, value: &JsonValue) {
        self.key(out, key);
        write_value(out, value);
    }

    /// Opens a child object under `key`.
    pub fn child(&mut self, out: &mut Vec<u8>, key: &str) -> Object {
        let mark = out.len();
        self.key(out, key);
        out.push(b'{');
        Object { mark, members: 0 }
    }

    /// Closes a child opened with [`Object::child`], or removes it when it
    /// got no members.
    pub fn end_child(&mut self, out: &mut Vec<u8>, child: Object) {
        if child.members == 0 {
            out.truncate(child.mark);
            self.members -= 1;
        } else {
            out.push(b'}');
        }
    }

    /// Closes the root object.
    pub fn end(self, out: &mut Vec<u8>) {
        out.push(b'}');
    }
}

/// Appends a received JSON value in compact form, keys in received order.
pub fn write_value(out: &mut Vec<u8>, value: &JsonValue) {
    match value {
        JsonValue::Null => out.extend_from_slice(b"null"),
        JsonValue::Bool(true) => out.extend_from_slice(b"true"),
        JsonValue::Bool(false) => out.extend_from_slice(b"false"),
        // `io::Write` for `Vec<u8>` never returns an error.
        JsonValue::Number(number) => {
            let _ = write!(out, "{number}");
        }
        JsonValue::String(text) => write_json_str(out, text),
        JsonValue::Array(items) => {
            out.push(b'[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        JsonValue::Object(object) => {
            out.push(b'{');
            for (index, (key, member)) in object.iter().enumerate() {
                if index > 0 {
                    out.push(b',');
                }
                write_json_str(out, key);
                out.push(b':');
                write_value(out, member);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_child_is_removed() {
        let mut out = Vec::new();
        let mut root = Object::begin(&mut out);
        root.str(&mut out, "a", "1");
        let child = root.child(&mut out, "empty");
        root.end_child(&mut out, child);
        root.str(&mut out, "b", "2");
        root.end(&mut out);
        assert_eq!(out, br#"{"a":"1","b":"2"}"#);
    }

    #[test]
    fn first_child_removed_leaves_no_comma() {
        let mut out = Vec::new();
        let mut root = Object::begin(&mut out);
        let child = root.child(&mut out, "empty");
        root.end_child(&mut out, child);
        root.str(&mut out, "b", "2");
        root.end(&mut out);
        assert_eq!(out, br#"{"b":"2"}"#);
    }

    #[test]
    fn unformattable_time_is_left_out() {
        let mut out = Vec::new();
        let mut root = Object::begin(&mut out);
        root.time(&mut out, "t", Some(Timestamp::from_unix_ms(i64::MAX)));
        root.end(&mut out);
        assert_eq!(out, b"{}");
    }
}
