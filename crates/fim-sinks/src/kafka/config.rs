use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::template::Template;

/// Options of the Kafka sink.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port`.
    pub brokers: Vec<String>,
    /// Topic each record is produced to; `{stream}` and `{field}`
    /// placeholders take the record's stream name or a top-level field.
    pub topic: Template,
    /// Record field used as the message key. Unset (the default), the key
    /// is the record's dedup key: the event id, or `<id>@<update ms>` for
    /// an incident, so each version of an incident is its own message.
    /// A record without the named field falls back to the dedup key.
    #[serde(default)]
    pub key: Option<String>,
    /// `compression.type`: none, gzip, snappy, lz4 or zstd.
    #[serde(default)]
    pub compression: Compression,
    /// Headers added to every message besides `stream` and `record_type`;
    /// values are templates like `topic`.
    #[serde(default)]
    pub headers: BTreeMap<String, Template>,
    /// Create each topic on its first use, with `topic_partitions` and
    /// `topic_replication`, for brokers that do not create topics
    /// themselves. A topic that exists is left as it is.
    #[serde(default)]
    pub create_topics: bool,
    /// Partitions of a topic the sink creates.
    #[serde(default = "default_topic_partitions")]
    pub topic_partitions: i32,
    /// Replication factor of a topic the sink creates; -1 takes the
    /// broker's `default.replication.factor` (Kafka 2.4 and later).
    #[serde(default = "default_topic_replication")]
    pub topic_replication: i32,
    /// Records produced and not yet confirmed by a delivery report, at
    /// most; the sink stops taking records from its channel at this count.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// Interval between metadata requests that check whether the brokers
    /// are reachable.
    #[serde(default = "default_health_interval", with = "humantime_serde")]
    pub health_interval: Duration,
    /// librdkafka properties, passed through as written and applied after
    /// the sink's own, so they win (`"compression.type"`,
    /// `"security.protocol"`, `"sasl.password"`, …). The sink sets
    /// `enable.idempotence = true` and `acks = all` unless overridden here.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, toml::Value>,
}

/// Compression codecs librdkafka supports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    #[default]
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// A Kafka configuration that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaConfigError {
    #[error("brokers is empty: give at least one \"host:port\", such as \"127.0.0.1:9092\"")]
    NoBrokers,
    #[error("brokers: {0:?} is invalid: give \"host:port\"")]
    InvalidBroker(String),
    #[error(
        "librdkafka.{key:?} = {value} is invalid: give a string, number or boolean as librdkafka documents it"
    )]
    InvalidProperty { key: String, value: String },
    #[error("key = \"\" is invalid: name a record field, or remove key to use the event id")]
    EmptyKey,
    #[error("max_in_flight = {0} is invalid: give a number from 1 to 1000000")]
    InvalidMaxInFlight(usize),
    #[error("health_interval = 0s is invalid: give a positive duration such as \"10s\"")]
    ZeroHealthInterval,
    #[error("topic_partitions = {0} is invalid: give 1 or more")]
    InvalidPartitions(i32),
    #[error("topic_replication = {0} is invalid: give 1 or more, or -1 for the broker's default")]
    InvalidReplication(i32),
}

impl KafkaConfig {
    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), KafkaConfigError> {
        if self.brokers.is_empty() {
            return Err(KafkaConfigError::NoBrokers);
        }
        for broker in &self.brokers {
            let valid = broker
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid {
                return Err(KafkaConfigError::InvalidBroker(broker.clone()));
            }
        }
        if self.key.as_deref().is_some_and(|key| key.trim().is_empty()) {
            return Err(KafkaConfigError::EmptyKey);
        }
        if !(1..=1_000_000).contains(&self.max_in_flight) {
            return Err(KafkaConfigError::InvalidMaxInFlight(self.max_in_flight));
        }
        if self.health_interval.is_zero() {
            return Err(KafkaConfigError::ZeroHealthInterval);
        }
        if self.topic_partitions < 1 {
            return Err(KafkaConfigError::InvalidPartitions(self.topic_partitions));
        }
        if self.topic_replication < 1 && self.topic_replication != -1 {
            return Err(KafkaConfigError::InvalidReplication(self.topic_replication));
        }
        self.properties().map(drop)
    }

    /// Returns the librdkafka properties the producer is created with: the
    /// sink's defaults, then the pass-through table.
    pub fn properties(&self) -> Result<BTreeMap<String, String>, KafkaConfigError> {
        let mut properties = BTreeMap::new();
        properties.insert("bootstrap.servers".to_owned(), self.brokers.join(","));
        properties.insert("client.id".to_owned(), "fim-forwarder".to_owned());
        properties.insert("enable.idempotence".to_owned(), "true".to_owned());
        properties.insert("acks".to_owned(), "all".to_owned());
        // librdkafka already keeps its own copy of each message until the
        // delivery report, so the produce request refers to that copy
        // instead of copying it again (its default copies messages of up
        // to 64 KiB into the request).
        properties.insert("message.copy.max.bytes".to_owned(), "0".to_owned());
        properties.insert(
            "compression.type".to_owned(),
            self.compression.as_str().to_owned(),
        );

        for (key, value) in &self.librdkafka {
            let text = match value {
                toml::Value::String(text) => text.clone(),
                toml::Value::Integer(number) => number.to_string(),
                toml::Value::Float(number) => number.to_string(),
                toml::Value::Boolean(flag) => flag.to_string(),
                other => {
                    return Err(KafkaConfigError::InvalidProperty {
                        key: key.clone(),
                        value: other.to_string(),
                    });
                }
            };
            properties.insert(key.clone(), text);
        }
        Ok(properties)
    }
}

/// Returns whether a librdkafka property contains a secret, so its value is
/// never logged.
pub fn is_secret_property(key: &str) -> bool {
    [
        "password",
        "secret",
        "key.pem",
        "sasl.oauthbearer.config",
        "sasl.jaas",
    ]
    .iter()
    .any(|word| key.contains(word))
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let librdkafka: BTreeMap<&str, String> = self
            .librdkafka
            .iter()
            .map(|(key, value)| {
                let shown = if is_secret_property(key) {
                    "***".to_owned()
                } else {
                    value.to_string()
                };
                (key.as_str(), shown)
            })
            .collect();
        formatter
            .debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("key", &self.key)
            .field("compression", &self.compression)
            .field("headers", &self.headers)
            .field("create_topics", &self.create_topics)
            .field("topic_partitions", &self.topic_partitions)
            .field("topic_replication", &self.topic_replication)
            .field("max_in_flight", &self.max_in_flight)
            .field("health_interval", &self.health_interval)
            .field("librdkafka", &librdkafka)
            .finish()
    }
}

/// The NATS sink's default too. In the 200,000-event benchmark against tansu,
/// 1,000 gave 61 to 72 k events/s at a peak RSS of 64 to 70 MiB, and 512
/// gave 54 to 64 k events/s at 59 to 62 MiB.
fn default_max_in_flight() -> usize {
    512
}

fn default_topic_partitions() -> i32 {
    1
}

fn default_topic_replication() -> i32 {
    -1
}

fn default_health_interval() -> Duration {
    Duration::from_secs(10)
}
