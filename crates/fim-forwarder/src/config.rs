//! The configuration file: one TOML document with `[source]`, `[state]`,
//! `[[sinks]]`, `[pipeline]`, `[metrics]`, `[log]` and, for the demo,
//! `[demo]`.
//!
//! `${VAR}` and `${VAR:-default}` in string values are replaced from the
//! environment, so secrets stay out of the file; `$${` writes a literal
//! `${`. Every problem found is reported at once, each naming the
//! key, the value and what is allowed.

use std::collections::HashSet;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use fim_sinks::SinkSpec;
use fim_source::SourceConfig;
use serde::Deserialize;

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub source: SourceConfig,
    pub state: StateConfig,
    pub sinks: Vec<SinkSpec>,
    pub pipeline: PipelineConfig,
    pub metrics: MetricsConfig,
    pub log: LogConfig,
    pub demo: Option<DemoConfig>,
}

/// Where checkpoints and dead-letter files live.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateConfig {
    /// Directory of `checkpoint.json` and, by default, `dead-letter/`.
    pub dir: PathBuf,
}

/// Buffers and deadlines of the pipeline.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// Records buffered between the pollers and the router. The default is
    /// a sink's default buffer, `fim_sinks::DEFAULT_BUFFER`.
    pub buffer: usize,
    /// How often acknowledged progress is saved.
    #[serde(with = "humantime_serde")]
    pub checkpoint_interval: Duration,
    /// Time allowed at shutdown to drain and flush every sink.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            buffer: fim_sinks::DEFAULT_BUFFER,
            checkpoint_interval: Duration::from_secs(5),
            shutdown_timeout: Duration::from_secs(30),
        }
    }
}

/// The Prometheus and health endpoint.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    /// Address of `/metrics` and `/health`; loopback unless set otherwise.
    pub listen: SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9598)),
        }
    }
}

/// Log output.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter such as `info` or `fim_source=debug,info`;
    /// `RUST_LOG` wins when set.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info".to_owned(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// Runs the Qualys FIM API simulator in-process and points the source at it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DemoConfig {
    pub enabled: bool,
    /// Events already visible when the demo starts.
    pub backlog: usize,
    /// New events per second.
    pub rate: f64,
    /// Start from an empty state directory each time, since every demo run
    /// serves freshly generated data.
    pub fresh_state: bool,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            backlog: 2_000,
            rate: 20.0,
            fresh_state: true,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    source: SourceConfig,
    state: StateConfig,
    #[serde(default)]
    sinks: Vec<toml::Table>,
    #[serde(default)]
    pipeline: PipelineConfig,
    #[serde(default)]
    metrics: MetricsConfig,
    #[serde(default)]
    log: LogConfig,
    #[serde(default)]
    demo: Option<DemoConfig>,
}

/// Every problem found in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors {
    pub origin: String,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "invalid configuration {}:", self.origin)?;
        for problem in &self.problems {
            writeln!(f, "  - {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Config {
    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigErrors> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| ConfigErrors {
            origin: origin.clone(),
            problems: vec![format!("failed to read the file: {err}")],
        })?;
        Self::parse(&text, &origin, |name| std::env::var(name).ok())
    }

    /// Parses and checks `text`; `env` looks up `${VAR}` values.
    pub fn parse(
        text: &str,
        origin: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigErrors> {
        let errors = |problems: Vec<String>| ConfigErrors {
            origin: origin.to_owned(),
            problems,
        };
        let mut table: toml::Table =
            toml::from_str(text).map_err(|err| errors(vec![toml_problem(&err)]))?;
        // Variables are replaced inside string values only, so comments may
        // mention ${VAR} and a value cannot break the TOML around it.
        let mut problems = Vec::new();
        substitute_table(&mut table, &env, &mut problems);
        if !problems.is_empty() {
            return Err(errors(problems));
        }
        // Through serde_path_to_error, a wrong value is reported with its key
        // (`source.lag`), not only its position.
        let mut raw: RawConfig = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|err| {
                errors(vec![format!(
                    "invalid {}: {}",
                    err.path(),
                    err.inner().message().trim()
                )])
            })?;
        let demo = raw.demo.as_ref().is_some_and(|demo| demo.enabled);
        if demo && raw.source.base_url.is_none() && raw.source.platform.is_none() {
            // The demo points the source at its in-process simulator at start.
            raw.source.base_url = Some("http://127.0.0.1".to_owned());
        }

        let mut problems = Vec::new();
        if let Err(source_problems) = raw.source.validate() {
            problems.extend(source_problems.iter().map(ToString::to_string));
        }
        if raw.source.password.is_some() || raw.source.password_file.is_some() {
            if let Err(err) = raw.source.resolve_password() {
                problems.push(err.to_string());
            }
        } else if !demo {
            problems.push(
                "invalid source.password = (missing): expected the Qualys password, e.g. \
                 password = \"${QUALYS_PASSWORD}\", or password_file"
                    .to_owned(),
            );
        }

        let mut sinks = Vec::new();
        let mut names = HashSet::new();
        if raw.sinks.is_empty() {
            problems.push(
                "no [[sinks]]: add at least one, e.g. name = \"out\", type = \"stdout\", encoding = \"json\""
                    .to_owned(),
            );
        }
        for (index, table) in raw.sinks.into_iter().enumerate() {
            match SinkSpec::from_table(index, table) {
                Ok(spec) => {
                    if !names.insert(spec.name.clone()) {
                        problems.push(format!(
                            "invalid sinks[{index}] ({}): the name is used by an earlier sink; names must be unique",
                            spec.name
                        ));
                    }
                    sinks.push(spec);
                }
                Err(err) => problems.push(err.to_string()),
            }
        }

        if raw.state.dir.as_os_str().is_empty() {
            problems.push(
                "invalid state.dir = \"\": expected a directory such as \"/var/lib/fim-forwarder\""
                    .to_owned(),
            );
        }
        if !(1..=1_000_000).contains(&raw.pipeline.buffer) {
            problems.push(format!(
                "invalid pipeline.buffer = {}: expected a number of records from 1 to 1000000",
                raw.pipeline.buffer
            ));
        }
        if raw.pipeline.checkpoint_interval.is_zero() {
            problems.push(
                "invalid pipeline.checkpoint_interval = 0s: expected a period such as \"5s\""
                    .to_owned(),
            );
        }
        if !valid_log_filter(&raw.log.level) {
            problems.push(format!(
                "invalid log.level = {:?}: expected a level (error, warn, info, debug, trace) or a filter such as \"fim_source=debug,info\"",
                raw.log.level
            ));
        }

        if !problems.is_empty() {
            return Err(errors(problems));
        }
        Ok(Self {
            source: raw.source,
            state: raw.state,
            sinks,
            pipeline: raw.pipeline,
            metrics: raw.metrics,
            log: raw.log,
            demo: raw.demo.filter(|demo| demo.enabled),
        })
    }

    /// Dead-letter file for records the API sent that cannot be read:
    /// `<state dir>/source-dead-letter.ndjson`.
    pub fn source_dead_letter_path(&self) -> PathBuf {
        self.state.dir.join("source-dead-letter.ndjson")
    }

    /// Dead-letter file of `sink`: its own setting, else
    /// `<state dir>/dead-letter/<name>.ndjson`.
    pub fn dead_letter_path(&self, sink: &SinkSpec) -> PathBuf {
        sink.dead_letter.clone().unwrap_or_else(|| {
            self.state
                .dir
                .join("dead-letter")
                .join(format!("{}.ndjson", sink.name))
        })
    }
}

/// Accepts a level (`info`) or directives such as `fim_source=debug,info`.
fn valid_log_filter(filter: &str) -> bool {
    const LEVELS: &[&str] = &["off", "error", "warn", "info", "debug", "trace"];
    let level = |text: &str| LEVELS.contains(&text.trim().to_ascii_lowercase().as_str());
    !filter.trim().is_empty()
        && filter
            .split(',')
            .all(|directive| match directive.split_once('=') {
                Some((target, value)) => {
                    !target.trim().is_empty()
                        && target
                            .trim()
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '-')
                        && level(value)
                }
                None => level(directive),
            })
}

/// Words a TOML error with its line and column.
fn toml_problem(err: &toml::de::Error) -> String {
    let message = err.message().trim();
    match err.span() {
        Some(span) => format!("{message} (at byte {} of the file)", span.start),
        None => message.to_owned(),
    }
}

fn substitute_table(
    table: &mut toml::Table,
    env: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) {
    for (_, value) in table.iter_mut() {
        substitute_value(value, env, problems);
    }
}

fn substitute_value(
    value: &mut toml::Value,
    env: &impl Fn(&str) -> Option<String>,
    problems: &mut Vec<String>,
) {
    match value {
        toml::Value::String(text) => match substitute(text, env) {
            Ok(replaced) => *text = replaced,
            Err(found) => problems.extend(found),
        },
        toml::Value::Array(items) => {
            for item in items {
                substitute_value(item, env, problems);
            }
        }
        toml::Value::Table(table) => substitute_table(table, env, problems),
        _ => {}
    }
}

/// Replaces `${VAR}` and `${VAR:-default}`; `$${` stays a literal `${`.
fn substitute(text: &str, env: &impl Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('$') {
        out.push_str(&rest[..start]);
        let after = &rest[start..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
            continue;
        }
        let Some(inner) = after.strip_prefix("${") else {
            out.push('$');
            rest = &after[1..];
            continue;
        };
        let Some(end) = inner.find('}') else {
            problems.push(format!(
                "unclosed ${{ in {:?}: write ${{VAR}} or $${{ for a literal",
                &after[..after.len().min(40)]
            ));
            out.push_str(after);
            rest = "";
            break;
        };
        let expression = &inner[..end];
        let (name, default) = match expression.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (expression, None),
        };
        let valid_name =
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid_name {
            problems.push(format!("invalid variable name in ${{{expression}}}"));
        } else {
            match (env(name), default) {
                (Some(value), _) => out.push_str(&value),
                (None, Some(default)) => out.push_str(default),
                (None, None) => problems.push(format!(
                    "environment variable {name} is not set: set it or write ${{{name}:-default}}"
                )),
            }
        }
        rest = &inner[end + 1..];
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "QUALYS_PASSWORD" => Some("s3cret".to_owned()),
            _ => None,
        }
    }

    #[test]
    fn substitutes_variables_and_defaults() {
        let text = substitute("a=${QUALYS_PASSWORD} b=${MISSING:-x} c=$${LIT} d=$5", &env).unwrap();
        assert_eq!(text, "a=s3cret b=x c=${LIT} d=$5");
    }

    #[test]
    fn debug_output_shows_no_secret() {
        let secrets = [
            ("QUALYS_PASSWORD", "Qualys-Secret-1"),
            ("HEC_TOKEN", "Hec-Secret-2"),
            ("NATS_PASSWORD", "Nats-Secret-3"),
            ("KAFKA_PASSWORD", "Kafka-Secret-4"),
            ("BEARER", "Bearer-Secret-5"),
        ];
        let text = r#"
[source]
base_url = "https://gateway.example.test"
username = "fim"
password = "${QUALYS_PASSWORD}"
[state]
dir = "/var/lib/fim-forwarder"
[[sinks]]
name = "hec"
type = "http"
mode = "splunk_hec"
url = "https://splunk.example.test/services/collector/event"
token = "${HEC_TOKEN}"
encoding = "json"
[[sinks]]
name = "generic"
type = "http"
url = "https://collector.example.test/ingest"
encoding = "json"
[sinks.auth]
strategy = "bearer"
token = "${BEARER}"
[[sinks]]
name = "nats"
type = "nats"
servers = ["tls://nats.example.test:4222"]
subject = "fim.{stream}"
encoding = "json"
[sinks.auth]
user = "fim"
password = "${NATS_PASSWORD}"
[[sinks]]
name = "kafka"
type = "kafka"
brokers = ["kafka.example.test:9093"]
topic = "fim"
encoding = "json"
[sinks.librdkafka]
"sasl.password" = "${KAFKA_PASSWORD}"
"#;
        let lookup = |name: &str| {
            secrets
                .iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        let config = match Config::parse(text, "test.toml", lookup) {
            Ok(config) => config,
            Err(err) => panic!("{err}"),
        };
        let debug_output = format!("{config:?}");
        for (_, secret) in secrets {
            assert!(!debug_output.contains(secret), "{secret} in {debug_output}");
        }
        assert!(
            debug_output.contains("\"hec\""),
            "the sinks are missing from {debug_output}"
        );
    }

    #[test]
    fn missing_variable_is_named() {
        let problems = substitute("${NOPE}", &env).unwrap_err();
        assert!(problems[0].contains("NOPE"), "{problems:?}");
    }
}
