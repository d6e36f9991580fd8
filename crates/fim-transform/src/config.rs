//! Per-sink encoder options, as read from the sink's TOML table.
//!
//! ```toml
//! encoding = "syslog_rfc5424"     # ecs | cef | syslog_rfc5424 | syslog_rfc3164 | json | flat_json
//! exclude = ["asset.tags"]        # dotted source field paths
//! content_max_bytes = "256B"      # oldContent/newContent cap; 0 (default) drops them
//! [syslog]
//! pen = 99999                     # your IANA private enterprise number
//! facility = "local3"
//! payload = "cef"
//! ```

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

/// The output format of a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Elastic Common Schema JSON document.
    Ecs,
    /// ArcSight Common Event Format line, without a syslog header.
    Cef,
    /// RFC 5424 syslog message carrying CEF or compact JSON.
    #[serde(alias = "syslog")]
    SyslogRfc5424,
    /// RFC 3164 (BSD) syslog message carrying CEF or compact JSON.
    SyslogRfc3164,
    /// The record as received, wrapped with its stream and fetch metadata.
    Json,
    /// The record as received with nested fields flattened to dotted keys.
    #[serde(alias = "flat")]
    FlatJson,
}

/// Options of one sink's encoder.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderConfig {
    pub encoding: Encoding,

    /// Source field paths to keep (dotted, array indices left out: `asset.interfaces.address`
    /// matches the address of every interface). Empty keeps every field. `id` is always
    /// kept because it is the dedup key.
    #[serde(default)]
    pub include: Vec<String>,

    /// Source field paths to remove, applied after `include`. `id` may not be excluded.
    #[serde(default)]
    pub exclude: Vec<String>,

    /// Maximum size of `oldContent` and `newContent` (registry values and file content, which
    /// can hold secrets). 0, the default, drops both fields. Rename events are exempt because
    /// those fields then hold the old and new path.
    #[serde(default)]
    pub content_max_bytes: ByteSize,

    #[serde(default)]
    pub ecs: EcsOptions,

    #[serde(default)]
    pub cef: CefOptions,

    #[serde(default)]
    pub syslog: SyslogOptions,
}

impl EncoderConfig {
    /// Returns the options for `encoding` with every other option at its default.
    pub fn new(encoding: Encoding) -> Self {
        Self {
            encoding,
            include: Vec::new(),
            exclude: Vec::new(),
            content_max_bytes: ByteSize(0),
            ecs: EcsOptions::default(),
            cef: CefOptions::default(),
            syslog: SyslogOptions::default(),
        }
    }
}

/// ECS output options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EcsOptions {
    /// `data_stream.namespace`: lowercase letters, digits and `_`, at most 100 bytes.
    pub namespace: String,
    /// `agent.version`, the version of this forwarder reported in each document.
    pub agent_version: String,
}

impl Default for EcsOptions {
    fn default() -> Self {
        Self {
            namespace: "default".to_owned(),
            agent_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// CEF output options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CefOptions {
    /// The Device Version header field (at most 31 bytes).
    pub device_version: String,
}

impl Default for CefOptions {
    fn default() -> Self {
        Self {
            device_version: env!("CARGO_PKG_VERSION").to_owned(),
        }
    }
}

/// Syslog output options, shared by RFC 5424 and RFC 3164.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogOptions {
    /// Facility name (`local0` … `local7`, `user`, `daemon`, `auth`, …) or code 0–23.
    pub facility: Facility,
    /// IANA private enterprise number for the `fim@<PEN>` structured-data id. Required for
    /// RFC 5424; 32473 is the documentation example and is rejected.
    pub pen: Option<u32>,
    /// APP-NAME (RFC 5424, at most 48 printable ASCII characters). RFC 3164 uses its letters
    /// and digits as the TAG.
    pub app_name: String,
    /// HOSTNAME of every message. Unset uses each record's asset host name, which makes
    /// receivers such as QRadar file events under one log source per host.
    pub hostname: Option<String>,
    /// The message body.
    pub payload: SyslogPayload,
}

impl Default for SyslogOptions {
    fn default() -> Self {
        Self {
            facility: Facility(16),
            pen: None,
            app_name: "qualys-fim".to_owned(),
            hostname: None,
            payload: SyslogPayload::Cef,
        }
    }
}

/// The body (MSG) of a syslog message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogPayload {
    Cef,
    /// The "as received" JSON envelope in compact form.
    Json,
}

/// A syslog facility code, 0 to 23.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Facility(pub u8);

/// Facility names of RFC 5424 section 6.2.1, in code order.
const FACILITY_NAMES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];

impl<'de> Deserialize<'de> for Facility {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct FacilityVisitor;

        impl Visitor<'_> for FacilityVisitor {
            type Value = Facility;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a facility name such as \"local0\" or a code from 0 to 23")
            }

            fn visit_u64<E: de::Error>(self, code: u64) -> Result<Facility, E> {
                u8::try_from(code)
                    .ok()
                    .filter(|code| *code < 24)
                    .map(Facility)
                    .ok_or_else(|| E::custom(format!("invalid facility code {code}: use 0 to 23")))
            }

            fn visit_i64<E: de::Error>(self, code: i64) -> Result<Facility, E> {
                let code = u64::try_from(code)
                    .map_err(|_| E::custom(format!("invalid facility code {code}: use 0 to 23")))?;
                self.visit_u64(code)
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<Facility, E> {
                FACILITY_NAMES
                    .iter()
                    .position(|known| known.eq_ignore_ascii_case(name))
                    .and_then(|code| u8::try_from(code).ok())
                    .map(Facility)
                    .ok_or_else(|| {
                        E::custom(format!(
                            "unknown facility {name:?}: use one of {}",
                            FACILITY_NAMES.join(", ")
                        ))
                    })
            }
        }

        deserializer.deserialize_any(FacilityVisitor)
    }
}

/// A size in bytes, written as an integer or a string with a unit (`"512B"`, `"4KiB"`,
/// `"1MiB"`, `"2KB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ByteSize(pub usize);

impl ByteSize {
    /// Parses a size with an optional unit: B, KB, MB (powers of 1000) or KiB, MiB (powers of
    /// 1024).
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let split = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        let (digits, unit) = text.split_at(split);
        let number: usize = digits.parse().ok()?;
        let multiplier = match unit.trim() {
            "" | "B" => 1,
            "KB" => 1000,
            "MB" => 1_000_000,
            "KiB" => 1024,
            "MiB" => 1024 * 1024,
            _ => return None,
        };
        number.checked_mul(multiplier).map(Self)
    }
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;

        impl Visitor<'_> for SizeVisitor {
            type Value = ByteSize;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a size in bytes such as 256 or \"4KiB\"")
            }

            fn visit_u64<E: de::Error>(self, bytes: u64) -> Result<ByteSize, E> {
                usize::try_from(bytes)
                    .map(ByteSize)
                    .map_err(|_| E::custom(format!("size {bytes} is too large")))
            }

            fn visit_i64<E: de::Error>(self, bytes: i64) -> Result<ByteSize, E> {
                let bytes = u64::try_from(bytes).map_err(|_| {
                    E::custom(format!("invalid size {bytes}: it must not be negative"))
                })?;
                self.visit_u64(bytes)
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<ByteSize, E> {
                ByteSize::parse(text).ok_or_else(|| {
                    E::custom(format!(
                        "invalid size {text:?}: write bytes with an optional unit B, KB, MB, KiB or MiB"
                    ))
                })
            }
        }

        deserializer.deserialize_any(SizeVisitor)
    }
}

/// An encoder option that cannot work, named with its key and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "syslog.pen is missing: RFC 5424 structured data needs your organisation's IANA private enterprise number"
    )]
    MissingPen,
    #[error(
        "syslog.pen = {0} is not usable: 0 is reserved and 32473 is the documentation example; set your organisation's IANA private enterprise number"
    )]
    InvalidPen(u32),
    #[error(
        "syslog.app_name {0:?} is invalid: use 1 to 48 printable ASCII characters without spaces"
    )]
    InvalidAppName(String),
    #[error(
        "syslog.hostname {0:?} is invalid: use 1 to 255 printable ASCII characters without spaces"
    )]
    InvalidHostname(String),
    #[error("ecs.namespace {0:?} is invalid: use 1 to 100 lowercase letters, digits or `_`")]
    InvalidNamespace(String),
    #[error("cef.device_version {0:?} is invalid: use at most 31 bytes without line breaks")]
    InvalidDeviceVersion(String),
    #[error("field path {0:?} is invalid: use dot-separated field names such as `asset.tags`")]
    InvalidFieldPath(String),
    #[error("exclude lists `id`, but `id` is the dedup key every destination needs; remove it")]
    ExcludesId,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Probe {
        size: ByteSize,
        facility: Facility,
    }

    fn probe(text: &str) -> Result<Probe, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn size_accepts_kibibytes() {
        assert_eq!(ByteSize::parse("4KiB"), Some(ByteSize(4096)));
    }

    #[test]
    fn size_rejects_unknown_units() {
        assert_eq!(ByteSize::parse("4 parsecs"), None);
    }

    #[test]
    fn facility_accepts_names() {
        let parsed = probe(r#"{"size":1,"facility":"local3"}"#).unwrap();
        assert_eq!(parsed.facility, Facility(19));
    }

    #[test]
    fn facility_accepts_codes() {
        let parsed = probe(r#"{"size":"1KB","facility":4}"#).unwrap();
        assert_eq!(parsed.facility, Facility(4));
    }

    #[test]
    fn size_accepts_strings_with_units() {
        let parsed = probe(r#"{"size":"1KB","facility":4}"#).unwrap();
        assert_eq!(parsed.size, ByteSize(1000));
    }

    #[test]
    fn facility_rejects_code_24() {
        assert!(probe(r#"{"size":1,"facility":24}"#).is_err());
    }

    #[test]
    fn unknown_option_is_rejected() {
        let parsed: Result<EncoderConfig, _> =
            serde_json::from_str(r#"{"encoding":"cef","colour":"red"}"#);
        assert!(parsed.is_err());
    }
}
