use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use crate::template::Template;

/// Options of the NATS sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    /// Server URLs, such as `nats://127.0.0.1:4222` (`tls://` requires TLS).
    /// The client connects to one and fails over to the others.
    pub servers: Vec<String>,
    /// Subject each record is published to; `{stream}` and `{field}`
    /// placeholders take the record's stream name or a top-level field.
    pub subject: Template,
    /// `true` publishes to JetStream and acknowledges a record once the
    /// stream stored it (at-least-once). `false` uses core NATS:
    /// at-most-once, because a record is acknowledged once the server has it
    /// and core NATS keeps nothing for a subscriber that is not listening.
    #[serde(default = "default_jetstream")]
    pub jetstream: bool,
    /// JetStream stream that stores the subjects; created when missing.
    #[serde(default = "default_stream")]
    pub stream: String,
    /// Subjects of a created stream; defaults to `subject` with each
    /// placeholder replaced by `*`.
    #[serde(default)]
    pub stream_subjects: Option<Vec<String>>,
    /// How long the stream remembers a `Nats-Msg-Id`, so a record sent
    /// again within it (a retry, a replay after a restart) is stored once.
    /// Applies to a stream this sink creates.
    #[serde(default = "default_duplicate_window", with = "humantime_serde")]
    pub duplicate_window: Duration,
    /// How long to wait for a JetStream PubAck before the record is sent
    /// again with the same message id.
    #[serde(default = "default_ack_timeout", with = "humantime_serde")]
    pub ack_timeout: Duration,
    /// Time limit of one connection attempt.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// Records published before their PubAcks are awaited, at most.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Authentication; at most one method.
    #[serde(default)]
    pub auth: NatsAuth,
    /// TLS: a custom CA, a client certificate for mutual TLS.
    #[serde(default)]
    pub tls: Option<NatsTls>,
}

/// Credentials the sink authenticates with; at most one method is set.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsAuth {
    /// Token authentication.
    pub token: Option<Secret>,
    /// User name for user/password authentication.
    pub user: Option<String>,
    /// Password for user/password authentication.
    pub password: Option<Secret>,
    /// NKey seed (`SU…`) for NKey authentication.
    pub nkey: Option<Secret>,
    /// Credentials file (JWT and NKey seed), as written by `nsc`.
    pub credentials_file: Option<PathBuf>,
}

/// TLS options.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTls {
    /// PEM file of the CA that signed the server's certificate, trusted in
    /// addition to the system's roots.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate, for servers that verify clients.
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    pub key_file: Option<PathBuf>,
}

/// A password, token or key seed: shown as `***` in `Debug` output so it
/// never reaches a log.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("***")
    }
}

/// A NATS configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatsConfigError {
    #[error("servers is empty: give at least one URL such as \"nats://127.0.0.1:4222\"")]
    NoServers,
    #[error(
        "stream = {0:?} is invalid: use letters, digits, '-' and '_' (no spaces, '.', '*' or '>')"
    )]
    InvalidStream(String),
    #[error("auth has {0}: configure one authentication method")]
    ConflictingAuth(String),
    #[error("auth.{0} is set without auth.{1}: give both")]
    IncompleteAuth(&'static str, &'static str),
    #[error("tls.{0} is set without tls.{1}: give both for a client certificate")]
    IncompleteTls(&'static str, &'static str),
    #[error("max_in_flight = {0} is invalid: give a number from 1 to 100000")]
    InvalidMaxInFlight(usize),
    #[error("{0} = 0s is invalid: give a positive duration such as \"5s\"")]
    ZeroDuration(&'static str),
}

impl NatsConfig {
    /// Checks what serde cannot: one auth method, paired fields, names.
    pub fn validate(&self) -> Result<(), NatsConfigError> {
        if self.servers.is_empty() {
            return Err(NatsConfigError::NoServers);
        }
        if self.jetstream && !valid_stream_name(&self.stream) {
            return Err(NatsConfigError::InvalidStream(self.stream.clone()));
        }
        if !(1..=100_000).contains(&self.max_in_flight) {
            return Err(NatsConfigError::InvalidMaxInFlight(self.max_in_flight));
        }
        for (name, value) in [
            ("ack_timeout", self.ack_timeout),
            ("connect_timeout", self.connect_timeout),
            ("duplicate_window", self.duplicate_window),
        ] {
            if value.is_zero() {
                return Err(NatsConfigError::ZeroDuration(name));
            }
        }

        let auth = &self.auth;
        let methods: Vec<&str> = [
            ("token", auth.token.is_some()),
            (
                "user/password",
                auth.user.is_some() || auth.password.is_some(),
            ),
            ("nkey", auth.nkey.is_some()),
            ("credentials_file", auth.credentials_file.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect();
        if methods.len() > 1 {
            return Err(NatsConfigError::ConflictingAuth(methods.join(" and ")));
        }
        match (&auth.user, &auth.password) {
            (Some(_), None) => return Err(NatsConfigError::IncompleteAuth("user", "password")),
            (None, Some(_)) => return Err(NatsConfigError::IncompleteAuth("password", "user")),
            _ => {}
        }

        if let Some(tls) = &self.tls {
            match (&tls.cert_file, &tls.key_file) {
                (Some(_), None) => {
                    return Err(NatsConfigError::IncompleteTls("cert_file", "key_file"));
                }
                (None, Some(_)) => {
                    return Err(NatsConfigError::IncompleteTls("key_file", "cert_file"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn default_jetstream() -> bool {
    true
}

fn default_stream() -> String {
    "QUALYS_FIM".to_owned()
}

fn default_duplicate_window() -> Duration {
    Duration::from_secs(2 * 60 * 60)
}

fn default_ack_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(5)
}

fn default_max_in_flight() -> usize {
    512
}
