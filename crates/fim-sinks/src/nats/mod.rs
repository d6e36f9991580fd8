//! The NATS sink. In JetStream mode (the default) each record is published
//! with `Nats-Msg-Id` set to its dedup key and acknowledged once its PubAck
//! arrives; a PubAck marked duplicate counts as stored, and a PubAck that
//! times out is retried with the same id, so the stream's duplicate window
//! absorbs the resend. The stream is created when missing.
//!
//! Core NATS mode (`jetstream = false`) is at-most-once: a record is
//! acknowledged once the server received it (the connection's flush
//! returned), and the server keeps nothing for subscribers that are not
//! listening or fall behind.

mod config;
mod request_builder;
mod retry;
mod service;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{NatsAuth, NatsConfig, NatsConfigError, NatsTls, Secret};
pub use request_builder::STREAM_HEADER;
pub use service::stream_config;
pub use sink::NatsSink;
