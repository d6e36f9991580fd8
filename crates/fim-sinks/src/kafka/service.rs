use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::Producer as _;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord};

use super::request_builder::KafkaRequest;
use crate::SinkMetrics;

/// The producer type the sink drives.
pub type Producer = FutureProducer<KafkaContext>;

/// Receives librdkafka's client-wide errors: marks the sink disconnected
/// when no broker can be reached and logs the rest.
#[derive(Debug, Clone)]
pub struct KafkaContext {
    pub sink: String,
    pub metrics: Arc<SinkMetrics>,
}

impl ClientContext for KafkaContext {
    fn error(&self, error: KafkaError, reason: &str) {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::AllBrokersDown) => {
                self.metrics.disconnected.store(true, Ordering::Relaxed);
                tracing::warn!(sink = %self.sink, cause = %reason, "no kafka broker is reachable, retrying");
            }
            // librdkafka reconnects by itself and reports each failed
            // attempt; the health probe and AllBrokersDown cover the state.
            Some(RDKafkaErrorCode::BrokerTransportFailure) => {
                tracing::debug!(sink = %self.sink, cause = %reason, "kafka broker connection failed");
            }
            _ => {
                tracing::error!(sink = %self.sink, error = %error, cause = %reason, "kafka client error")
            }
        }
    }
}

/// Creates a producer with `properties`.
pub fn create_producer(
    properties: &BTreeMap<String, String>,
    context: KafkaContext,
) -> KafkaResult<Producer> {
    let mut config = ClientConfig::new();
    for (key, value) in properties {
        config.set(key, value);
    }
    config.create_with_context(context)
}

/// Checks every property with librdkafka without creating a client, so no
/// connection is made.
pub fn check_properties(properties: &BTreeMap<String, String>) -> KafkaResult<()> {
    let mut config = ClientConfig::new();
    for (key, value) in properties {
        config.set(key, value);
    }
    config.create_native_config().map(drop)
}

/// Creates `topic` unless it exists. Returns an error the caller retries.
pub async fn create_topic(
    properties: &BTreeMap<String, String>,
    topic: &str,
    partitions: i32,
    replication: i32,
) -> KafkaResult<()> {
    let mut config = ClientConfig::new();
    for (key, value) in properties {
        config.set(key, value);
    }
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let new_topic = NewTopic::new(topic, partitions, TopicReplication::Fixed(replication));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics([&new_topic], &options).await? {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => return Err(KafkaError::AdminOp(code)),
        }
    }
    Ok(())
}

/// Hands `request` to librdkafka's queue; the future resolves to its
/// delivery report.
pub fn produce(producer: &Producer, request: &KafkaRequest) -> Result<DeliveryFuture, KafkaError> {
    let mut headers = OwnedHeaders::new_with_capacity(request.headers.len());
    for (name, value) in &request.headers {
        headers = headers.insert(Header {
            key: name,
            value: Some(value),
        });
    }
    let record = FutureRecord::to(&request.topic)
        .key(&request.key)
        .payload(&request.payload)
        .headers(headers);
    producer
        .send_result(record)
        .map_err(|(error, _record)| error)
}

/// Asks the brokers for metadata every `interval` and sets the sink's
/// disconnected flag from the response, until the task is aborted. The
/// first response comes within `interval` of the start, so brokers that are
/// down at start are reported within seconds.
pub async fn probe_health(producer: Producer, interval: Duration, context: KafkaContext) {
    loop {
        let client = producer.clone();
        let timeout = interval.min(Duration::from_secs(5));
        let result = tokio::task::spawn_blocking(move || {
            client.client().fetch_metadata(None, timeout).map(drop)
        })
        .await;
        let reachable = matches!(result, Ok(Ok(())));
        let was_disconnected = context
            .metrics
            .disconnected
            .swap(!reachable, Ordering::Relaxed);
        match (reachable, was_disconnected) {
            (true, true) => tracing::info!(sink = %context.sink, "kafka brokers are reachable"),
            (false, false) => tracing::warn!(sink = %context.sink, "kafka brokers are unreachable"),
            _ => {}
        }
        tokio::time::sleep(interval).await;
    }
}
