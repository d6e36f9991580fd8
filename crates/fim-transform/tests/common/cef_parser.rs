//! A strict CEF parser written from the CEF Implementation Standard (v25),
//! independent of the encoder, for round-trip tests. No maintained Rust
//! crate parses CEF on its own.
//!
//! Rules enforced:
//! - the line starts with `CEF:<digits>|` and has seven header fields
//!   separated by unescaped `|`; header escapes are `\\` and `\|` only;
//! - severity is 0–10 or one of `Unknown`, `Low`, `Medium`, `High`,
//!   `Very-High`;
//! - the extension is `key=value` pairs separated by spaces, where a key is
//!   alphanumeric (or `_`) and a value ends at the space before the next
//!   unescaped `=`'s key; value escapes are `\\`, `\=`, `\n` and `\r` only;
//! - no raw CR, LF or NUL anywhere, no empty value, no repeated key.

/// A parsed CEF line.
#[derive(Debug, Clone, PartialEq)]
pub struct Cef {
    pub version: String,
    pub vendor: String,
    pub product: String,
    pub device_version: String,
    pub class_id: String,
    pub name: String,
    pub severity: String,
    pub extension: Vec<(String, String)>,
}

impl Cef {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.extension
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    }

    pub fn keys(&self) -> Vec<&str> {
        self.extension.iter().map(|(key, _)| key.as_str()).collect()
    }
}

pub fn parse(line: &str) -> Result<Cef, String> {
    if line.contains(['\r', '\n', '\0']) {
        return Err("raw CR, LF or NUL in the line".to_owned());
    }
    let rest = line.strip_prefix("CEF:").ok_or("missing CEF: prefix")?;

    let mut fields = Vec::with_capacity(7);
    let mut current = String::new();
    let mut chars = rest.char_indices();
    let mut extension_start = None;
    while let Some((index, ch)) = chars.next() {
        match ch {
            '\\' => match chars.next() {
                Some((_, '\\')) => current.push('\\'),
                Some((_, '|')) => current.push('|'),
                other => return Err(format!("invalid header escape {other:?}")),
            },
            '|' => {
                fields.push(std::mem::take(&mut current));
                if fields.len() == 7 {
                    extension_start = Some(index + 1);
                    break;
                }
            }
            _ => current.push(ch),
        }
    }
    let extension_start = extension_start.ok_or("fewer than seven header fields")?;
    let [
        version,
        vendor,
        product,
        device_version,
        class_id,
        name,
        severity,
    ]: [String; 7] = fields.try_into().map_err(|_| "wrong header field count")?;

    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid version {version:?}"));
    }
    let severity_ok = severity.parse::<u8>().is_ok_and(|level| level <= 10)
        || ["Unknown", "Low", "Medium", "High", "Very-High"].contains(&severity.as_str());
    if !severity_ok {
        return Err(format!("invalid severity {severity:?}"));
    }

    let extension = parse_extension(&rest[extension_start..])?;
    Ok(Cef {
        version,
        vendor,
        product,
        device_version,
        class_id,
        name,
        severity,
        extension,
    })
}

fn parse_extension(text: &str) -> Result<Vec<(String, String)>, String> {
    let bytes = text.as_bytes();
    let mut equals = Vec::new();
    let mut escaped = false;
    for (index, &byte) in bytes.iter().enumerate() {
        if escaped {
            escaped = false;
        } else if byte == b'\\' {
            escaped = true;
        } else if byte == b'=' {
            equals.push(index);
        }
    }
    if text.is_empty() {
        return Ok(Vec::new());
    }
    if equals.is_empty() {
        return Err("extension without key=value".to_owned());
    }

    // A key starts after the last space before its `=` (or at 0 for the
    // first key); the previous value ends at that space.
    let mut key_starts = Vec::with_capacity(equals.len());
    for (position, &equal) in equals.iter().enumerate() {
        let floor = if position == 0 {
            0
        } else {
            equals[position - 1] + 1
        };
        let start = match text[floor..equal].rfind(' ') {
            Some(space) if position > 0 => floor + space + 1,
            Some(_) => return Err("text before the first key".to_owned()),
            None if position == 0 => 0,
            None => return Err(format!("unescaped '=' inside a value at byte {equal}")),
        };
        key_starts.push(start);
    }

    let mut pairs: Vec<(String, String)> = Vec::with_capacity(equals.len());
    for (position, (&start, &equal)) in key_starts.iter().zip(&equals).enumerate() {
        let key = &text[start..equal];
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("invalid key {key:?}"));
        }
        let end = match key_starts.get(position + 1) {
            Some(next_start) => next_start - 1,
            None => text.len(),
        };
        let value = unescape_value(&text[equal + 1..end])?;
        if value.is_empty() {
            return Err(format!("empty value for {key}"));
        }
        if pairs.iter().any(|(known, _)| known == key) {
            return Err(format!("repeated key {key}"));
        }
        pairs.push((key.to_owned(), value));
    }
    Ok(pairs)
}

fn unescape_value(raw: &str) -> Result<String, String> {
    let mut value = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(ch) = chars.next() {
        if ch != '\\' {
            value.push(ch);
            continue;
        }
        match chars.next() {
            Some('\\') => value.push('\\'),
            Some('=') => value.push('='),
            Some('n') => value.push('\n'),
            Some('r') => value.push('\r'),
            other => return Err(format!("invalid extension escape {other:?}")),
        }
    }
    Ok(value)
}

#[test]
fn parser_rejects_unescaped_equals_in_value() {
    assert!(parse("CEF:0|a|b|1|c|n|5|msg=a b=c=d").is_err());
}

#[test]
fn parser_reads_escaped_pipe_in_header() {
    let cef = parse("CEF:0|a\\|b|p|1|c|n|5|k=v").unwrap();
    assert_eq!(cef.vendor, "a|b");
}

#[test]
fn parser_splits_values_with_spaces() {
    let cef = parse("CEF:0|a|b|1|c|n|5|msg=hello world k2=x\\=y").unwrap();
    assert_eq!(
        cef.extension,
        [
            ("msg".into(), "hello world".into()),
            ("k2".into(), "x=y".into())
        ]
    );
}
