//! ArcSight Common Event Format (CEF) lines.
//!
//! `CEF:0|Qualys|FIM|<version>|<class id>|<name>|<severity>|<extension>`.
//! Header fields and extension values have separate escaping rules (CEF
//! Implementation Standard v25): a header escapes `\` and `|`, an extension
//! value escapes `\`, `=`, LF (`\n`) and CR (`\r`) and leaves `|` alone.
//! Header fields cannot carry line breaks, so CR and LF become spaces there.
//! CEF defines no escape for other control characters, so NUL and the rest
//! of Unicode's control category (except tab) become U+FFFD in both parts;
//! that keeps every line free of bytes receivers treat as frame ends.
//!
//! Values are cut to each key's length limit in bytes, on a UTF-8 boundary,
//! before escaping, so a receiver's unescaped value fits the limit. Keys with
//! no value are left out rather than sent empty. `oldContent` and
//! `newContent` have no CEF key and are never sent, except the old path of a
//! rename (`oldFilePath`, `oldFileName`).

use std::net::Ipv4Addr;

use fim_model::{MacAddress, Record, RecordKind, Timestamp};

use crate::config::{CefOptions, ConfigError};
use crate::policy::FieldPolicy;
use crate::severity;
use crate::text::truncate_utf8;
use crate::{EncodeError, Encoder};

/// Device Version header limit in bytes.
const DEVICE_VERSION_MAX: usize = 31;
/// Device Event Class ID header limit in bytes.
const CLASS_ID_MAX: usize = 1023;
/// Name header limit in bytes.
const NAME_MAX: usize = 512;

/// Encodes records as CEF lines (no syslog header, no trailing newline).
#[derive(Debug, Clone)]
pub struct CefEncoder {
    policy: FieldPolicy,
    device_version: String,
}

impl CefEncoder {
    pub fn new(policy: FieldPolicy, options: &CefOptions) -> Result<Self, ConfigError> {
        let version = &options.device_version;
        let valid = !version.is_empty()
            && version.len() <= DEVICE_VERSION_MAX
            && !version.chars().any(char::is_control);
        if !valid {
            return Err(ConfigError::InvalidDeviceVersion(version.clone()));
        }
        Ok(Self {
            policy,
            device_version: version.clone(),
        })
    }
}

impl Encoder for CefEncoder {
    fn encode(&self, record: &Record, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        let record = self.policy.apply(record);
        write_cef(&record, &self.policy, &self.device_version, out);
        Ok(())
    }
}

/// Appends the CEF line of an already filtered record.
pub(crate) fn write_cef(record: &Record, policy: &FieldPolicy, version: &str, out: &mut Vec<u8>) {
    let name = event_name(record);

    out.extend_from_slice(b"CEF:0|Qualys|FIM|");
    push_header(out, version, DEVICE_VERSION_MAX);
    out.push(b'|');
    push_header(out, &class_id(record), CLASS_ID_MAX);
    out.push(b'|');
    push_header(out, &name, NAME_MAX);
    out.push(b'|');
    match record.severity() {
        Some(level) => push_int(out, i64::from(severity::cef(level))),
        // Incidents carry no severity; CEF spells that `Unknown`.
        None => out.extend_from_slice(b"Unknown"),
    }
    out.push(b'|');

    let mut ext = Extension { out, empty: true };
    if record.kind().is_incident() {
        write_incident_extension(record, &mut ext);
    } else {
        write_event_extension(record, policy, &name, &mut ext);
    }
}

/// Returns the Device Event Class ID, stable per stream, type and action, e.g.
/// `FIM:FILE:CONTENT`, `FIM:IGNORED:REGISTRY_VALUE:DELETE`, `FIM:INCIDENT`.
pub fn class_id(record: &Record) -> String {
    match record.kind() {
        RecordKind::Incident => "FIM:INCIDENT".to_owned(),
        kind => {
            let prefix = if kind == RecordKind::IgnoredEvent {
                "FIM:IGNORED:"
            } else {
                "FIM:"
            };
            let mut id = String::from(prefix);
            push_token(&mut id, record.object_type().as_deref());
            id.push(':');
            push_token(&mut id, record.action().as_deref());
            id
        }
    }
}

/// Appends a source word as an uppercase token of `A-Z`, `0-9` and `_`, at
/// most 64 bytes, so class ids stay short and free of separators.
fn push_token(id: &mut String, word: Option<&str>) {
    let Some(word) = word.map(str::trim).filter(|word| !word.is_empty()) else {
        id.push_str("UNKNOWN");
        return;
    };
    for ch in word.chars().take(64) {
        if ch.is_ascii_alphanumeric() {
            id.push(ch.to_ascii_uppercase());
        } else {
            id.push('_');
        }
    }
}

/// Returns the human-readable Name header, e.g. `File content modified`.
pub fn event_name(record: &Record) -> String {
    if record.kind().is_incident() {
        return match record.incident().status() {
            Some(status) => format!("FIM incident {}", status.to_lowercase()),
            None => "FIM incident".to_owned(),
        };
    }

    let subject = record.object_type();
    let subject = subject.as_deref().unwrap_or("Object");
    let action = record.action();
    let phrase = match action.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("create") => "created".to_owned(),
        Some("content") => "content modified".to_owned(),
        Some("delete") => "deleted".to_owned(),
        Some("rename") => "renamed".to_owned(),
        Some("attributes") => "attributes modified".to_owned(),
        Some("security") => "permissions modified".to_owned(),
        Some(other) => other.to_owned(),
        None => "changed".to_owned(),
    };
    let name = format!("{subject} {phrase}");
    if record.kind() == RecordKind::IgnoredEvent {
        format!("Ignored: {name}")
    } else {
        name
    }
}

/// Appends a header field: `\` and `|` escaped, CR and LF as spaces, other
/// control characters as U+FFFD.
fn push_header(out: &mut Vec<u8>, value: &str, max_bytes: usize) {
    let value = truncate_utf8(value, max_bytes);
    for ch in value.chars() {
        match ch {
            '\\' => out.extend_from_slice(b"\\\\"),
            '|' => out.extend_from_slice(b"\\|"),
            '\r' | '\n' => out.push(b' '),
            _ => push_char_scrubbed(out, ch),
        }
    }
}

/// Appends an extension value: `\`, `=`, LF and CR escaped, other control
/// characters as U+FFFD.
pub(crate) fn push_ext_value(out: &mut Vec<u8>, value: &str) {
    let plain = value
        .bytes()
        .all(|b| b != b'\\' && b != b'=' && b >= 0x20 && b != 0x7f && b != 0xc2);
    if plain {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    for ch in value.chars() {
        match ch {
            '\\' => out.extend_from_slice(b"\\\\"),
            '=' => out.extend_from_slice(b"\\="),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            _ => push_char_scrubbed(out, ch),
        }
    }
}

fn push_char_scrubbed(out: &mut Vec<u8>, ch: char) {
    let ch = if ch.is_control() && ch != '\t' {
        char::REPLACEMENT_CHARACTER
    } else {
        ch
    };
    let mut buffer = [0u8; 4];
    out.extend_from_slice(ch.encode_utf8(&mut buffer).as_bytes());
}

fn push_int(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(value.to_string().as_bytes());
}

/// The extension part being written.
struct Extension<'o> {
    out: &'o mut Vec<u8>,
    empty: bool,
}

impl Extension<'_> {
    /// Writes `key=value`, cut to `max_bytes`; an absent or empty value
    /// writes nothing.
    fn text(&mut self, key: &str, value: Option<&str>, max_bytes: usize) {
        let Some(value) = value.map(|value| truncate_utf8(value, max_bytes)) else {
            return;
        };
        if value.is_empty() {
            return;
        }
        self.key(key);
        push_ext_value(self.out, value);
    }

    fn int(&mut self, key: &str, value: Option<i64>) {
        if let Some(value) = value {
            self.key(key);
            push_int(self.out, value);
        }
    }

    fn time(&mut self, key: &str, value: Option<Timestamp>) {
        self.int(key, value.map(Timestamp::unix_ms));
    }

    /// Writes a custom slot and its constant label, only when it has a value.
    fn labelled(&mut self, key: &str, label: &str, value: Option<&str>, max_bytes: usize) {
        let before = self.out.len();
        self.text(key, value, max_bytes);
        if self.out.len() > before {
            self.key(&format!("{key}Label"));
            push_ext_value(self.out, label);
        }
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.out.push(b' ');
        }
        self.empty = false;
        self.out.extend_from_slice(key.as_bytes());
        self.out.push(b'=');
    }
}

fn join<'a>(values: impl Iterator<Item = std::borrow::Cow<'a, str>>, separator: &str) -> String {
    let mut joined = String::new();
    for value in values {
        if !joined.is_empty() {
            joined.push_str(separator);
        }
        joined.push_str(&value);
    }
    joined
}

fn write_event_extension(record: &Record, policy: &FieldPolicy, name: &str, ext: &mut Extension) {
    let asset = record.asset();
    let actor = record.actor();
    let path = record.full_path();
    let object_type = record.object_type();
    let action = record.action();

    ext.time("rt", record.event_time());
    if record.processed_time().is_some() {
        ext.time("deviceCustomDate1", record.processed_time());
        ext.text("deviceCustomDate1Label", Some("Processed Time"), 1023);
    }
    ext.text("externalId", Some(record.id()), 40);
    ext.text("act", action.as_deref(), 63);
    let category = format!(
        "/Qualys/FIM/{}/{}",
        object_type.as_deref().unwrap_or("Unknown"),
        action.as_deref().unwrap_or("Unknown")
    );
    ext.text("cat", Some(&category), 1023);
    ext.text("fname", record.name().as_deref(), 1023);
    ext.text("filePath", path.as_deref(), 1023);
    ext.text("fileType", object_type.as_deref(), 1023);
    ext.text("fileHash", record.new_hash().as_deref(), 255);
    ext.text("oldFileHash", record.old_hash().as_deref(), 255);

    let is_rename = action
        .as_deref()
        .is_some_and(|action| action.eq_ignore_ascii_case("Rename"));
    if is_rename {
        let old_path = policy.content_text(record, "oldContent");
        ext.text("oldFilePath", old_path.as_deref(), 1023);
        let separators: &[char] = if record.has_windows_paths() {
            &['\\', '/']
        } else {
            &['/']
        };
        let old_name = old_path
            .as_deref()
            .map(|old| old.rsplit(separators).next().unwrap_or(old));
        ext.text("oldFileName", old_name, 1023);
    }

    ext.text("suser", actor.user_name().as_deref(), 1023);
    ext.text("suid", actor.user_id().as_deref(), 1023);
    ext.text("sproc", actor.process().as_deref(), 1023);
    ext.int("spid", actor.process_id());

    let host = asset.host_name();
    ext.text("dvchost", host.as_deref(), 100);
    ext.text("dhost", host.as_deref(), 1023);

    // `dvc` and `dst` take IPv4 only; the MAC of the same interface is the
    // device's, else the first 48-bit MAC.
    let mut ipv4 = None;
    let mut mac = None;
    for interface in asset.interfaces() {
        let parsed_mac = interface
            .mac_address()
            .as_deref()
            .and_then(MacAddress::parse)
            .filter(|mac| mac.is_eui48());
        let address = interface.address().and_then(|a| a.parse::<Ipv4Addr>().ok());
        if ipv4.is_none() && address.is_some() {
            ipv4 = address;
            mac = parsed_mac.or(mac);
        } else if mac.is_none() {
            mac = parsed_mac;
        }
    }
    let ipv4 = ipv4.map(|address| address.to_string());
    ext.text("dvc", ipv4.as_deref(), 15);
    ext.text("dst", ipv4.as_deref(), 15);
    if let Some(mac) = mac {
        let mut text = Vec::with_capacity(17);
        mac.write(b':', &mut text);
        ext.text("dvcmac", std::str::from_utf8(&text).ok(), 17);
    }
    ext.text("deviceExternalId", asset.agent_id().as_deref(), 255);

    let message = match path.as_deref() {
        Some(path) => format!("{name}: {path}"),
        None => name.to_owned(),
    };
    ext.text("msg", Some(&message), 1023);

    let profiles = join(record.profiles().filter_map(|p| p.name()), ", ");
    let rules = join(
        record
            .profiles()
            .flat_map(|profile| profile.rules())
            .filter_map(|rule| rule.name().or_else(|| rule.id())),
        ", ",
    );
    let attributes = join(record.changed_attributes(), ",");
    let tags = join(asset.tags(), ",");
    ext.labelled("cs1", "Profiles", Some(&profiles), 4000);
    ext.labelled("cs2", "Rules", Some(&rules), 4000);
    ext.labelled("cs3", "Changed Attributes", Some(&attributes), 4000);
    ext.labelled("cs4", "Incident ID", record.incident_id().as_deref(), 4000);
    ext.labelled(
        "cs5",
        "Process Image Path",
        actor.image_path().as_deref(),
        4000,
    );
    ext.labelled("cs6", "Asset Tags", Some(&tags), 4000);
    if let Some(level) = record.severity() {
        ext.int("cn1", Some(i64::from(level.level())));
        ext.text("cn1Label", Some("Qualys Severity"), 1023);
    }
    ext.labelled(
        "flexString1",
        "Customer ID",
        record.customer_id().as_deref(),
        1023,
    );
    ext.labelled(
        "flexString2",
        "OS",
        asset.operating_system().as_deref(),
        1023,
    );
}

fn write_incident_extension(record: &Record, ext: &mut Extension) {
    let incident = record.incident();
    let status = incident.status();
    let updater = incident.last_updated_by();
    let creator = incident.created_by();

    ext.time("rt", record.event_time());
    if record.created_time().is_some() {
        ext.time("deviceCustomDate2", record.created_time());
        ext.text("deviceCustomDate2Label", Some("Created Time"), 1023);
    }
    ext.text("externalId", Some(record.id()), 40);
    ext.text("act", status.as_deref(), 63);
    let category = format!(
        "/Qualys/FIM/Incident/{}",
        status.as_deref().unwrap_or("Unknown")
    );
    ext.text("cat", Some(&category), 1023);
    ext.text("outcome", incident.approval_status().as_deref(), 63);
    let user_name = updater.name().or_else(|| creator.name());
    let user_id = updater.id().or_else(|| creator.id());
    ext.text("suser", user_name.as_deref(), 1023);
    ext.text("suid", user_id.as_deref(), 1023);
    ext.time("start", incident.filter_from());
    ext.time("end", incident.filter_to());
    ext.text("msg", incident.name().as_deref(), 1023);
    ext.text("reason", incident.comment().as_deref(), 1023);
    ext.labelled("cs4", "Incident ID", Some(record.id()), 4000);
    ext.labelled(
        "flexString1",
        "Customer ID",
        record.customer_id().as_deref(),
        1023,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(value: &str) -> String {
        let mut out = Vec::new();
        push_ext_value(&mut out, value);
        String::from_utf8(out).unwrap()
    }

    fn header(value: &str) -> String {
        let mut out = Vec::new();
        push_header(&mut out, value, 512);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn extension_escapes_equals_and_backslash() {
        assert_eq!(ext("C:\\x=1"), "C:\\\\x\\=1");
    }

    #[test]
    fn extension_leaves_pipes_alone() {
        assert_eq!(ext("a|b"), "a|b");
    }

    #[test]
    fn extension_escapes_line_breaks() {
        assert_eq!(ext("a\r\nb"), "a\\r\\nb");
    }

    #[test]
    fn extension_replaces_nul() {
        assert_eq!(ext("a\0b"), "a\u{fffd}b");
    }

    #[test]
    fn header_escapes_pipes_not_equals() {
        assert_eq!(header("a|b=c\\"), "a\\|b=c\\\\");
    }

    #[test]
    fn header_turns_newlines_into_spaces() {
        assert_eq!(header("a\nb"), "a b");
    }

    #[test]
    fn class_token_replaces_separators() {
        let mut id = String::new();
        push_token(&mut id, Some("Registry Value|x"));
        assert_eq!(id, "REGISTRY_VALUE_X");
    }
}
