//! The `[source]` settings: where the Qualys FIM API is, how to log in, which
//! streams to poll and how fast.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use fim_model::{ApiVersion, RecordKind};
use serde::{Deserialize, Deserializer};

use crate::secret::Secret;

/// Settings of the Qualys FIM source.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Qualys platform name (`US1`, `EU2`, ...); give this or `base_url`.
    #[serde(default)]
    pub platform: Option<Platform>,
    /// Gateway URL for a private cloud, a proxy or the simulator; wins over
    /// `platform`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// Qualys user with FIM API access.
    pub username: String,
    /// Password of `username`; never logged.
    #[serde(default)]
    pub password: Option<Secret>,
    /// File whose content (trailing newline removed) is the password.
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// `v2` (POST searches paged with `searchAfter`) or `v1` (GET lists paged
    /// with `pageNumber`).
    #[serde(default = "defaults::api_version", deserialize_with = "api_version")]
    pub api_version: ApiVersion,
    /// Streams to poll.
    #[serde(default = "defaults::streams", deserialize_with = "streams")]
    pub streams: Vec<RecordKind>,
    /// Pause between polls of a stream that is caught up.
    #[serde(default = "defaults::poll_interval", with = "humantime_serde")]
    pub poll_interval: Duration,
    /// Records per search request.
    #[serde(default = "defaults::page_size")]
    pub page_size: usize,
    /// Where a first run starts: a look-back (`"24h"`) or an RFC 3339 time.
    #[serde(default = "defaults::start_from")]
    pub start_from: StartFrom,
    /// Gap kept between a poll window's end and now, because the Qualys
    /// search index shows a processed event only some seconds later.
    #[serde(default = "defaults::lag", with = "humantime_serde")]
    pub lag: Duration,
    /// QQL filter of the user, combined as `(<filter>) and <time window>`.
    #[serde(default)]
    pub filter: String,
    #[serde(default)]
    pub rate_limit: RateLimitConfig,
    /// How long before its `exp` a token is renewed.
    #[serde(default = "defaults::token_renew_margin", with = "humantime_serde")]
    pub token_renew_margin: Duration,
    /// Time limit of one HTTP request, response body included.
    #[serde(default = "defaults::request_timeout", with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Maximum wait between retries of a failing request (5xx, timeout,
    /// cut-off body); waits double from one second up to this.
    #[serde(default = "defaults::max_backoff", with = "humantime_serde")]
    pub max_backoff: Duration,
    /// PEM file of extra CA certificates trusted for the gateway, for a
    /// private CA or a TLS-inspecting proxy. They are added to the bundled
    /// Mozilla roots (webpki-roots), which are always trusted.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Accept a server certificate that does not verify. Only for tests
    /// against a self-signed gateway; never in production.
    #[serde(default)]
    pub danger_accept_invalid_certs: bool,
    /// Recently delivered ids remembered to drop records fetched twice.
    #[serde(default)]
    pub dedup: DedupConfig,
}

/// The client-side rate limit, shared by every stream of one subscription.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Calls allowed per `per`.
    #[serde(default = "defaults::calls")]
    pub calls: u32,
    /// Length of the rolling window.
    #[serde(default = "defaults::per", with = "humantime_serde")]
    pub per: Duration,
    /// Calls that may go out back to back before the even spacing applies.
    #[serde(default = "defaults::burst")]
    pub burst: u32,
    /// Calls running at once until the API reports its own cap in
    /// `X-Concurrency-Limit-Limit`.
    #[serde(default = "defaults::concurrency")]
    pub concurrency: usize,
    /// Cap on one wait requested by a 409 or 429 response.
    #[serde(default = "defaults::max_wait", with = "humantime_serde")]
    pub max_wait: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        Self {
            calls: defaults::calls(),
            per: defaults::per(),
            burst: defaults::burst(),
            concurrency: defaults::concurrency(),
            max_wait: defaults::max_wait(),
        }
    }
}

/// Bounds of the id cache that drops records delivered before.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DedupConfig {
    /// Ids kept per stream.
    #[serde(default = "defaults::dedup_capacity")]
    pub capacity: usize,
    /// Ids older than this are forgotten.
    #[serde(default = "defaults::dedup_max_age", with = "humantime_serde")]
    pub max_age: Duration,
}

impl Default for DedupConfig {
    fn default() -> Self {
        Self {
            capacity: defaults::dedup_capacity(),
            max_age: defaults::dedup_max_age(),
        }
    }
}

mod defaults {
    use std::time::Duration;

    use fim_model::{ApiVersion, RecordKind};

    use super::StartFrom;

    pub fn api_version() -> ApiVersion {
        ApiVersion::V2
    }
    pub fn streams() -> Vec<RecordKind> {
        vec![RecordKind::Event, RecordKind::Incident]
    }
    pub fn poll_interval() -> Duration {
        Duration::from_secs(60)
    }
    /// Page size the Qualys add-on for Splunk uses.
    pub fn page_size() -> usize {
        1000
    }
    pub fn start_from() -> StartFrom {
        StartFrom::LookBack(Duration::from_secs(24 * 3600))
    }
    /// Returns the lag the Qualys add-on for Splunk keeps.
    pub fn lag() -> Duration {
        Duration::from_secs(30)
    }
    pub fn token_renew_margin() -> Duration {
        Duration::from_secs(300)
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(120)
    }
    pub fn max_backoff() -> Duration {
        Duration::from_secs(60)
    }
    /// Typical Qualys subscription: 300 calls per hour.
    pub fn calls() -> u32 {
        300
    }
    pub fn per() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn burst() -> u32 {
        10
    }
    /// Typical Qualys subscription: 2 calls at once.
    pub fn concurrency() -> usize {
        2
    }
    pub fn max_wait() -> Duration {
        Duration::from_secs(3600)
    }
    pub fn dedup_capacity() -> usize {
        100_000
    }
    pub fn dedup_max_age() -> Duration {
        Duration::from_secs(48 * 3600)
    }
}

impl SourceConfig {
    /// Settings for `base_url` with every default; the password as given.
    pub fn new(base_url: impl Into<String>, username: impl Into<String>, password: Secret) -> Self {
        Self {
            platform: None,
            base_url: Some(base_url.into()),
            username: username.into(),
            password: Some(password),
            password_file: None,
            api_version: defaults::api_version(),
            streams: defaults::streams(),
            poll_interval: defaults::poll_interval(),
            page_size: defaults::page_size(),
            start_from: defaults::start_from(),
            lag: defaults::lag(),
            filter: String::new(),
            rate_limit: RateLimitConfig::default(),
            token_renew_margin: defaults::token_renew_margin(),
            request_timeout: defaults::request_timeout(),
            max_backoff: defaults::max_backoff(),
            ca_file: None,
            danger_accept_invalid_certs: false,
            dedup: DedupConfig::default(),
        }
    }

    /// Returns the gateway URL without a trailing slash.
    pub fn gateway(&self) -> Result<String, ConfigError> {
        match (&self.base_url, self.platform) {
            (Some(url), _) => {
                let url = url.trim().trim_end_matches('/');
                if !(url.starts_with("https://") || url.starts_with("http://")) {
                    return Err(ConfigError::new(
                        "source.base_url",
                        url,
                        "a URL starting with https:// (or http:// for a local simulator)",
                    ));
                }
                Ok(url.to_owned())
            }
            (None, Some(platform)) => Ok(format!("https://{}", platform.gateway())),
            (None, None) => Err(ConfigError::new(
                "source.platform",
                "(missing)",
                "a platform such as \"US1\" or a base_url such as \"https://gateway.qg1.apps.qualys.com\"",
            )),
        }
    }

    /// Returns the password from `password` or `password_file`.
    pub fn resolve_password(&self) -> Result<Secret, ConfigError> {
        match (&self.password, &self.password_file) {
            (Some(_), Some(_)) => Err(ConfigError::new(
                "source.password_file",
                "(set together with source.password)",
                "either password or password_file, not both",
            )),
            (Some(password), None) => Ok(password.clone()),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map(|text| Secret::new(text.trim_end_matches(['\r', '\n']).to_owned()))
                .map_err(|err| {
                    ConfigError::new(
                        "source.password_file",
                        &path.display().to_string(),
                        &format!("a readable file holding the password ({err})"),
                    )
                }),
            (None, None) => Err(ConfigError::new(
                "source.password",
                "(missing)",
                "the Qualys password, e.g. password = \"${QUALYS_PASSWORD}\", or password_file",
            )),
        }
    }

    /// Reads the certificates of `ca_file`; empty when it is not set.
    pub fn root_certificates(&self) -> Result<Vec<reqwest::Certificate>, ConfigError> {
        let Some(path) = &self.ca_file else {
            return Ok(Vec::new());
        };
        let invalid = |reason: String| {
            ConfigError::new(
                "source.ca_file",
                &path.display().to_string(),
                &format!("a readable PEM file of CA certificates ({reason})"),
            )
        };
        let pem = std::fs::read(path).map_err(|err| invalid(err.to_string()))?;
        let certificates =
            reqwest::Certificate::from_pem_bundle(&pem).map_err(|err| invalid(err.to_string()))?;
        if certificates.is_empty() {
            return Err(invalid("no certificate found".to_owned()));
        }
        Ok(certificates)
    }

    /// Checks every value serde cannot, reporting all problems at once.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut problems = Vec::new();
        if let Err(err) = self.gateway() {
            problems.push(err);
        }
        if self.username.trim().is_empty() {
            problems.push(ConfigError::new(
                "source.username",
                "\"\"",
                "the Qualys user name",
            ));
        }
        if !(1..=10_000).contains(&self.page_size) {
            problems.push(ConfigError::new(
                "source.page_size",
                &self.page_size.to_string(),
                "a page size from 1 to 10000 (1000 is usual)",
            ));
        }
        if self.streams.is_empty() {
            problems.push(ConfigError::new(
                "source.streams",
                "[]",
                "at least one of events, ignored_events, incidents, incident_events",
            ));
        }
        if self.poll_interval.is_zero() {
            problems.push(ConfigError::new(
                "source.poll_interval",
                "0s",
                "a pause such as \"60s\"",
            ));
        }
        if self.rate_limit.calls == 0 || self.rate_limit.per.is_zero() {
            problems.push(ConfigError::new(
                "source.rate_limit",
                &format!(
                    "{} per {}",
                    self.rate_limit.calls,
                    humantime::format_duration(self.rate_limit.per)
                ),
                "calls of at least 1 and a window such as \"1h\"",
            ));
        }
        if self.rate_limit.burst == 0 {
            problems.push(ConfigError::new(
                "source.rate_limit.burst",
                "0",
                "at least 1 (calls that may go out back to back)",
            ));
        }
        if self.rate_limit.concurrency == 0 {
            problems.push(ConfigError::new(
                "source.rate_limit.concurrency",
                "0",
                "at least 1",
            ));
        }
        if self.dedup.capacity == 0 {
            problems.push(ConfigError::new(
                "source.dedup.capacity",
                "0",
                "at least 1 (100000 is usual)",
            ));
        }
        if let Err(problem) = self.root_certificates() {
            problems.push(problem);
        }
        if let Err(problem) = crate::query::check_user_filter(&self.filter) {
            problems.push(ConfigError::new(
                "source.filter",
                &self.filter,
                &format!(
                    "a QQL filter on one line with closed quotes and matched \
                     parentheses and brackets ({problem})"
                ),
            ));
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }
}

/// Qualys platforms whose gateway is documented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Platform {
    Us1,
    Us2,
    Us3,
    Eu1,
    Eu2,
    In1,
}

impl Platform {
    const ALL: [(Platform, &'static str, &'static str); 6] = [
        (Platform::Us1, "US1", "gateway.qg1.apps.qualys.com"),
        (Platform::Us2, "US2", "gateway.qg2.apps.qualys.com"),
        (Platform::Us3, "US3", "gateway.qg3.apps.qualys.com"),
        (Platform::Eu1, "EU1", "gateway.qg1.apps.qualys.eu"),
        (Platform::Eu2, "EU2", "gateway.qg2.apps.qualys.eu"),
        (Platform::In1, "IN1", "gateway.qg1.apps.qualys.in"),
    ];

    /// Returns the gateway host name.
    pub fn gateway(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(platform, _, _)| *platform == self)
            .map_or("", |(_, _, host)| host)
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(_, known, _)| known.eq_ignore_ascii_case(name.trim()))
            .map(|(platform, _, _)| *platform)
    }
}

impl<'de> Deserialize<'de> for Platform {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        Self::parse(&name).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown platform {name:?}: use US1, US2, US3, EU1, EU2 or IN1, or set base_url \
                 to the gateway of another platform"
            ))
        })
    }
}

/// Where a first run starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// This long before the start.
    LookBack(Duration),
    /// This instant, epoch milliseconds.
    At(i64),
}

impl StartFrom {
    /// Returns the start as epoch ms for a run starting at `now_ms`.
    pub fn resolve(self, now_ms: i64) -> i64 {
        match self {
            StartFrom::LookBack(duration) => {
                now_ms.saturating_sub(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
            }
            StartFrom::At(ms) => ms,
        }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(duration) = humantime::parse_duration(text) {
            return Ok(StartFrom::LookBack(duration));
        }
        fim_model::Timestamp::parse(text)
            .map(|time| StartFrom::At(time.unix_ms()))
            .ok_or_else(|| {
                format!(
                    "invalid start_from {text:?}: write a look-back such as \"24h\" or a time \
                     such as \"2024-05-01T00:00:00Z\""
                )
            })
    }
}

impl<'de> Deserialize<'de> for StartFrom {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn api_version<'de, D: Deserializer<'de>>(deserializer: D) -> Result<ApiVersion, D::Error> {
    let text = String::deserialize(deserializer)?;
    match text.trim().to_ascii_lowercase().as_str() {
        "v1" => Ok(ApiVersion::V1),
        "v2" | "v3" => Ok(ApiVersion::V2),
        _ => Err(serde::de::Error::custom(format!(
            "unknown api_version {text:?}: use \"v2\" (POST search with searchAfter) or \"v1\""
        ))),
    }
}

fn streams<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<RecordKind>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    let mut kinds = Vec::new();
    for name in names {
        let kind = RecordKind::from_stream_name(name.trim()).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown stream {name:?}: use events, ignored_events, incidents or incident_events"
            ))
        })?;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    Ok(kinds)
}

/// One invalid setting: the key, the value found and what is allowed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {key} = {value}: expected {expected}")]
pub struct ConfigError {
    pub key: String,
    pub value: String,
    pub expected: String,
}

impl ConfigError {
    pub fn new(key: &str, value: &str, expected: &str) -> Self {
        Self {
            key: key.to_owned(),
            value: value.to_owned(),
            expected: expected.to_owned(),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = Self::ALL
            .iter()
            .find(|(platform, _, _)| platform == self)
            .map_or("?", |(_, name, _)| name);
        f.write_str(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_text: &str) -> Result<SourceConfig, String> {
        let value: serde_json::Value =
            serde_json::from_str(toml_text).map_err(|e| e.to_string())?;
        serde_json::from_value(value).map_err(|err| err.to_string())
    }

    #[test]
    fn platform_maps_to_its_gateway() {
        let config = parse(r#"{"platform": "eu2", "username": "u", "password": "p"}"#).unwrap();
        assert_eq!(
            config.gateway().unwrap(),
            "https://gateway.qg2.apps.qualys.eu"
        );
    }

    #[test]
    fn base_url_wins_and_loses_trailing_slash() {
        let config = parse(
            r#"{"platform": "US1", "base_url": "http://127.0.0.1:8080/", "username": "u", "password": "p"}"#,
        )
        .unwrap();
        assert_eq!(config.gateway().unwrap(), "http://127.0.0.1:8080");
    }

    #[test]
    fn unknown_platform_is_named() {
        let err = parse(r#"{"platform": "MARS1", "username": "u"}"#).unwrap_err();
        assert!(err.contains("MARS1"), "{err}");
    }

    #[test]
    fn unknown_stream_is_named() {
        let err = parse(r#"{"base_url": "http://x", "username": "u", "streams": ["alerts"]}"#)
            .unwrap_err();
        assert!(err.contains("alerts"), "{err}");
    }

    #[test]
    fn start_from_takes_look_back_or_time() {
        assert_eq!(
            StartFrom::parse("24h").unwrap(),
            StartFrom::LookBack(Duration::from_secs(86_400))
        );
        assert_eq!(
            StartFrom::parse("2024-05-01T00:00:00Z").unwrap(),
            StartFrom::At(1_714_521_600_000)
        );
        assert!(StartFrom::parse("yesterday").is_err());
    }

    #[test]
    fn validate_reports_every_problem() {
        let mut config = SourceConfig::new("ftp://x", "", Secret::new("p".into()));
        config.page_size = 0;
        config.streams.clear();
        let problems = config.validate().unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "source.base_url",
                "source.username",
                "source.page_size",
                "source.streams"
            ]
        );
    }

    #[test]
    fn password_file_trims_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "hunter2\n").unwrap();
        let mut config = SourceConfig::new("http://x", "u", Secret::new(String::new()));
        config.password = None;
        config.password_file = Some(path);
        assert_eq!(config.resolve_password().unwrap().expose(), "hunter2");
    }
}
