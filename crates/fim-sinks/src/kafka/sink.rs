use std::collections::{BTreeMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use rdkafka::error::KafkaError;
use rdkafka::producer::Producer as _;
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::KafkaConfig;
use super::request_builder::{KafkaRequest, KafkaRequestBuilder};
use super::retry::{KafkaRetryLogic, Outcome};
use super::service::{self, KafkaContext, Producer};
use crate::lines::dead_letter;
use crate::retry::Backoff;
use crate::{Delivery, Sink, SinkContext, SinkMetrics};

/// Produces records to Kafka with an idempotent producer.
#[derive(Debug)]
pub struct KafkaSink {
    config: KafkaConfig,
    properties: BTreeMap<String, String>,
    context: SinkContext,
}

impl KafkaSink {
    /// Checks the configuration and that librdkafka accepts every
    /// property; connecting waits until the sink runs.
    pub fn new(config: KafkaConfig, context: SinkContext) -> Result<Self, String> {
        config.validate().map_err(|err| err.to_string())?;
        let properties = config.properties().map_err(|err| err.to_string())?;
        service::check_properties(&properties).map_err(|err| {
            format!("librdkafka rejected the configuration: {err}: fix the [librdkafka] table")
        })?;
        Ok(Self {
            config,
            properties,
            context,
        })
    }
}

impl Sink for KafkaSink {
    fn run(
        self: Box<Self>,
        input: mpsc::Receiver<Delivery>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let KafkaSink {
                config,
                properties,
                context,
            } = *self;
            let kafka_context = KafkaContext {
                sink: context.name.clone(),
                metrics: context.metrics.clone(),
            };
            let producer = match service::create_producer(&properties, kafka_context.clone()) {
                Ok(producer) => producer,
                Err(err) => {
                    tracing::error!(sink = %context.name, cause = %err, "failed to create the kafka producer; the sink stops and its records stay unacknowledged");
                    return;
                }
            };
            context.metrics.disconnected.store(true, Ordering::Relaxed);
            let health = tokio::spawn(service::probe_health(
                producer.clone(),
                config.health_interval,
                kafka_context.clone(),
            ));

            let mut driver = Driver {
                builder: KafkaRequestBuilder::new(
                    config.topic.clone(),
                    config.key.clone(),
                    config.headers.clone(),
                    context.encoder.clone(),
                ),
                max_in_flight: config.max_in_flight,
                topics: config.create_topics.then(|| TopicCreation {
                    partitions: config.topic_partitions,
                    replication: config.topic_replication,
                    known: HashSet::new(),
                }),
                producer,
                generation: 0,
                properties,
                kafka_context,
                context,
                in_flight: FuturesUnordered::new(),
                waiting: VecDeque::new(),
                retry_at: None,
                backoff: Backoff::default(),
                retry_logic: KafkaRetryLogic,
            };
            driver.run(input).await;
            health.abort();
            // Dropping the producer purges and flushes it, which blocks.
            let producer = driver.producer;
            let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
        })
    }
}

/// A produced request and its delivery report, tagged with the producer
/// generation that sent it.
type Report = (
    KafkaRequest,
    u64,
    Result<OwnedDeliveryResult, futures::channel::oneshot::Canceled>,
);

/// Topics the sink creates on first use, when `create_topics` is set.
#[derive(Debug)]
struct TopicCreation {
    partitions: i32,
    replication: i32,
    /// Topics created or found to exist.
    known: HashSet<String>,
}

/// The sink's loop and what it owns while running.
struct Driver {
    context: SinkContext,
    kafka_context: KafkaContext,
    properties: BTreeMap<String, String>,
    builder: KafkaRequestBuilder,
    producer: Producer,
    /// Counts producers created; a fatal error reported by an older
    /// producer's message does not recreate the current one.
    generation: u64,
    /// Requests handed to librdkafka, awaiting their delivery reports. The
    /// channel is not read while this contains `max_in_flight` requests.
    in_flight: FuturesUnordered<BoxFuture<'static, Report>>,
    max_in_flight: usize,
    /// `None` unless the sink creates missing topics.
    topics: Option<TopicCreation>,
    /// Requests to produce (again), oldest first; the channel is not read
    /// while any wait, so retries come before new records.
    waiting: VecDeque<KafkaRequest>,
    /// When `waiting` may be produced again after a failure.
    retry_at: Option<Instant>,
    backoff: Backoff,
    retry_logic: KafkaRetryLogic,
}

impl Driver {
    async fn run(&mut self, mut input: mpsc::Receiver<Delivery>) {
        let mut input_open = true;
        loop {
            if self.retry_at.is_none_or(|at| at <= Instant::now()) {
                self.retry_at = None;
                if self.create_topics().await {
                    self.produce_waiting();
                }
            }
            if !input_open && self.waiting.is_empty() && self.in_flight.is_empty() {
                break;
            }

            let room =
                input_open && self.waiting.is_empty() && self.in_flight.len() < self.max_in_flight;
            let retry_at = self.retry_at;
            tokio::select! {
                Some(report) = self.in_flight.next(), if !self.in_flight.is_empty() => {
                    self.complete(report);
                }
                received = input.recv(), if room => match received {
                    Some(delivery) => self.accept(delivery),
                    None => input_open = false,
                },
                () = sleep_until(retry_at), if retry_at.is_some() => {}
            }
        }
    }

    /// Creates the topics of waiting requests that are not known yet.
    /// Returns `false` when a creation failed and a retry is scheduled.
    async fn create_topics(&mut self) -> bool {
        let Some(topics) = self.topics.as_mut() else {
            return true;
        };
        let missing: HashSet<String> = self
            .waiting
            .iter()
            .filter(|request| !topics.known.contains(&request.topic))
            .map(|request| request.topic.clone())
            .collect();
        for topic in missing {
            let created = service::create_topic(
                &self.properties,
                &topic,
                topics.partitions,
                topics.replication,
            )
            .await;
            match created {
                Ok(()) => {
                    tracing::info!(sink = %self.context.name, topic = %topic, "kafka topic exists or was created");
                    topics.known.insert(topic);
                }
                Err(error) => {
                    tracing::warn!(sink = %self.context.name, topic = %topic, cause = %error, "failed to create the kafka topic");
                    self.schedule_retry(&error, 0);
                    return false;
                }
            }
        }
        true
    }

    fn accept(&mut self, delivery: Delivery) {
        SinkMetrics::add(&self.context.metrics.in_flight, 1);
        match self.builder.build(delivery) {
            Ok(request) => self.waiting.push_back(request),
            Err((delivery, reason)) => {
                tracing::warn!(sink = %self.context.name, event_id = delivery.record.id(), cause = %reason, "failed to build the kafka message, writing the record to the dead-letter file");
                dead_letter(&self.context, &delivery, &reason);
            }
        }
    }

    /// Hands waiting requests to librdkafka until none wait, its queue is
    /// full or a failure schedules a backoff.
    fn produce_waiting(&mut self) {
        while let Some(request) = self.waiting.pop_front() {
            match service::produce(&self.producer, &request) {
                Ok(report) => {
                    SinkMetrics::add(&self.context.metrics.sent, 1);
                    SinkMetrics::add(&self.context.metrics.bytes, request.payload.len() as u64);
                    let generation = self.generation;
                    self.in_flight.push(Box::pin(async move {
                        let result = report.await;
                        (request, generation, result)
                    }));
                }
                Err(error) => match self.retry_logic.classify(&error) {
                    // Delivery reports make room; the loop produces again
                    // after the next one. The queue is full only while
                    // requests are in flight, so one will come.
                    Outcome::QueueFull if !self.in_flight.is_empty() => {
                        self.waiting.push_front(request);
                        return;
                    }
                    Outcome::QueueFull | Outcome::Retry => {
                        self.waiting.push_front(request);
                        self.schedule_retry(&error, 1);
                        return;
                    }
                    Outcome::Reject => self.reject(request, &error),
                },
            }
        }
    }

    fn complete(&mut self, (request, generation, result): Report) {
        let error = match result {
            Ok(Ok(_delivery)) => {
                self.acknowledge(request);
                return;
            }
            Ok(Err((error, _message))) => error,
            // The producer that held the message was dropped.
            Err(_canceled) => KafkaError::Canceled,
        };

        if generation == self.generation
            && let Some((code, reason)) = self.producer.client().fatal_error()
        {
            tracing::error!(sink = %self.context.name, code = ?code, cause = %reason, "kafka producer failed fatally, recreating it and producing every unacknowledged record again");
            self.recreate_producer();
        }

        match self.retry_logic.classify(&error) {
            Outcome::Reject => self.reject(request, &error),
            Outcome::Retry | Outcome::QueueFull => {
                self.waiting.push_back(request);
                self.schedule_retry(&error, 1);
            }
        }
    }

    /// Replaces a producer that failed fatally. Dropping the old one purges
    /// its queue, so each of its in-flight requests comes back with an
    /// error and waits to be produced by the new one.
    fn recreate_producer(&mut self) {
        match service::create_producer(&self.properties, self.kafka_context.clone()) {
            Ok(producer) => {
                let old = std::mem::replace(&mut self.producer, producer);
                self.generation += 1;
                tokio::task::spawn_blocking(move || drop(old));
            }
            Err(err) => {
                tracing::error!(sink = %self.context.name, cause = %err, "failed to recreate the kafka producer, retrying with the old one");
            }
        }
    }

    fn schedule_retry(&mut self, error: &KafkaError, records: u64) {
        SinkMetrics::add(&self.context.metrics.retried, records);
        if self.retry_at.is_some() {
            return;
        }
        let wait = self.backoff.next_wait();
        self.retry_at = Some(Instant::now() + wait);
        tracing::warn!(
            sink = %self.context.name,
            cause = %error,
            waiting = self.waiting.len(),
            attempt = self.backoff.failures(),
            wait_ms = wait.as_millis() as u64,
            "kafka did not take records, retrying"
        );
    }

    fn acknowledge(&mut self, request: KafkaRequest) {
        let metrics = &self.context.metrics;
        request.delivery.ack.ack();
        SinkMetrics::add(&metrics.acknowledged, 1);
        SinkMetrics::sub(&metrics.in_flight, 1);
        metrics.disconnected.store(false, Ordering::Relaxed);
        self.backoff.reset();
    }

    fn reject(&self, request: KafkaRequest, error: &KafkaError) {
        tracing::warn!(sink = %self.context.name, event_id = request.delivery.record.id(), topic = %request.topic, bytes = request.payload.len(), cause = %error, "kafka rejected the record, writing it to the dead-letter file");
        dead_letter(&self.context, &request.delivery, &error.to_string());
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Driver")
            .field("sink", &self.context.name)
            .field("generation", &self.generation)
            .field("in_flight", &self.in_flight.len())
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}
