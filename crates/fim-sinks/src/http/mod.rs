//! The HTTP sink: batches of records POSTed to Splunk HEC, Elasticsearch
//! `_bulk` or any collector that takes JSON.
//!
//! A record is acknowledged once the receiver reported it stored: a 2xx for
//! the whole request, or its own item status where the receiver gives one
//! (`_bulk`, HEC `invalid-event-number`). A record the receiver rejects for
//! good goes to the dead-letter file. Everything else is retried with
//! backoff for as long as the process runs. [`retry`] lists the rules.
//!
//! NOTE: HEC indexer acknowledgement (channels and `ackId` polling) is not
//! implemented, so a HEC 200 counts as delivered although Splunk has only
//! accepted the payload. One request is in flight at a time.
//!
//! - `config.rs`: the options.
//! - `request_builder.rs`: records to request bodies, per mode.
//! - `service.rs`: one request, with authentication and TLS.
//! - `retry.rs`: the response rules.
//! - `sink.rs`: batching and the delivery loop.

mod config;
mod request_builder;
pub mod retry;
mod service;
mod sink;
#[cfg(test)]
mod tests;

pub use config::{
    Auth, BatchConfig, Compression, ElasticsearchConfig, GenericBody, HecConfig, HttpConfig,
    HttpConfigError, HttpMode, HttpTlsConfig, RetryConfig, Secret,
};
pub use service::parse_retry_after;
pub use sink::HttpSink;
