//! Simulator settings: defaults, the TOML file, command-line flags and the
//! runtime changes posted to `/__sim/faults` all share one set of keys.
//!
//! Keys are written as on the command line (`late-share`, `rate-limit`);
//! snake_case spellings (`late_share`) are accepted too, so a settings file
//! can follow either habit.

use std::net::SocketAddr;
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// Highest arrival rate accepted, in events per second.
const MAX_RATE: f64 = 100_000.0;

const DAY: Duration = Duration::from_secs(86_400);

/// Everything that shapes the simulated data and the API's behaviour.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct SimConfig {
    /// Address the HTTP server binds; port 0 picks a free port.
    pub listen: SocketAddr,
    /// User name `POST /auth` accepts.
    pub username: String,
    /// Password `POST /auth` accepts.
    pub password: String,
    /// Seed of the synthetic data: the same seed gives the same records.
    pub seed: u64,
    /// Events already visible when the simulator starts.
    pub backlog: usize,
    /// Time span, ending at start-up, over which the backlog was processed.
    #[serde(with = "humantime_serde")]
    pub backlog_span: Duration,
    /// New events per second while running (0 for none).
    pub rate: f64,
    /// Share of events (0 to 1) that arrive late: `processedTime` is minutes
    /// to hours after `dateTime`, as from an agent that was offline.
    pub late_share: f64,
    /// Largest delay between `dateTime` and `processedTime` of a late event.
    #[serde(with = "humantime_serde")]
    pub late_max: Duration,
    /// Share of events (0 to 1) that land in the ignored-events stream.
    pub ignored_share: f64,
    /// One incident is opened for every N events (0 for no incidents).
    pub incident_every: usize,
    /// Share of events (0 to 1) drawn from the edge-case fixture records,
    /// each with a fresh id and fresh times.
    pub tricky_share: f64,
    /// Maximum delay before an analyst reviews a new incident (and, for
    /// some, before it is reopened); each change moves `lastUpdatedBy.date`.
    #[serde(with = "humantime_serde")]
    pub incident_update_after: Duration,
    /// Delay between an event's `processedTime` and the moment searches can
    /// see it, like the lag of the real search index.
    #[serde(with = "humantime_serde")]
    pub index_lag: Duration,
    /// Rolling-window rate limit on FIM API calls; `/auth` is exempt.
    pub rate_limit: RateLimit,
    /// Calls allowed to run at the same time (0 for no cap).
    pub concurrency_limit: usize,
    /// Status of a call the limits block: 409 (classic Qualys) or 429.
    pub blocked_status: BlockedStatus,
    /// Lifetime of a token issued by `POST /auth`.
    #[serde(with = "humantime_serde")]
    pub token_ttl: Duration,
    /// Share of API calls (0 to 1) that get a 5xx response.
    pub fail_rate: f64,
    /// Delay added before every API response.
    #[serde(with = "humantime_serde")]
    pub latency: Duration,
    /// Share of API calls (0 to 1) whose 200 body is cut off mid-JSON.
    pub truncate_rate: f64,
    /// Share of API calls (0 to 1) whose connection is reset (TCP RST)
    /// instead of a response.
    pub reset_rate: f64,
    /// Largest `pageSize` a search accepts.
    pub max_page_size: usize,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            username: "demo".to_owned(),
            password: "demo-password".to_owned(),
            seed: 1,
            backlog: 1000,
            backlog_span: Duration::from_secs(3600),
            rate: 10.0,
            late_share: 0.1,
            late_max: Duration::from_secs(2 * 3600),
            ignored_share: 0.05,
            incident_every: 50,
            tricky_share: 0.0,
            incident_update_after: Duration::from_secs(60),
            index_lag: Duration::ZERO,
            rate_limit: RateLimit::default(),
            concurrency_limit: 2,
            blocked_status: BlockedStatus::Conflict,
            token_ttl: Duration::from_secs(4 * 3600),
            fail_rate: 0.0,
            latency: Duration::ZERO,
            truncate_rate: 0.0,
            reset_rate: 0.0,
            max_page_size: 10_000,
        }
    }
}

impl SimConfig {
    /// Reads a TOML settings file on top of the defaults.
    pub fn from_toml_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let table: toml::Table = toml::from_str(&text).map_err(|err| ConfigError::Parse {
            path: path.display().to_string(),
            reason: err.to_string(),
        })?;
        let value = serde_json::to_value(table).map_err(|err| ConfigError::Parse {
            path: path.display().to_string(),
            reason: err.to_string(),
        })?;
        let config: SimConfig =
            serde_path_to_error::deserialize(kebab_keys(value)).map_err(|err| {
                ConfigError::Parse {
                    path: path.display().to_string(),
                    reason: format!("key {}: {}", err.path(), err.inner()),
                }
            })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the ranges serde cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let shares = [
            ("late-share", self.late_share),
            ("ignored-share", self.ignored_share),
            ("tricky-share", self.tricky_share),
            ("fail-rate", self.fail_rate),
            ("truncate-rate", self.truncate_rate),
            ("reset-rate", self.reset_rate),
        ];
        for (key, value) in shares {
            if !(0.0..=1.0).contains(&value) {
                return Err(ConfigError::Invalid {
                    key,
                    value: value.to_string(),
                    expected: "a share between 0 and 1, such as 0.2",
                });
            }
        }
        if !self.rate.is_finite() || !(0.0..=MAX_RATE).contains(&self.rate) {
            return Err(ConfigError::Invalid {
                key: "rate",
                value: self.rate.to_string(),
                expected: "events per second, from 0 to 100000",
            });
        }
        let durations = [
            ("backlog-span", self.backlog_span, DAY * 800),
            ("late-max", self.late_max, DAY * 800),
            (
                "incident-update-after",
                self.incident_update_after,
                DAY * 30,
            ),
            ("index-lag", self.index_lag, DAY),
            ("token-ttl", self.token_ttl, DAY * 366),
            ("latency", self.latency, Duration::from_secs(600)),
        ];
        for (key, value, max) in durations {
            if value > max {
                return Err(ConfigError::Invalid {
                    key,
                    value: humantime::format_duration(value).to_string(),
                    expected: match key {
                        "backlog-span" | "late-max" => "a duration of at most 800 days",
                        "incident-update-after" => "a duration of at most 30 days",
                        "index-lag" => "a duration of at most 1 day",
                        "token-ttl" => "a duration of at most 366 days",
                        _ => "a duration of at most 10 minutes",
                    },
                });
            }
        }
        if self.max_page_size == 0 {
            return Err(ConfigError::Invalid {
                key: "max-page-size",
                value: "0".to_owned(),
                expected: "a page size of at least 1",
            });
        }
        if self.token_ttl.is_zero() {
            return Err(ConfigError::Invalid {
                key: "token-ttl",
                value: "0s".to_owned(),
                expected: "a token lifetime such as 4h or 30s",
            });
        }
        Ok(())
    }
}

/// The settings `POST /__sim/faults` may change while the simulator runs.
/// Every field is optional; an absent field keeps its current value.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FaultUpdate {
    pub rate: Option<f64>,
    pub late_share: Option<f64>,
    pub ignored_share: Option<f64>,
    pub tricky_share: Option<f64>,
    pub rate_limit: Option<RateLimit>,
    pub concurrency_limit: Option<usize>,
    pub blocked_status: Option<BlockedStatus>,
    #[serde(default, with = "humantime_serde::option")]
    pub token_ttl: Option<Duration>,
    pub fail_rate: Option<f64>,
    #[serde(default, with = "humantime_serde::option")]
    pub latency: Option<Duration>,
    pub truncate_rate: Option<f64>,
    pub reset_rate: Option<f64>,
    /// `true` makes every token issued so far invalid at once, as when a
    /// token runs out in the middle of paging.
    pub expire_tokens: Option<bool>,
    /// Spoils the next successful search pages, one per entry, in order
    /// (see [`crate::spoil`]).
    pub spoil_pages: Option<Vec<crate::spoil::Spoil>>,
}

impl FaultUpdate {
    /// Parses the JSON body of `POST /__sim/faults`.
    pub fn from_json(body: &[u8]) -> Result<Self, ConfigError> {
        let value: serde_json::Value =
            serde_json::from_slice(body).map_err(|err| ConfigError::Parse {
                path: "request body".to_owned(),
                reason: err.to_string(),
            })?;
        serde_path_to_error::deserialize(kebab_keys(value)).map_err(|err| ConfigError::Parse {
            path: "request body".to_owned(),
            reason: format!("key {}: {}", err.path(), err.inner()),
        })
    }

    /// Applies the update to `config`, validating the result first so a bad
    /// update leaves the running settings untouched.
    pub fn apply(&self, config: &mut SimConfig) -> Result<(), ConfigError> {
        let mut next = config.clone();
        macro_rules! set {
            ($($field:ident),*) => {
                $(if let Some(value) = self.$field.clone() { next.$field = value; })*
            };
        }
        set!(
            rate,
            late_share,
            ignored_share,
            tricky_share,
            rate_limit,
            concurrency_limit,
            blocked_status,
            token_ttl,
            fail_rate,
            latency,
            truncate_rate,
            reset_rate
        );
        next.validate()?;
        *config = next;
        Ok(())
    }
}

/// A rolling-window limit: `calls` API calls per `window`. Zero calls means
/// no limit. Written `CALLS/SECONDS` (`300/3600`) or `0`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub calls: u32,
    pub window: Duration,
}

impl RateLimit {
    /// No limit at all.
    pub const NONE: RateLimit = RateLimit {
        calls: 0,
        window: Duration::ZERO,
    };

    pub fn is_unlimited(&self) -> bool {
        self.calls == 0 || self.window.is_zero()
    }
}

impl Default for RateLimit {
    /// Typical Qualys subscription default: 300 calls per hour.
    fn default() -> Self {
        Self {
            calls: 300,
            window: Duration::from_secs(3600),
        }
    }
}

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        if text == "0" || text.eq_ignore_ascii_case("none") {
            return Ok(Self::NONE);
        }
        let invalid = || {
            format!("invalid rate limit {text:?}: expected CALLS/SECONDS such as 300/3600, or 0")
        };
        let (calls, seconds) = text.split_once('/').ok_or_else(invalid)?;
        let calls: u32 = calls.trim().parse().map_err(|_| invalid())?;
        let seconds: u64 = seconds.trim().parse().map_err(|_| invalid())?;
        if calls > 0 && seconds == 0 {
            return Err(invalid());
        }
        Ok(Self {
            calls,
            window: Duration::from_secs(seconds),
        })
    }
}

impl std::fmt::Display for RateLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_unlimited() {
            return f.write_str("0");
        }
        write!(f, "{}/{}", self.calls, self.window.as_secs())
    }
}

impl Serialize for RateLimit {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RateLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        match Raw::deserialize(deserializer)? {
            Raw::Number(0) => Ok(Self::NONE),
            Raw::Number(other) => Err(serde::de::Error::custom(format!(
                "invalid rate limit {other}: expected \"CALLS/SECONDS\" such as \"300/3600\", or 0"
            ))),
            Raw::Text(text) => text.parse().map_err(serde::de::Error::custom),
        }
    }
}

/// Status of a call blocked by the rate or concurrency limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u16", into = "u16")]
pub enum BlockedStatus {
    /// 409 with `X-RateLimit-ToWait-Sec`, as documented for Qualys APIs.
    Conflict,
    /// 429 with `Retry-After`, as API gateways answer.
    TooManyRequests,
}

impl BlockedStatus {
    pub fn code(self) -> u16 {
        match self {
            Self::Conflict => 409,
            Self::TooManyRequests => 429,
        }
    }
}

impl TryFrom<u16> for BlockedStatus {
    type Error = String;

    fn try_from(code: u16) -> Result<Self, Self::Error> {
        match code {
            409 => Ok(Self::Conflict),
            429 => Ok(Self::TooManyRequests),
            other => Err(format!(
                "invalid blocked status {other}: expected 409 or 429"
            )),
        }
    }
}

impl From<BlockedStatus> for u16 {
    fn from(status: BlockedStatus) -> u16 {
        status.code()
    }
}

impl FromStr for BlockedStatus {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let code: u16 = text
            .trim()
            .parse()
            .map_err(|_| format!("invalid blocked status {text:?}: expected 409 or 429"))?;
        Self::try_from(code)
    }
}

/// Parses a duration such as `30s`, `4h` or `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|err| format!("invalid duration {text:?} ({err}): write it as 30s, 5m or 4h"))
}

/// Errors in simulator settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("failed to read settings file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid settings in {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error("invalid value {value} for {key}: expected {expected}")]
    Invalid {
        key: &'static str,
        value: String,
        expected: &'static str,
    },
}

/// Rewrites the object keys of `value` from snake_case to kebab-case, so
/// both spellings reach the kebab-case field names.
fn kebab_keys(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(key, value)| (key.replace('_', "-"), value))
            .collect(),
        other => other,
    }
}

/// Serde glue for durations written as `30s` or `4h`.
mod humantime_serde {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&humantime::format_duration(*duration))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        super::parse_duration(&text).map_err(serde::de::Error::custom)
    }

    pub mod option {
        use std::time::Duration;

        use serde::{Deserialize, Deserializer};

        pub fn deserialize<'de, D: Deserializer<'de>>(
            deserializer: D,
        ) -> Result<Option<Duration>, D::Error> {
            Option::<String>::deserialize(deserializer)?
                .map(|text| crate::config::parse_duration(&text).map_err(serde::de::Error::custom))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_parses_calls_per_seconds() {
        let limit: RateLimit = "300/3600".parse().unwrap();
        assert_eq!(limit.calls, 300);
        assert_eq!(limit.window, Duration::from_secs(3600));
    }

    #[test]
    fn rate_limit_zero_means_unlimited() {
        let limit: RateLimit = "0".parse().unwrap();
        assert!(limit.is_unlimited());
    }

    #[test]
    fn rate_limit_rejects_missing_window() {
        let err = "300".parse::<RateLimit>().unwrap_err();
        assert!(err.contains("CALLS/SECONDS"), "{err}");
    }

    #[test]
    fn fault_update_accepts_both_key_spellings() {
        let update = FaultUpdate::from_json(br#"{"fail-rate": 0.5, "reset_rate": 0.1}"#).unwrap();
        assert_eq!(update.fail_rate, Some(0.5));
        assert_eq!(update.reset_rate, Some(0.1));
    }

    #[test]
    fn fault_update_rejects_unknown_key() {
        let err = FaultUpdate::from_json(br#"{"fial-rate": 0.5}"#).unwrap_err();
        assert!(err.to_string().contains("fial-rate"), "{err}");
    }

    #[test]
    fn fault_update_out_of_range_keeps_settings() {
        let mut config = SimConfig::default();
        let update = FaultUpdate::from_json(br#"{"fail-rate": 1.5}"#).unwrap();
        assert!(update.apply(&mut config).is_err());
        assert_eq!(config.fail_rate, 0.0);
    }
}
