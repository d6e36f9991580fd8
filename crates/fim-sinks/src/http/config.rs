//! Options of the HTTP sink, read from its `[[sinks]]` table.
//!
//! ```toml
//! [[sinks]]
//! name = "splunk"
//! type = "http"
//! mode = "splunk_hec"             # generic | splunk_hec | elasticsearch
//! url = "https://splunk.example.org:8088/services/collector/event"
//! token = "${SPLUNK_HEC_TOKEN}"
//! encoding = "json"
//! [sinks.batch]
//! max_events = 500
//! max_bytes = "4MiB"
//! timeout = "1s"
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use fim_transform::config::ByteSize;
use serde::Deserialize;

/// Options of the HTTP sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// What the receiver is: it decides the body layout, the authentication
    /// header and how responses are read.
    #[serde(default)]
    pub mode: HttpMode,

    /// Endpoint every batch is sent to: the HEC event endpoint
    /// (`/services/collector/event`), an Elasticsearch `_bulk` URL, or any
    /// URL for `generic`.
    pub url: String,

    /// HTTP method of `generic` requests. HEC and `_bulk` requests always use POST.
    #[serde(default = "default_method")]
    pub method: String,

    /// Splunk HEC token, sent as `Authorization: Splunk <token>`. Required in
    /// `splunk_hec` mode and rejected in the others (use `[auth]` there).
    #[serde(default)]
    pub token: Option<Secret>,

    /// Basic, bearer or Elasticsearch API-key authentication.
    #[serde(default)]
    pub auth: Option<Auth>,

    /// Extra request headers, sent as given.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,

    /// Body layout of `generic` requests.
    #[serde(default)]
    pub body: GenericBody,

    /// Compress request bodies with gzip (`Content-Encoding: gzip`).
    #[serde(default)]
    pub compression: Compression,

    #[serde(default)]
    pub batch: BatchConfig,

    /// How long one request may take, connection included, before it is
    /// retried.
    #[serde(default = "default_request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,

    #[serde(default)]
    pub retry: RetryConfig,

    #[serde(default)]
    pub tls: HttpTlsConfig,

    #[serde(default)]
    pub splunk_hec: HecConfig,

    #[serde(default)]
    pub elasticsearch: ElasticsearchConfig,
}

/// The kind of receiver.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HttpMode {
    /// Any collector: a JSON array or NDJSON body; every 2xx means delivered.
    #[default]
    Generic,
    /// Splunk HTTP Event Collector, JSON envelopes back to back.
    SplunkHec,
    /// Elasticsearch `_bulk` with `create` actions, one per record.
    Elasticsearch,
}

/// Body layout of a `generic` request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GenericBody {
    /// `[record, record, …]` with `Content-Type: application/json`. Records
    /// of a non-JSON encoding (CEF, syslog) become JSON strings.
    #[default]
    JsonArray,
    /// One encoded record per line, `Content-Type: application/x-ndjson`.
    Ndjson,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    #[default]
    None,
    Gzip,
}

/// When a batch is sent: whichever limit is reached first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// Records per request, at most.
    pub max_events: usize,
    /// Uncompressed body size per request, at most. A single record larger
    /// than this is still sent, alone.
    pub max_bytes: ByteSize,
    /// How long the first record of a batch waits for others.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self {
            max_events: 500,
            max_bytes: ByteSize(4 * 1024 * 1024),
            timeout: Duration::from_secs(1),
        }
    }
}

/// Waits between attempts after a failure the receiver may recover from.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// First wait; each failure doubles it up to `max_backoff`.
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Longest `Retry-After` honoured; a longer one is cut to this.
    #[serde(with = "humantime_serde")]
    pub max_retry_after: Duration,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(300),
        }
    }
}

/// Authentication besides the HEC token.
#[derive(Clone, Deserialize)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    Basic {
        user: String,
        password: Secret,
    },
    Bearer {
        token: Secret,
    },
    /// Elasticsearch API key (the base64 `id:api_key` form), sent as
    /// `Authorization: ApiKey <key>`.
    ApiKey {
        key: Secret,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::Basic { user, .. } => formatter
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &Secret::REDACTED)
                .finish(),
            Auth::Bearer { .. } => formatter.write_str("Bearer(redacted)"),
            Auth::ApiKey { .. } => formatter.write_str("ApiKey(redacted)"),
        }
    }
}

/// A password, token or key: `Debug` and `Display` never show it.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    const REDACTED: &str = "<redacted>";

    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Returns the secret itself, for the one header that carries it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(Self::REDACTED)
    }
}

/// Server certificate checks of HTTPS URLs. The server is verified against
/// the bundled Mozilla roots (webpki-roots) plus `ca_file`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpTlsConfig {
    /// PEM file of extra CA certificates to trust.
    pub ca_file: Option<PathBuf>,
    /// Accepts any server certificate, so anyone on the path can read and
    /// change the traffic. Meant for a lab, and logged as a warning at start.
    pub danger_accept_invalid_certs: bool,
}

/// Splunk HEC envelope fields.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HecConfig {
    /// `host` of every event. Unset uses the record's asset host name.
    pub host: Option<String>,
    pub source: String,
    /// `sourcetype` per stream. Unset streams use `qualys:fim:event`
    /// (events and incident events), `qualys:fim:ignored_event` and
    /// `qualys:fim:incident`.
    pub sourcetype: Option<String>,
    /// Index, which must be on the token's allowed list. Unset uses the
    /// token's default index.
    pub index: Option<String>,
}

impl Default for HecConfig {
    fn default() -> Self {
        Self {
            host: None,
            source: "qualys:fim".to_owned(),
            sourcetype: None,
            index: None,
        }
    }
}

/// Elasticsearch `_bulk` target.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ElasticsearchConfig {
    /// `_index` of every document: an index, alias or data stream. Unset
    /// uses the data stream `logs-<dataset>-default`, the dataset being
    /// `qualys_fim.event`, `qualys_fim.ignored_event`, `qualys_fim.incident`
    /// or `qualys_fim.incident_event`.
    pub index: Option<String>,
}

fn default_method() -> String {
    "POST".to_owned()
}

fn default_request_timeout() -> Duration {
    Duration::from_secs(30)
}

/// An HTTP sink option that cannot work, named with its key and the fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpConfigError {
    #[error("url = {url:?} is invalid ({reason}): give an http:// or https:// URL")]
    InvalidUrl { url: String, reason: String },
    #[error("method = {0:?} is invalid: use an HTTP method such as POST or PUT")]
    InvalidMethod(String),
    #[error("token is missing: mode = \"splunk_hec\" needs the HEC token")]
    MissingHecToken,
    #[error(
        "token is set but mode is not \"splunk_hec\": use [auth] with strategy = \"bearer\" instead"
    )]
    UnexpectedToken,
    #[error(
        "header {0:?} is invalid: use a valid HTTP header name and a value without line breaks"
    )]
    InvalidHeader(String),
    #[error(
        "encoding {0:?} cannot feed Elasticsearch, which stores JSON documents: use ecs, json or flat_json"
    )]
    NonJsonForElasticsearch(String),
    #[error("batch.max_events = 0 is invalid: give at least 1")]
    ZeroBatch,
    #[error(
        "tls.ca_file {path:?} could not be used ({reason}): give a PEM file of CA certificates"
    )]
    InvalidCaFile { path: PathBuf, reason: String },
    #[error("the HTTP client could not be built: {0}")]
    Client(String),
}
