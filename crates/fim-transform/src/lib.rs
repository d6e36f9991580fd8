//! Encoders that turn FIM records into the formats SIEMs ingest.
//!
//! | [`Encoding`] | encoder | output |
//! |---|---|---|
//! | `ecs` | [`EcsEncoder`] | Elastic Common Schema JSON document |
//! | `cef` | [`CefEncoder`] | one CEF line |
//! | `syslog_rfc5424` | [`Rfc5424Encoder`] | RFC 5424 message carrying CEF or JSON |
//! | `syslog_rfc3164` | [`Rfc3164Encoder`] | RFC 3164 message (≤ 1024 bytes) carrying CEF or JSON |
//! | `json` | [`JsonEncoder`] | the record as received, with stream and fetch metadata |
//! | `flat_json` | [`FlatJsonEncoder`] | the same, flattened to dotted keys |
//!
//! Every encoder implements [`Encoder`] and appends one record to a buffer
//! the caller reuses, without a trailing newline or frame: framing belongs to
//! the sink. Each output is a single line whatever the record holds: CR, LF
//! and NUL from the source are escaped or replaced in every format.
//!
//! [`build`] turns a sink's [`EncoderConfig`] into a boxed encoder, applying
//! its field selection ([`FieldPolicy`]): include and exclude lists and the
//! `oldContent`/`newContent` cap, which drops those fields by default.

pub mod cef;
pub mod config;
pub mod ecs;
pub mod json;
mod json_out;
pub mod policy;
pub mod severity;
pub mod syslog;
pub mod text;

use std::fmt;

use fim_model::Record;

pub use cef::CefEncoder;
pub use config::{ConfigError, EncoderConfig, Encoding, SyslogPayload};
pub use ecs::EcsEncoder;
pub use json::{FlatJsonEncoder, JsonEncoder};
pub use policy::FieldPolicy;
pub use syslog::{Rfc3164Encoder, Rfc5424Encoder};

/// Turns one record into bytes of one output format.
pub trait Encoder: fmt::Debug + Send + Sync {
    /// Appends the encoded record to `out` after the bytes already in it.
    /// On error nothing is appended, and the caller should dead-letter the
    /// record with the error as the reason.
    fn encode(&self, record: &Record, out: &mut Vec<u8>) -> Result<(), EncodeError>;
}

/// A record this format cannot represent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error(
        "record {id} has no dateTime, processedTime or incident date within years 0000-9999; ECS requires @timestamp"
    )]
    MissingTimestamp { id: String },
}

/// Builds the encoder a sink's options describe.
pub fn build(config: &EncoderConfig) -> Result<Box<dyn Encoder>, ConfigError> {
    let policy = FieldPolicy::new(&config.include, &config.exclude, config.content_max_bytes.0)?;

    let encoder: Box<dyn Encoder> = match config.encoding {
        Encoding::Ecs => Box::new(EcsEncoder::new(policy, &config.ecs)?),
        Encoding::Cef => Box::new(CefEncoder::new(policy, &config.cef)?),
        Encoding::SyslogRfc5424 => {
            Box::new(Rfc5424Encoder::new(policy, &config.syslog, &config.cef)?)
        }
        Encoding::SyslogRfc3164 => {
            Box::new(Rfc3164Encoder::new(policy, &config.syslog, &config.cef)?)
        }
        Encoding::Json => Box::new(JsonEncoder::new(policy)),
        Encoding::FlatJson => Box::new(FlatJsonEncoder::new(policy)),
    };
    Ok(encoder)
}
