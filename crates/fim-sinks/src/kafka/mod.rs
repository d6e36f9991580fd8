//! The Kafka sink: an idempotent librdkafka producer (`enable.idempotence`,
//! `acks = all`) whose delivery reports drive acknowledgements. Each record
//! is keyed by its dedup key unless `key` names a field, and carries
//! `stream` and `record_type` headers. A full librdkafka queue pauses the
//! sink. A record the brokers reject as too large or invalid goes to the
//! dead-letter file without holding up the others. A fatal producer error
//! recreates the producer, which then produces every unacknowledged record
//! again.

mod config;
mod request_builder;
mod retry;
mod service;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{Compression, KafkaConfig, KafkaConfigError};
pub use sink::KafkaSink;
