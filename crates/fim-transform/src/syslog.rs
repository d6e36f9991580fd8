//! Syslog messages (RFC 5424 and RFC 3164) carrying CEF or compact JSON.
//!
//! RFC 5424: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [fim@PEN …] MSG`.
//! PRI is facility × 8 + severity (RFC 5424 section 6.2.1). TIMESTAMP is RFC
//! 3339 UTC with three fraction digits. HOSTNAME, APP-NAME, PROCID and MSGID
//! are printable US-ASCII (33–126) of at most 255, 48, 128 and 32
//! characters, or `-` when empty (section 6). Structured-data values escape `"`, `\` and
//! `]` (section 6.3.3). MSG has no BOM, so receivers treat it as MSG-ANY:
//! CEF receivers match on a leading `CEF:` and a BOM would hide it.
//!
//! RFC 3164: `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG: MSG`, the day padded with a
//! space, the time in UTC, HOSTNAME without its domain, TAG alphanumeric up
//! to 32 characters, the whole message at most 1024 bytes (section 4.1).
//!
//! A raw LF ends a frame on LF-framed transports, so CR, LF and NUL never
//! reach the output: header fields replace them, structured data escapes
//! them as `\r`, `\n`, `\0`, and both payloads escape them on their own.

use std::net::IpAddr;

use fim_model::{Record, RecordKind, Timestamp};

use crate::cef::write_cef;
use crate::config::{CefOptions, ConfigError, SyslogOptions, SyslogPayload};
use crate::json::write_envelope;
use crate::policy::FieldPolicy;
use crate::severity;
use crate::text::utf8_prefix_len;
use crate::{EncodeError, Encoder};

/// RFC 3164 section 4.1: a message is at most 1024 bytes.
pub const RFC3164_MAX_BYTES: usize = 1024;

/// The private enterprise number RFC 5612 reserves for documentation.
const DOCUMENTATION_PEN: u32 = 32473;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The parts both syslog flavours share.
#[derive(Debug, Clone)]
struct Common {
    policy: FieldPolicy,
    facility: u8,
    hostname: Option<String>,
    payload: SyslogPayload,
    device_version: String,
}

impl Common {
    fn new(
        policy: FieldPolicy,
        options: &SyslogOptions,
        cef: &CefOptions,
    ) -> Result<Self, ConfigError> {
        if let Some(hostname) = &options.hostname
            && !is_printable_ascii(hostname, 255)
        {
            return Err(ConfigError::InvalidHostname(hostname.clone()));
        }
        // Validates the device version the CEF payload uses.
        crate::cef::CefEncoder::new(FieldPolicy::default(), cef)?;

        Ok(Self {
            policy,
            facility: options.facility.0,
            hostname: options.hostname.clone(),
            payload: options.payload,
            device_version: cef.device_version.clone(),
        })
    }

    fn pri(&self, record: &Record) -> u16 {
        u16::from(self.facility) * 8 + u16::from(severity::syslog(record.severity()))
    }

    fn write_payload(&self, record: &Record, out: &mut Vec<u8>) {
        match self.payload {
            SyslogPayload::Cef => write_cef(record, &self.policy, &self.device_version, out),
            SyslogPayload::Json => write_envelope(record, &self.policy, out),
        }
    }
}

fn is_printable_ascii(text: &str, max_len: usize) -> bool {
    !text.is_empty() && text.len() <= max_len && text.bytes().all(|b| (33..=126).contains(&b))
}

/// Appends `text` as a syslog header field: printable US-ASCII only (others
/// become `_`), at most `max_len` bytes, `-` when empty.
fn push_header_field(out: &mut Vec<u8>, text: Option<&str>, max_len: usize) {
    let start = out.len();
    for ch in text.unwrap_or("").chars() {
        if out.len() - start >= max_len {
            break;
        }
        // The range check makes the cast lossless.
        #[allow(clippy::cast_possible_truncation)]
        let byte = if (33..=126).contains(&u32::from(ch)) {
            ch as u8
        } else {
            b'_'
        };
        out.push(byte);
    }
    if out.len() == start {
        out.push(b'-');
    }
}

/// Appends a structured-data parameter value, escaped per RFC 5424 section
/// 6.3.3, with CR, LF and NUL written as `\r`, `\n`, `\0` and other control
/// characters (except tab) as U+FFFD.
fn push_sd_value(out: &mut Vec<u8>, value: &str) {
    for ch in value.chars() {
        match ch {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            ']' => out.extend_from_slice(b"\\]"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\0' => out.extend_from_slice(b"\\0"),
            _ => {
                let ch = if ch.is_control() && ch != '\t' {
                    char::REPLACEMENT_CHARACTER
                } else {
                    ch
                };
                out.extend_from_slice(ch.encode_utf8(&mut [0u8; 4]).as_bytes());
            }
        }
    }
}

fn push_number(out: &mut Vec<u8>, value: u16) {
    out.extend_from_slice(value.to_string().as_bytes());
}

/// Returns MSGID for a stream.
pub fn msg_id(kind: RecordKind) -> &'static str {
    match kind {
        RecordKind::Event => "FIM_EVENT",
        RecordKind::IgnoredEvent => "FIM_IGNORED_EVENT",
        RecordKind::Incident => "FIM_INCIDENT",
        RecordKind::IncidentEvent => "FIM_INCIDENT_EVENT",
    }
}

/// Encodes records as RFC 5424 messages (no framing, no trailing newline).
#[derive(Debug, Clone)]
pub struct Rfc5424Encoder {
    common: Common,
    app_name: String,
    sd_id: String,
}

impl Rfc5424Encoder {
    pub fn new(
        policy: FieldPolicy,
        options: &SyslogOptions,
        cef: &CefOptions,
    ) -> Result<Self, ConfigError> {
        let pen = options.pen.ok_or(ConfigError::MissingPen)?;
        if pen == 0 || pen == DOCUMENTATION_PEN {
            return Err(ConfigError::InvalidPen(pen));
        }
        if !is_printable_ascii(&options.app_name, 48) {
            return Err(ConfigError::InvalidAppName(options.app_name.clone()));
        }

        Ok(Self {
            common: Common::new(policy, options, cef)?,
            app_name: options.app_name.clone(),
            sd_id: format!("fim@{pen}"),
        })
    }
}

impl Encoder for Rfc5424Encoder {
    fn encode(&self, record: &Record, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let record = self.common.policy.apply(record);

        out.push(b'<');
        push_number(out, self.common.pri(&record));
        out.extend_from_slice(b">1 ");
        let formatted = record
            .event_time()
            .is_some_and(|time| time.write_rfc3339(out));
        if !formatted {
            out.push(b'-');
        }
        out.push(b' ');

        let asset_host = record.asset().host_name();
        let hostname = self.common.hostname.as_deref().or(asset_host.as_deref());
        push_header_field(out, hostname, 255);
        out.push(b' ');
        push_header_field(out, Some(&self.app_name), 48);
        out.extend_from_slice(b" - ");
        out.extend_from_slice(msg_id(record.kind()).as_bytes());
        out.push(b' ');

        out.push(b'[');
        out.extend_from_slice(self.sd_id.as_bytes());
        out.extend_from_slice(b" id=\"");
        push_sd_value(out, record.id());
        out.extend_from_slice(b"\" stream=\"");
        out.extend_from_slice(record.kind().stream_name().as_bytes());
        out.push(b'"');
        if let Some(agent_id) = record.asset().agent_id() {
            out.extend_from_slice(b" agentId=\"");
            push_sd_value(out, &agent_id);
            out.push(b'"');
        }
        if let Some(level) = record.severity() {
            out.extend_from_slice(b" sev=\"");
            push_number(out, u16::from(level.level()));
            out.push(b'"');
        }
        out.extend_from_slice(b"] ");

        self.common.write_payload(&record, out);
        Ok(())
    }
}

/// Encodes records as RFC 3164 messages of at most 1024 bytes.
#[derive(Debug, Clone)]
pub struct Rfc3164Encoder {
    common: Common,
    tag: String,
}

impl Rfc3164Encoder {
    pub fn new(
        policy: FieldPolicy,
        options: &SyslogOptions,
        cef: &CefOptions,
    ) -> Result<Self, ConfigError> {
        // RFC 3164 section 4.1.3: a non-alphanumeric character ends the TAG.
        let tag: String = options
            .app_name
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .take(32)
            .collect();
        if tag.is_empty() {
            return Err(ConfigError::InvalidAppName(options.app_name.clone()));
        }

        Ok(Self {
            common: Common::new(policy, options, cef)?,
            tag,
        })
    }
}

impl Encoder for Rfc3164Encoder {
    fn encode(&self, record: &Record, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let record = self.common.policy.apply(record);
        let start = out.len();

        out.push(b'<');
        push_number(out, self.common.pri(&record));
        out.push(b'>');
        // NOTE: a record with no usable time is stamped with its fetch time,
        // or 1 January 00:00:00 without one, because RFC 3164 has no NILVALUE.
        let civil = record
            .event_time()
            .and_then(Timestamp::civil)
            .or_else(|| record.fetch().and_then(|fetch| fetch.fetched_at.civil()))
            .or_else(|| Timestamp::from_unix_ms(0).civil());
        if let Some(civil) = civil {
            out.extend_from_slice(MONTHS[usize::from(civil.month - 1) % 12]);
            out.push(b' ');
            if civil.day < 10 {
                out.push(b' ');
            }
            push_number(out, u16::from(civil.day));
            out.push(b' ');
            for (index, part) in [civil.hour, civil.minute, civil.second]
                .into_iter()
                .enumerate()
            {
                if index > 0 {
                    out.push(b':');
                }
                if part < 10 {
                    out.push(b'0');
                }
                push_number(out, u16::from(part));
            }
            out.push(b' ');
        }

        let asset_host = record.asset().host_name();
        let hostname = self.common.hostname.as_deref().or(asset_host.as_deref());
        push_rfc3164_hostname(out, hostname);
        out.push(b' ');
        out.extend_from_slice(self.tag.as_bytes());
        out.extend_from_slice(b": ");

        self.common.write_payload(&record, out);
        cap_message(out, start, RFC3164_MAX_BYTES);
        Ok(())
    }
}

/// RFC 3164 section 4.1.2: HOSTNAME has no domain part; IP addresses stay
/// whole.
fn short_hostname(hostname: &str) -> &str {
    if hostname.parse::<IpAddr>().is_ok() {
        return hostname;
    }
    hostname.split('.').next().unwrap_or(hostname)
}

/// Appends an RFC 3164 HOSTNAME: an IP address as is, else the host name
/// without its domain, letters, digits, `-` and `_` only (others become
/// `_`), because relays find the TAG by the first `:` or space after it.
fn push_rfc3164_hostname(out: &mut Vec<u8>, hostname: Option<&str>) {
    let Some(hostname) = hostname else {
        out.push(b'-');
        return;
    };
    if hostname.parse::<IpAddr>().is_ok() {
        out.extend_from_slice(hostname.as_bytes());
        return;
    }

    let start = out.len();
    for ch in short_hostname(hostname).chars().take(255) {
        let keep = ch.is_ascii_alphanumeric() || ch == '-' || ch == '_';
        // `keep` admits ASCII only, so the cast is lossless.
        #[allow(clippy::cast_possible_truncation)]
        out.push(if keep { ch as u8 } else { b'_' });
    }
    if out.len() == start {
        out.push(b'-');
    }
}

/// Cuts the message that starts at `start` to `max_bytes`, on a UTF-8
/// boundary and not inside a backslash escape, so a cut CEF line does not
/// end with a lone `\`.
fn cap_message(out: &mut Vec<u8>, start: usize, max_bytes: usize) {
    if out.len() - start <= max_bytes {
        return;
    }
    let mut end = start + utf8_prefix_len(&out[start..], max_bytes);
    let backslashes = out[start..end]
        .iter()
        .rev()
        .take_while(|&&b| b == b'\\')
        .count();
    if backslashes % 2 == 1 {
        end -= 1;
    }
    out.truncate(end);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd(value: &str) -> String {
        let mut out = Vec::new();
        push_sd_value(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    fn field(value: &str, max: usize) -> String {
        let mut out = Vec::new();
        push_header_field(&mut out, Some(value), max);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn sd_value_escapes_quote_backslash_bracket() {
        assert_eq!(sd("a\"b\\c]d"), "a\\\"b\\\\c\\]d");
    }

    #[test]
    fn sd_value_escapes_line_breaks_and_nul() {
        assert_eq!(sd("a\r\n\0"), "a\\r\\n\\0");
    }

    #[test]
    fn header_field_replaces_spaces_and_non_ascii() {
        assert_eq!(field("web 03é", 255), "web_03_");
    }

    #[test]
    fn header_field_respects_its_limit() {
        assert_eq!(field("abcdef", 4), "abcd");
    }

    #[test]
    fn empty_header_field_is_nil() {
        assert_eq!(field("", 4), "-");
    }

    #[test]
    fn short_hostname_drops_the_domain() {
        assert_eq!(short_hostname("web-03.corp.example"), "web-03");
    }

    #[test]
    fn short_hostname_keeps_ip_addresses() {
        assert_eq!(short_hostname("10.20.40.3"), "10.20.40.3");
    }

    #[test]
    fn rfc3164_hostname_replaces_colons() {
        let mut out = Vec::new();
        push_rfc3164_hostname(&mut out, Some("a:b c.example"));
        assert_eq!(out, b"a_b_c");
    }

    #[test]
    fn rfc3164_hostname_keeps_ipv6_addresses() {
        let mut out = Vec::new();
        push_rfc3164_hostname(&mut out, Some("fe80::1"));
        assert_eq!(out, b"fe80::1");
    }

    #[test]
    fn cap_does_not_leave_a_lone_backslash() {
        let mut out = b"ab\\\\cd".to_vec();
        cap_message(&mut out, 0, 3);
        assert_eq!(out, b"ab");
    }

    #[test]
    fn documentation_pen_is_rejected() {
        let options = SyslogOptions {
            pen: Some(DOCUMENTATION_PEN),
            ..SyslogOptions::default()
        };
        let error = Rfc5424Encoder::new(FieldPolicy::default(), &options, &CefOptions::default())
            .unwrap_err();
        assert_eq!(error, ConfigError::InvalidPen(DOCUMENTATION_PEN));
    }
}
