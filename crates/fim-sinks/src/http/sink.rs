//! The HTTP sink's loop: gather a batch by count, bytes and time, send it,
//! and carry out what the response decided for each record.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

use fim_transform::Encoding;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::{HttpConfig, HttpConfigError, HttpMode};
use super::request_builder::{Item, RequestBuilder, writes_json};
use super::retry::{ItemOutcome, Outcome, ResponseLogic};
use super::service::HttpService;
use crate::lines::dead_letter;
use crate::retry::Backoff;
use crate::{Delivery, Sink, SinkContext, SinkMetrics};

/// Sends records to an HTTP collector, one request at a time.
#[derive(Debug)]
pub struct HttpSink {
    config: HttpConfig,
    context: SinkContext,
    builder: RequestBuilder,
    service: HttpService,
    logic: ResponseLogic,
}

impl HttpConfig {
    /// Checks the options against each other and against the sink's
    /// encoding, and builds the client once so a bad CA file or URL is
    /// reported at start.
    pub fn validate(&self, encoding: Encoding) -> Result<(), HttpConfigError> {
        if self.batch.max_events == 0 {
            return Err(HttpConfigError::ZeroBatch);
        }
        if self.mode == HttpMode::Elasticsearch && !writes_json(encoding) {
            return Err(HttpConfigError::NonJsonForElasticsearch(
                format!("{encoding:?}").to_lowercase(),
            ));
        }
        HttpService::new(self).map(drop)
    }
}

impl HttpSink {
    /// Builds the sink; `encoding` is the one `context.encoder` writes.
    pub fn new(
        config: HttpConfig,
        encoding: Encoding,
        context: SinkContext,
    ) -> Result<Self, HttpConfigError> {
        config.validate(encoding)?;
        let service = HttpService::new(&config)?;
        if config.tls.danger_accept_invalid_certs {
            tracing::warn!(
                sink = %context.name,
                url = %service.url(),
                "tls.danger_accept_invalid_certs is on: the server certificate is not checked"
            );
        }
        Ok(Self {
            builder: RequestBuilder::new(&config, encoding),
            logic: ResponseLogic::new(config.mode),
            service,
            config,
            context,
        })
    }

    async fn run_loop(mut self, mut input: mpsc::Receiver<Delivery>) {
        let max_events = self.config.batch.max_events;
        let max_bytes = self.config.batch.max_bytes.0;
        // An item that would have pushed the previous batch over max_bytes.
        let mut carry: Option<Item> = None;

        loop {
            let mut items = Vec::new();
            let mut size = 0;
            if let Some(item) = carry.take() {
                size += item.chunk.len() + 1;
                items.push(item);
            } else {
                let Some(delivery) = input.recv().await else {
                    break;
                };
                if let Some(item) = self.encode(delivery) {
                    size += item.chunk.len() + 1;
                    items.push(item);
                }
            }
            if items.is_empty() {
                continue;
            }

            let deadline = Instant::now() + self.config.batch.timeout;
            while items.len() < max_events && size < max_bytes {
                let delivery = match tokio::time::timeout_at(deadline, input.recv()).await {
                    Ok(Some(delivery)) => delivery,
                    Ok(None) | Err(_) => break,
                };
                let Some(item) = self.encode(delivery) else {
                    continue;
                };
                if size + item.chunk.len() + 1 > max_bytes {
                    carry = Some(item);
                    break;
                }
                size += item.chunk.len() + 1;
                items.push(item);
            }

            self.deliver(items).await;
        }
    }

    /// Encodes one delivery; a record the encoder rejects is dead-lettered.
    fn encode(&mut self, delivery: Delivery) -> Option<Item> {
        SinkMetrics::add(&self.context.metrics.in_flight, 1);
        match self.builder.item(&self.context, delivery) {
            Ok(item) => Some(item),
            Err((delivery, reason)) => {
                dead_letter(&self.context, &delivery, &reason);
                None
            }
        }
    }

    /// Sends `items` until each is delivered or dead-lettered. Parts of the
    /// batch that need another request (split halves, items to retry) queue
    /// up front, so records keep their order as far as the receiver allows.
    async fn deliver(&mut self, items: Vec<Item>) {
        let retry = &self.config.retry;
        let mut backoff = Backoff::new(retry.initial_backoff, retry.max_backoff);
        let mut queue: VecDeque<Vec<Item>> = VecDeque::from([items]);

        while let Some(mut batch) = queue.pop_front() {
            let body = match self.builder.body(&batch) {
                Ok(body) => body,
                Err(err) => {
                    // Only gzip into memory can fail here, and it does not
                    // fail on a Vec; waiting keeps the loop from spinning.
                    let wait = backoff.next_wait();
                    tracing::error!(sink = %self.context.name, cause = %err, wait_ms = wait.as_millis() as u64, "failed to compress the request body, retrying");
                    tokio::time::sleep(wait).await;
                    queue.push_front(batch);
                    continue;
                }
            };
            let metrics = &self.context.metrics;
            SinkMetrics::add(&metrics.sent, batch.len() as u64);
            SinkMetrics::add(&metrics.bytes, body.bytes.len() as u64);

            // Readiness reports the sink down while the collector gives no
            // response at all; any response means it is reachable.
            let outcome = match self.service.send(body).await {
                Ok(response) => {
                    metrics
                        .disconnected
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    self.logic.classify(&response, batch.len())
                }
                Err(err) => {
                    metrics
                        .disconnected
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                    self.logic.transport_error(&err)
                }
            };
            match outcome {
                Outcome::Delivered => {
                    backoff.reset();
                    for item in batch {
                        self.acknowledge(item);
                    }
                }
                Outcome::PerItem(outcomes) => {
                    let mut again = Vec::new();
                    let mut failed = 0;
                    for (item, outcome) in batch.into_iter().zip(outcomes) {
                        match outcome {
                            ItemOutcome::Delivered => self.acknowledge(item),
                            ItemOutcome::Rejected(reason) => {
                                dead_letter(&self.context, &item.delivery, &reason);
                            }
                            ItemOutcome::Retry(reason) => {
                                failed += 1;
                                tracing::debug!(sink = %self.context.name, event_id = item.delivery.record.id(), reason, "record failed, will retry");
                                again.push(item);
                            }
                            ItemOutcome::NotProcessed => again.push(item),
                        }
                    }
                    if again.is_empty() {
                        backoff.reset();
                        continue;
                    }
                    SinkMetrics::add(&self.context.metrics.retried, again.len() as u64);
                    if failed > 0 {
                        let wait = backoff.next_wait();
                        tracing::warn!(
                            sink = %self.context.name,
                            failed,
                            resent = again.len(),
                            attempt = backoff.failures(),
                            wait_ms = wait.as_millis() as u64,
                            "receiver failed some records, retrying them"
                        );
                        tokio::time::sleep(wait).await;
                    }
                    queue.push_front(again);
                }
                Outcome::Split { reason } | Outcome::Isolate { reason } => {
                    if batch.len() == 1 {
                        for item in batch {
                            dead_letter(&self.context, &item.delivery, &reason);
                        }
                        continue;
                    }
                    let second = batch.split_off(batch.len() / 2);
                    tracing::info!(
                        sink = %self.context.name,
                        records = batch.len() + second.len(),
                        reason,
                        "receiver rejected the batch, sending each half on its own"
                    );
                    queue.push_front(second);
                    queue.push_front(batch);
                }
                Outcome::Retry {
                    reason,
                    retry_after,
                    misconfigured,
                } => {
                    let backoff_wait = backoff.next_wait();
                    let wait = retry_after.map_or(backoff_wait, |after| {
                        after.min(self.config.retry.max_retry_after)
                    });
                    SinkMetrics::add(&self.context.metrics.retried, batch.len() as u64);
                    let wait_ms = wait.as_millis() as u64;
                    let attempt = backoff.failures();
                    let url = self.service.url();
                    if misconfigured {
                        tracing::error!(sink = %self.context.name, %url, reason, attempt, wait_ms, "receiver rejected the request settings; fix the sink configuration, retrying");
                    } else {
                        tracing::warn!(sink = %self.context.name, %url, reason, attempt, wait_ms, "request failed, retrying");
                    }
                    tokio::time::sleep(wait).await;
                    queue.push_front(batch);
                }
            }
        }
    }

    fn acknowledge(&self, item: Item) {
        let metrics = &self.context.metrics;
        item.delivery.ack.ack();
        SinkMetrics::add(&metrics.acknowledged, 1);
        SinkMetrics::sub(&metrics.in_flight, 1);
    }
}

impl Sink for HttpSink {
    fn run(
        self: Box<Self>,
        input: mpsc::Receiver<Delivery>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(self.run_loop(input))
    }
}
