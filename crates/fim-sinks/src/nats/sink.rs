use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use async_nats::{Client, jetstream};
use tokio::sync::mpsc;

use super::config::NatsConfig;
use super::request_builder::{NatsRequest, NatsRequestBuilder};
use super::retry::{NatsRetryLogic, Outcome};
use super::service;
use crate::lines::dead_letter;
use crate::retry::Backoff;
use crate::{Delivery, Sink, SinkContext, SinkMetrics};

/// Publishes records to NATS, JetStream by default.
#[derive(Debug)]
pub struct NatsSink {
    config: NatsConfig,
    options: async_nats::ConnectOptions,
    context: SinkContext,
}

impl NatsSink {
    /// Checks the configuration and reads the credential and certificate
    /// files; connecting waits until the sink runs.
    pub fn new(config: NatsConfig, context: SinkContext) -> Result<Self, String> {
        config.validate().map_err(|err| err.to_string())?;
        for server in &config.servers {
            server
                .parse::<async_nats::ServerAddr>()
                .map_err(|err| format!("servers: {server:?} is invalid: {err}: give a URL such as \"nats://127.0.0.1:4222\""))?;
        }
        let options = service::connect_options(&config)?;
        Ok(Self {
            config,
            options,
            context,
        })
    }
}

impl Sink for NatsSink {
    fn run(
        self: Box<Self>,
        input: mpsc::Receiver<Delivery>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let NatsSink {
                config,
                options,
                context,
            } = *self;
            let client = match service::connect(
                options,
                &config.servers,
                &context.name,
                context.metrics.clone(),
            )
            .await
            {
                Ok(client) => client,
                Err(err) => {
                    // Only reachable for an invalid option: with
                    // `retry_on_initial_connect` connecting never fails.
                    tracing::error!(sink = %context.name, cause = %err, "failed to set up the nats client; the sink stops and its records stay unacknowledged");
                    return;
                }
            };
            let mut driver = Driver {
                builder: NatsRequestBuilder::new(config.subject.clone(), context.encoder.clone()),
                jetstream: config.jetstream.then(|| {
                    jetstream::context::ContextBuilder::new()
                        .timeout(config.ack_timeout)
                        .max_ack_inflight(config.max_in_flight)
                        .backpressure_on_inflight(true)
                        .build(client.clone())
                }),
                stream_ready: false,
                client,
                config,
                context,
                retry_logic: NatsRetryLogic,
            };
            driver.run(input).await;
        })
    }
}

/// The sink's loop and what it owns while running.
struct Driver {
    config: NatsConfig,
    context: SinkContext,
    client: Client,
    /// `None` in core NATS mode.
    jetstream: Option<jetstream::Context>,
    /// Set once the stream was found or created; checked again after a
    /// publish finds no stream.
    stream_ready: bool,
    builder: NatsRequestBuilder,
    retry_logic: NatsRetryLogic,
}

impl Driver {
    async fn run(&mut self, mut input: mpsc::Receiver<Delivery>) {
        let mut deliveries = Vec::with_capacity(self.config.max_in_flight);
        let mut requests = Vec::with_capacity(self.config.max_in_flight);
        loop {
            deliveries.clear();
            if input
                .recv_many(&mut deliveries, self.config.max_in_flight)
                .await
                == 0
            {
                break;
            }

            SinkMetrics::add(&self.context.metrics.in_flight, deliveries.len() as u64);
            for delivery in deliveries.drain(..) {
                match self.builder.build(delivery) {
                    Ok(request) => requests.push(request),
                    Err((delivery, reason)) => dead_letter(&self.context, &delivery, &reason),
                }
            }
            self.deliver(&mut requests).await;
        }

        if let Err(err) = self.client.flush().await {
            tracing::warn!(sink = %self.context.name, cause = %err, "failed to flush the nats connection at close");
        }
    }

    /// Sends `requests` until each is confirmed or dead-lettered, retrying
    /// the rest with backoff; returns with `requests` empty.
    async fn deliver(&mut self, requests: &mut Vec<NatsRequest>) {
        let mut backoff = Backoff::default();
        while !requests.is_empty() {
            let failed = match self.jetstream.clone() {
                Some(jetstream) => self.send_jetstream(&jetstream, requests).await,
                None => self.send_core(requests).await,
            };
            if failed == 0 {
                backoff.reset();
                continue;
            }

            SinkMetrics::add(&self.context.metrics.retried, failed as u64);
            let wait = backoff.next_wait();
            tracing::warn!(
                sink = %self.context.name,
                records = failed,
                attempt = backoff.failures(),
                wait_ms = wait.as_millis() as u64,
                "nats did not confirm records, retrying with the same message ids"
            );
            tokio::time::sleep(wait).await;
        }
    }

    /// Publishes every request, then awaits the PubAcks together. Confirmed
    /// and rejected requests leave `requests`; returns how many remain.
    async fn send_jetstream(
        &mut self,
        jetstream: &jetstream::Context,
        requests: &mut Vec<NatsRequest>,
    ) -> usize {
        if !self.stream_ready {
            match service::ensure_stream(jetstream, &self.config).await {
                Ok(()) => self.stream_ready = true,
                Err(err) => {
                    tracing::warn!(sink = %self.context.name, stream = %self.config.stream, cause = %err, "failed to find or create the jetstream stream");
                    return requests.len();
                }
            }
        }

        let mut sent = Vec::with_capacity(requests.len());
        let mut retry = Vec::new();
        for request in requests.drain(..) {
            match service::publish_jetstream(jetstream, &request).await {
                Ok(ack) => {
                    self.count_sent(&request);
                    sent.push((request, ack));
                }
                Err(err) => self.fail(
                    request,
                    &err,
                    self.retry_logic.classify_jetstream(&err),
                    &mut retry,
                ),
            }
        }

        let (pending, acks): (Vec<NatsRequest>, Vec<_>) = sent.into_iter().unzip();
        let results =
            futures::future::join_all(acks.into_iter().map(std::future::IntoFuture::into_future))
                .await;
        for (request, result) in pending.into_iter().zip(results) {
            match result {
                // A duplicate was stored before, within the duplicate
                // window, so the stream has the record: a success.
                Ok(_ack) => self.acknowledge(request),
                Err(err) => {
                    if err.kind() == jetstream::context::PublishErrorKind::StreamNotFound {
                        self.stream_ready = false;
                    }
                    self.fail(
                        request,
                        &err,
                        self.retry_logic.classify_jetstream(&err),
                        &mut retry,
                    )
                }
            }
        }
        *requests = retry;
        requests.len()
    }

    /// Publishes every request and flushes; the server's receipt of the
    /// flush is the only confirmation core NATS has.
    async fn send_core(&mut self, requests: &mut Vec<NatsRequest>) -> usize {
        let mut written = Vec::with_capacity(requests.len());
        let mut retry = Vec::new();
        for request in requests.drain(..) {
            match service::publish_core(&self.client, &request).await {
                Ok(()) => {
                    self.count_sent(&request);
                    written.push(request);
                }
                Err(err) => self.fail(
                    request,
                    &err,
                    self.retry_logic.classify_core(&err),
                    &mut retry,
                ),
            }
        }

        match self.client.flush().await {
            Ok(()) => written
                .into_iter()
                .for_each(|request| self.acknowledge(request)),
            Err(err) => {
                tracing::warn!(sink = %self.context.name, cause = %err, "failed to flush the nats connection");
                retry.extend(written);
            }
        }
        *requests = retry;
        requests.len()
    }

    fn count_sent(&self, request: &NatsRequest) {
        SinkMetrics::add(&self.context.metrics.sent, 1);
        SinkMetrics::add(&self.context.metrics.bytes, request.size() as u64);
    }

    fn acknowledge(&self, request: NatsRequest) {
        let metrics = &self.context.metrics;
        request.delivery.ack.ack();
        SinkMetrics::add(&metrics.acknowledged, 1);
        SinkMetrics::sub(&metrics.in_flight, 1);
        metrics.disconnected.store(false, Ordering::Relaxed);
    }

    fn fail(
        &self,
        request: NatsRequest,
        error: &dyn std::error::Error,
        outcome: Outcome,
        retry: &mut Vec<NatsRequest>,
    ) {
        match outcome {
            Outcome::Reject => {
                tracing::warn!(sink = %self.context.name, event_id = request.delivery.record.id(), subject = %request.subject, bytes = request.size(), cause = %error, "nats rejected the record, writing it to the dead-letter file");
                dead_letter(&self.context, &request.delivery, &error.to_string());
            }
            Outcome::Retry => {
                tracing::debug!(sink = %self.context.name, event_id = request.delivery.record.id(), subject = %request.subject, cause = %error, "publish failed, will retry");
                retry.push(request);
            }
        }
    }
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Driver")
            .field("sink", &self.context.name)
            .field("stream_ready", &self.stream_ready)
            .finish_non_exhaustive()
    }
}
