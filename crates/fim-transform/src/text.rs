//! Byte-level text helpers shared by the encoders: UTF-8-safe truncation and
//! JSON string escaping.

/// Returns the longest prefix of `text` that fits in `max_bytes` without
/// splitting a UTF-8 sequence.
pub fn truncate_utf8(text: &str, max_bytes: usize) -> &str {
    if text.len() <= max_bytes {
        return text;
    }
    let mut end = max_bytes;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Returns the longest prefix of `bytes` of at most `max_bytes` that ends on a
/// UTF-8 character boundary. `bytes` must be valid UTF-8 up to that point.
pub fn utf8_prefix_len(bytes: &[u8], max_bytes: usize) -> usize {
    if bytes.len() <= max_bytes {
        return bytes.len();
    }
    let mut end = max_bytes;
    // Continuation bytes are 0b10xx_xxxx; step back to a lead byte.
    while end > 0 && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    end
}

/// Appends `text` as a JSON string literal. Control characters are escaped,
/// so the output never contains a raw CR, LF or NUL.
pub fn write_json_str(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";

    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    while let Some(found) = find_escape(&bytes[start..]) {
        let index = start + found;
        out.extend_from_slice(&bytes[start..index]);
        let byte = bytes[index];
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            _ => b"",
        };
        if escape.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0x0f)]);
        } else {
            out.extend_from_slice(escape);
        }
        start = index + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Returns whether JSON requires `byte` to be escaped inside a string.
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Returns the index of the first byte of `bytes` that [`needs_escape`].
/// It tests eight bytes at a time, because most strings need no escape.
fn find_escape(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    // Tells whether some byte of `word` is below `limit` (at most 0x80). The
    // subtraction sets the high bit of such a byte, and `!word` leaves out
    // bytes whose high bit was set already.
    let has_byte_below =
        |word: u64, limit: u8| word.wrapping_sub(ONES * u64::from(limit)) & !word & HIGH_BITS != 0;

    let mut chunks = bytes.chunks_exact(8);
    let mut offset = 0;
    for chunk in &mut chunks {
        let Ok(array) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(array);
        let candidate = has_byte_below(word, 0x20)
            || has_byte_below(word ^ (ONES * u64::from(b'"')), 1)
            || has_byte_below(word ^ (ONES * u64::from(b'\\')), 1);
        if candidate {
            return chunk
                .iter()
                .position(|&byte| needs_escape(byte))
                .map(|index| offset + index);
        }
        offset += 8;
    }
    let rest = &bytes[offset..];
    rest.iter()
        .position(|&byte| needs_escape(byte))
        .map(|index| offset + index)
}

/// Converts a camelCase API field name to the snake_case ECS uses
/// (`processedTime` → `processed_time`, `userID` → `user_id`).
pub fn snake_case(name: &str, out: &mut String) {
    out.clear();
    let mut previous: Option<char> = None;
    let mut chars = name.chars().peekable();
    while let Some(current) = chars.next() {
        if current.is_uppercase() {
            let next = chars.peek();
            let after_lower = previous.is_some_and(|c| c.is_lowercase() || c.is_ascii_digit());
            let ends_acronym =
                previous.is_some_and(char::is_uppercase) && next.is_some_and(|c| c.is_lowercase());
            if after_lower || ends_acronym {
                out.push('_');
            }
            out.extend(current.to_lowercase());
        } else {
            out.push(current);
        }
        previous = Some(current);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn json(text: &str) -> String {
        let mut out = Vec::new();
        write_json_str(&mut out, text);
        String::from_utf8(out).unwrap()
    }

    fn snake(name: &str) -> String {
        let mut out = String::new();
        snake_case(name, &mut out);
        out
    }

    #[test]
    fn truncation_keeps_whole_characters() {
        assert_eq!(truncate_utf8("aé", 2), "a");
    }

    #[test]
    fn truncation_keeps_short_text() {
        assert_eq!(truncate_utf8("abc", 3), "abc");
    }

    #[test]
    fn prefix_length_steps_back_over_emoji() {
        assert_eq!(utf8_prefix_len("a📁".as_bytes(), 3), 1);
    }

    #[test]
    fn json_escapes_newline_and_nul() {
        assert_eq!(json("a\nb\0"), r#""a\nb\u0000""#);
    }

    #[test]
    fn json_matches_serde_json_at_every_position() {
        for special in ['"', '\\', '\u{1}', '\u{1f}', '\n'] {
            for position in 0..20 {
                let text: String = (0..20)
                    .map(|index| if index == position { special } else { 'é' })
                    .collect();
                assert_eq!(json(&text), serde_json::to_string(&text).unwrap());
            }
        }
    }

    #[test]
    fn json_keeps_text_without_escapes() {
        let text = "C:\u{7f}/Program Files/ü/📁 0123456789abcdef";
        assert_eq!(json(text), format!("\"{text}\""));
    }

    #[test]
    fn json_output_parses_back() {
        let text = "q\"b\\s\u{1f}é📁";
        let parsed: String = serde_json::from_str(&json(text)).unwrap();
        assert_eq!(parsed, text);
    }

    #[test]
    fn snake_case_splits_camel_case() {
        assert_eq!(snake("processedTime"), "processed_time");
    }

    #[test]
    fn snake_case_keeps_trailing_acronyms_together() {
        assert_eq!(snake("userID"), "user_id");
    }

    #[test]
    fn snake_case_splits_leading_acronyms() {
        assert_eq!(snake("HTTPServer"), "http_server");
    }

    #[test]
    fn snake_case_of_non_ascii_names() {
        assert_eq!(snake("fileÉtat"), "file_état");
        assert_eq!(snake("ÀBc"), "à_bc");
        assert_eq!(snake("aİb"), "a_i\u{307}b");
        assert_eq!(snake("ΣΑΣa"), "σα_σa");
        assert_eq!(snake("x9Y"), "x9_y");
        assert_eq!(snake(""), "");
    }
}
