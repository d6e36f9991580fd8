//! One `[[sinks]]` table: the keys every sink has (`name`, `type`,
//! `buffer`, `dead_letter`), the encoder's keys (`encoding`, `include`,
//! `exclude`, `content_max_bytes`, `[ecs]`, `[cef]`, `[syslog]`), and the
//! rest, which the sink type reads with its own `config.rs`.

use std::path::PathBuf;
use std::sync::Arc;

use fim_transform::EncoderConfig;
use serde::de::DeserializeOwned;

use crate::{Sink, SinkContext, file, http, kafka, nats, stdout, syslog};

/// Keys that configure the encoder rather than the sink.
const ENCODER_KEYS: &[&str] = &[
    "encoding",
    "include",
    "exclude",
    "content_max_bytes",
    "ecs",
    "cef",
    "syslog",
];

/// Sink types built into this binary.
pub const SINK_TYPES: &[&str] = &["stdout", "file", "nats", "http", "kafka", "syslog"];

/// Default capacity of a sink's channel, in records: half a default page.
/// In the end-to-end benchmark, 1,000 here and in `pipeline.buffer` gave no
/// sink more throughput and the slower ones (NATS, Kafka, syslog) 5 to
/// 11 MiB more peak memory.
pub const DEFAULT_BUFFER: usize = 500;

/// A parsed `[[sinks]]` table.
#[derive(Clone)]
pub struct SinkSpec {
    pub name: String,
    pub kind: String,
    pub encoder: EncoderConfig,
    /// Capacity of the sink's channel, in records.
    pub buffer: usize,
    /// Dead-letter file; `None` uses `<state dir>/dead-letter/<name>.ndjson`.
    pub dead_letter: Option<PathBuf>,
    /// The type's own keys.
    pub options: toml::Table,
}

impl std::fmt::Debug for SinkSpec {
    /// Shows only the names of the type's own keys, because their values
    /// include tokens and passwords (`token`, `[auth]`, `sasl.password`).
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("SinkSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("encoder", &self.encoder)
            .field("buffer", &self.buffer)
            .field("dead_letter", &self.dead_letter)
            .field("option_keys", &self.options.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// An invalid sink table: which sink, which key and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid sinks[{index}] ({name}): {message}")]
pub struct SinkBuildError {
    pub index: usize,
    pub name: String,
    pub message: String,
}

impl SinkSpec {
    /// Splits and checks the table of sink number `index`.
    pub fn from_table(index: usize, mut table: toml::Table) -> Result<Self, SinkBuildError> {
        let label = table
            .get("name")
            .and_then(toml::Value::as_str)
            .unwrap_or("unnamed")
            .to_owned();
        let error = |message: String| SinkBuildError {
            index,
            name: label.clone(),
            message,
        };

        let name = match table.remove("name") {
            Some(toml::Value::String(name)) if valid_name(&name) => name,
            Some(other) => {
                return Err(error(format!(
                    "name = {other} is invalid: use letters, digits, '-' and '_' (it names files and metrics)"
                )));
            }
            None => {
                return Err(error(
                    "name is missing: give each sink a unique name".to_owned(),
                ));
            }
        };
        let kind = match table.remove("type") {
            Some(toml::Value::String(kind)) if SINK_TYPES.contains(&kind.as_str()) => kind,
            Some(other) => {
                return Err(error(format!(
                    "type = {other} is not a known sink type: use one of {}",
                    SINK_TYPES.join(", ")
                )));
            }
            None => {
                return Err(error(format!(
                    "type is missing: use one of {}",
                    SINK_TYPES.join(", ")
                )));
            }
        };
        let buffer = match table.remove("buffer") {
            None => DEFAULT_BUFFER,
            Some(toml::Value::Integer(size)) if (1..=1_000_000).contains(&size) => size as usize,
            Some(other) => {
                return Err(error(format!(
                    "buffer = {other} is invalid: give a number of records from 1 to 1000000"
                )));
            }
        };
        let dead_letter = match table.remove("dead_letter") {
            None => None,
            Some(toml::Value::String(path)) if !path.trim().is_empty() => Some(PathBuf::from(path)),
            Some(other) => {
                return Err(error(format!(
                    "dead_letter = {other} is invalid: give a file path"
                )));
            }
        };

        let mut encoder_table = toml::Table::new();
        for key in ENCODER_KEYS {
            if let Some(value) = table.remove(*key) {
                encoder_table.insert((*key).to_owned(), value);
            }
        }
        if !encoder_table.contains_key("encoding") {
            return Err(error(
                "encoding is missing: use one of ecs, cef, syslog_rfc5424, syslog_rfc3164, json, flat_json"
                    .to_owned(),
            ));
        }
        let encoder: EncoderConfig = encoder_table
            .try_into()
            .map_err(|err: toml::de::Error| error(err.message().to_owned()))?;
        fim_transform::build(&encoder).map_err(|err| error(err.to_string()))?;

        let spec = Self {
            name,
            kind,
            encoder,
            buffer,
            dead_letter,
            options: table,
        };
        // Reading the type's options now reports their mistakes at start.
        spec.check_options().map_err(error)?;
        Ok(spec)
    }

    fn check_options(&self) -> Result<(), String> {
        match self.kind.as_str() {
            "stdout" => self.options::<stdout::StdoutConfig>().map(drop),
            "file" => self.options::<file::FileConfig>().map(drop),
            "syslog" => self
                .options::<syslog::SyslogConfig>()?
                .validate(&self.encoder)
                .map(drop)
                .map_err(|err| err.to_string()),
            "http" => self
                .options::<http::HttpConfig>()?
                .validate(self.encoder.encoding)
                .map_err(|err| err.to_string()),
            "nats" => self
                .options::<nats::NatsConfig>()?
                .validate()
                .map_err(|err| err.to_string()),
            "kafka" => self
                .options::<kafka::KafkaConfig>()?
                .validate()
                .map_err(|err| err.to_string()),
            other => Err(format!("type = {other:?} is not built into this binary")),
        }
    }

    /// Reads the type's own keys as `T`.
    pub fn options<T: DeserializeOwned>(&self) -> Result<T, String> {
        toml::Value::Table(self.options.clone())
            .try_into()
            .map_err(|err: toml::de::Error| err.message().to_owned())
    }
}

/// Builds the sink a spec describes.
pub fn build(spec: &SinkSpec, context: SinkContext) -> Result<Box<dyn Sink>, String> {
    match spec.kind.as_str() {
        "stdout" => Ok(Box::new(stdout::StdoutSink::new(spec.options()?, context))),
        "file" => Ok(Box::new(file::FileSink::new(spec.options()?, context))),
        "syslog" => syslog::SyslogSink::new(spec.options()?, &spec.encoder, context)
            .map(|sink| Box::new(sink) as Box<dyn Sink>)
            .map_err(|err| err.to_string()),
        "http" => http::HttpSink::new(spec.options()?, spec.encoder.encoding, context)
            .map(|sink| Box::new(sink) as Box<dyn Sink>)
            .map_err(|err| err.to_string()),
        "nats" => Ok(Box::new(nats::NatsSink::new(spec.options()?, context)?)),
        "kafka" => Ok(Box::new(kafka::KafkaSink::new(spec.options()?, context)?)),
        other => Err(format!("type = {other:?} is not built into this binary")),
    }
}

/// Builds the encoder a spec names.
pub fn encoder(spec: &SinkSpec) -> Result<Arc<dyn fim_transform::Encoder>, String> {
    fim_transform::build(&spec.encoder)
        .map(Arc::from)
        .map_err(|err| err.to_string())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(text: &str) -> toml::Table {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn splits_encoder_and_sink_keys() {
        let spec = SinkSpec::from_table(
            0,
            table("name = \"a\"\ntype = \"file\"\nencoding = \"ecs\"\npath = \"/tmp/x\"\nexclude = [\"asset.tags\"]"),
        )
        .unwrap();
        assert_eq!(spec.encoder.exclude, vec!["asset.tags".to_owned()]);
        assert!(spec.options.contains_key("path"));
        assert!(!spec.options.contains_key("exclude"));
    }

    #[test]
    fn unknown_type_lists_known_ones() {
        let err =
            SinkSpec::from_table(0, table("name = \"a\"\ntype = \"fax\"\nencoding = \"ecs\""))
                .unwrap_err();
        assert!(err.message.contains("fax"), "{err}");
        assert!(err.message.contains("stdout, file"), "{err}");
    }

    #[test]
    fn unknown_option_is_named() {
        let err = SinkSpec::from_table(
            0,
            table("name = \"a\"\ntype = \"file\"\nencoding = \"ecs\"\npath = \"/x\"\nfsnyc = true"),
        )
        .unwrap_err();
        assert!(err.message.contains("fsnyc"), "{err}");
    }

    #[test]
    fn missing_encoding_is_named() {
        let err = SinkSpec::from_table(0, table("name = \"a\"\ntype = \"stdout\"")).unwrap_err();
        assert!(err.message.contains("encoding is missing"), "{err}");
    }

    #[test]
    fn flat_and_syslog_are_accepted_names() {
        for encoding in ["flat", "syslog", "json", "cef"] {
            let text = format!("name = \"a\"\ntype = \"stdout\"\nencoding = \"{encoding}\"");
            let spec = SinkSpec::from_table(0, table(&text));
            let spec = match spec {
                Ok(spec) => spec,
                Err(err) if encoding == "syslog" && err.message.contains("pen") => continue,
                Err(err) => panic!("{encoding}: {err}"),
            };
            assert_eq!(spec.kind, "stdout");
        }
    }
}
