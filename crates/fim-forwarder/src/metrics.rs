//! Prometheus metrics and the `/metrics` and `/health` endpoint.
//!
//! API metrics are counted as responses arrive (through [`ApiObserver`]);
//! stream, sink and channel figures are read from the running pipeline at
//! each scrape.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use fim_sinks::SinkMetrics;
use fim_source::{ApiObserver, SourceMonitor, StreamStatus};
use prometheus::{
    CounterVec, Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::sync::mpsc;

/// Every metric the forwarder exports.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    api_requests: IntCounterVec,
    api_latency: HistogramVec,
    api_retries: IntCounterVec,
    rate_limit_waits: IntCounterVec,
    rate_limit_wait_seconds: CounterVec,
    logins: IntCounter,
    records_polled: IntCounterVec,
    records_duplicate: IntCounterVec,
    records_rejected: IntCounterVec,
    channel_fill: IntGaugeVec,
    channel_capacity: IntGaugeVec,
    sink_records: IntCounterVec,
    sink_bytes: IntCounterVec,
    sink_in_flight: IntGaugeVec,
    sink_up: IntGaugeVec,
    checkpoint_age: GaugeVec,
    stream_up: IntGaugeVec,
    /// Set once a login succeeded: half of readiness.
    authenticated: AtomicBool,
    /// What a scrape reads; filled in as the pipeline starts.
    parts: Mutex<Parts>,
}

/// The running pipeline, as the metrics read it.
#[derive(Debug, Default)]
pub struct Parts {
    pub source: Option<SourceMonitor>,
    pub sinks: Vec<(
        String,
        Arc<SinkMetrics>,
        mpsc::WeakSender<fim_sinks::Delivery>,
    )>,
    pub poll_channel: Option<mpsc::WeakSender<fim_source::Polled>>,
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let metric = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|err| unreachable_metric(name, &err));
    let _ = registry.register(Box::new(metric.clone()));
    metric
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    let metric = IntGaugeVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|err| unreachable_metric(name, &err));
    let _ = registry.register(Box::new(metric.clone()));
    metric
}

/// Metric definitions are constants; a bad one is a programming error found
/// by the first test run.
fn unreachable_metric(name: &str, err: &prometheus::Error) -> ! {
    panic!("invalid metric definition {name}: {err}")
}

impl Metrics {
    #[allow(clippy::too_many_lines)]
    pub fn new() -> Arc<Self> {
        let registry = Registry::new();
        let api_latency = HistogramVec::new(
            HistogramOpts::new(
                "fim_api_request_duration_seconds",
                "Time from sending a Qualys FIM API request to reading its whole response.",
            )
            .buckets(vec![
                0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ]),
            &["endpoint"],
        )
        .unwrap_or_else(|err| unreachable_metric("fim_api_request_duration_seconds", &err));
        let _ = registry.register(Box::new(api_latency.clone()));
        let rate_limit_wait_seconds = CounterVec::new(
            Opts::new(
                "fim_rate_limit_wait_seconds_total",
                "Seconds spent waiting for the API budget, by cause (limiter, 409, 429).",
            ),
            &["cause"],
        )
        .unwrap_or_else(|err| unreachable_metric("fim_rate_limit_wait_seconds_total", &err));
        let _ = registry.register(Box::new(rate_limit_wait_seconds.clone()));
        let checkpoint_age = GaugeVec::new(
            Opts::new(
                "fim_checkpoint_age_seconds",
                "How far behind now the committed position of each stream is.",
            ),
            &["stream"],
        )
        .unwrap_or_else(|err| unreachable_metric("fim_checkpoint_age_seconds", &err));
        let _ = registry.register(Box::new(checkpoint_age.clone()));
        let logins = IntCounter::new("fim_api_logins_total", "Tokens fetched from POST /auth.")
            .unwrap_or_else(|err| unreachable_metric("fim_api_logins_total", &err));
        let _ = registry.register(Box::new(logins.clone()));

        Arc::new(Self {
            api_requests: counter_vec(
                &registry,
                "fim_api_requests_total",
                "Qualys FIM API responses by endpoint and HTTP status (0: no response).",
                &["endpoint", "status"],
            ),
            api_retries: counter_vec(
                &registry,
                "fim_api_retries_total",
                "Qualys FIM API requests sent again, by endpoint and reason.",
                &["endpoint", "reason"],
            ),
            rate_limit_waits: counter_vec(
                &registry,
                "fim_rate_limit_waits_total",
                "Waits for the API budget, by cause (limiter, 409, 429).",
                &["cause"],
            ),
            records_rejected: counter_vec(
                &registry,
                "fim_source_records_rejected_total",
                "Records the API sent that could not be read (no id, not an object, invalid JSON), skipped and written to the source dead-letter file, by stream.",
                &["stream"],
            ),
            records_polled: counter_vec(
                &registry,
                "fim_records_polled_total",
                "Records the pollers emitted, by stream.",
                &["stream"],
            ),
            records_duplicate: counter_vec(
                &registry,
                "fim_records_duplicate_total",
                "Records dropped because they were delivered before, by stream.",
                &["stream"],
            ),
            channel_fill: gauge_vec(
                &registry,
                "fim_channel_fill",
                "Records waiting in a pipeline channel (stage poll, or sink with its name).",
                &["stage", "sink"],
            ),
            channel_capacity: gauge_vec(
                &registry,
                "fim_channel_capacity",
                "Size of each pipeline channel, in records.",
                &["stage", "sink"],
            ),
            sink_records: counter_vec(
                &registry,
                "fim_sink_records_total",
                "Records by sink and outcome (sent, acknowledged, retried, dead_lettered).",
                &["sink", "outcome"],
            ),
            sink_bytes: counter_vec(
                &registry,
                "fim_sink_bytes_total",
                "Encoded bytes each sink sent.",
                &["sink"],
            ),
            sink_in_flight: gauge_vec(
                &registry,
                "fim_sink_in_flight",
                "Records a sink took and has not acknowledged yet.",
                &["sink"],
            ),
            sink_up: gauge_vec(
                &registry,
                "fim_sink_up",
                "1 while a sink reaches its destination, else 0.",
                &["sink"],
            ),
            stream_up: gauge_vec(
                &registry,
                "fim_stream_up",
                "1 while a stream is polling, else 0 (stopped, failed or finished).",
                &["stream"],
            ),
            api_latency,
            rate_limit_wait_seconds,
            checkpoint_age,
            logins,
            registry,
            authenticated: AtomicBool::new(false),
            parts: Mutex::new(Parts::default()),
        })
    }

    /// Gives the scrape access to the running pipeline.
    pub fn attach(&self, parts: Parts) {
        *self.parts.lock().unwrap_or_else(PoisonError::into_inner) = parts;
    }

    /// Returns the records the pollers emitted so far, over every stream.
    pub fn polled_total(&self) -> u64 {
        let parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        parts.source.as_ref().map_or(0, |source| {
            source
                .streams()
                .iter()
                .map(|(_, _, tracker)| tracker.counts().0)
                .sum()
        })
    }

    /// Renders every metric in the Prometheus text format.
    pub fn render(&self) -> String {
        self.refresh();
        let mut out = Vec::new();
        if TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .is_err()
        {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }

    /// Returns readiness (logged in, every stream polling or finished, every
    /// sink connected) and a JSON report.
    pub fn health(&self) -> (bool, serde_json::Value) {
        let parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        let authenticated = self.authenticated.load(Ordering::Relaxed);
        let mut streams = serde_json::Map::new();
        let mut streams_ok = true;
        if let Some(source) = &parts.source {
            for (kind, status, _) in source.streams() {
                let text = match &status {
                    StreamStatus::Running => "running".to_owned(),
                    StreamStatus::Finished => "finished".to_owned(),
                    StreamStatus::Stopped => "stopped".to_owned(),
                    StreamStatus::Failed(reason) => format!("failed: {reason}"),
                };
                streams_ok &= matches!(status, StreamStatus::Running | StreamStatus::Finished);
                streams.insert(kind.stream_name().to_owned(), serde_json::Value::from(text));
            }
        }
        let mut sinks = serde_json::Map::new();
        let mut sinks_ok = true;
        for (name, metrics, _) in &parts.sinks {
            let connected = !metrics.disconnected.load(Ordering::Relaxed);
            sinks_ok &= connected;
            sinks.insert(
                name.clone(),
                serde_json::Value::from(if connected {
                    "connected"
                } else {
                    "disconnected"
                }),
            );
        }
        let ready = authenticated && streams_ok && sinks_ok;
        let report = serde_json::json!({
            "status": if ready { "ready" } else { "not ready" },
            "authenticated": authenticated,
            "streams": streams,
            "sinks": sinks,
        });
        (ready, report)
    }

    fn refresh(&self) {
        let parts = self.parts.lock().unwrap_or_else(PoisonError::into_inner);
        let now_ms = now_ms();
        if let Some(source) = &parts.source {
            for (kind, status, tracker) in source.streams() {
                let stream = kind.stream_name();
                let (emitted, duplicates) = tracker.counts();
                catch_up(&self.records_polled.with_label_values(&[stream]), emitted);
                catch_up(
                    &self.records_duplicate.with_label_values(&[stream]),
                    duplicates,
                );
                let oldest = tracker
                    .committed()
                    .iter()
                    .map(|cursor| cursor.time_ms)
                    .min();
                if let Some(oldest) = oldest {
                    self.checkpoint_age
                        .with_label_values(&[stream])
                        .set(((now_ms - oldest).max(0) as f64) / 1000.0);
                }
                self.stream_up
                    .with_label_values(&[stream])
                    .set(i64::from(matches!(status, StreamStatus::Running)));
            }
        }
        if let Some(channel) = parts
            .poll_channel
            .as_ref()
            .and_then(mpsc::WeakSender::upgrade)
        {
            let capacity = channel.max_capacity();
            self.channel_capacity
                .with_label_values(&["poll", ""])
                .set(capacity as i64);
            self.channel_fill
                .with_label_values(&["poll", ""])
                .set((capacity - channel.capacity()) as i64);
        }
        for (name, metrics, channel) in &parts.sinks {
            let snapshot = metrics.snapshot();
            for (outcome, value) in [
                ("sent", snapshot.sent),
                ("acknowledged", snapshot.acknowledged),
                ("retried", snapshot.retried),
                ("dead_lettered", snapshot.dead_lettered),
            ] {
                catch_up(
                    &self
                        .sink_records
                        .with_label_values(&[name.as_str(), outcome]),
                    value,
                );
            }
            catch_up(
                &self.sink_bytes.with_label_values(&[name.as_str()]),
                snapshot.bytes,
            );
            self.sink_in_flight
                .with_label_values(&[name.as_str()])
                .set(snapshot.in_flight as i64);
            self.sink_up
                .with_label_values(&[name.as_str()])
                .set(i64::from(!metrics.disconnected.load(Ordering::Relaxed)));
            if let Some(channel) = channel.upgrade() {
                let capacity = channel.max_capacity();
                self.channel_capacity
                    .with_label_values(&["sink", name.as_str()])
                    .set(capacity as i64);
                self.channel_fill
                    .with_label_values(&["sink", name.as_str()])
                    .set((capacity - channel.capacity()) as i64);
            }
        }
    }
}

/// Moves a counter up to `total`, a running count kept elsewhere.
fn catch_up(counter: &prometheus::IntCounter, total: u64) {
    let current = counter.get();
    if total > current {
        counter.inc_by(total - current);
    }
}

impl ApiObserver for Metrics {
    fn response(&self, endpoint: &str, status: u16, latency: Duration) {
        self.api_requests
            .with_label_values(&[endpoint, &status.to_string()])
            .inc();
        self.api_latency
            .with_label_values(&[endpoint])
            .observe(latency.as_secs_f64());
    }

    fn limiter_wait(&self, wait: Duration) {
        self.rate_limit_waits.with_label_values(&["limiter"]).inc();
        self.rate_limit_wait_seconds
            .with_label_values(&["limiter"])
            .inc_by(wait.as_secs_f64());
    }

    fn blocked(&self, status: u16, wait: Duration) {
        let cause = status.to_string();
        self.rate_limit_waits.with_label_values(&[&cause]).inc();
        self.rate_limit_wait_seconds
            .with_label_values(&[&cause])
            .inc_by(wait.as_secs_f64());
    }

    fn retry(&self, endpoint: &str, reason: &str) {
        self.api_retries
            .with_label_values(&[endpoint, reason])
            .inc();
    }

    fn rejected(&self, stream: &str) {
        self.records_rejected.with_label_values(&[stream]).inc();
    }

    fn login(&self) {
        self.logins.inc();
        self.authenticated.store(true, Ordering::Relaxed);
    }
}

/// Serves `/metrics` and `/health` on `listen` until the process ends.
pub async fn serve(listen: SocketAddr, metrics: Arc<Metrics>) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/metrics", get(render))
        .route("/health", get(health))
        .with_state(metrics);
    tokio::spawn(async move {
        if let Err(err) = axum::serve(listener, app).await {
            tracing::error!(cause = %err, "metrics endpoint stopped");
        }
    });
    Ok(bound)
}

async fn render(State(metrics): State<Arc<Metrics>>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
        .into_response()
}

async fn health(State(metrics): State<Arc<Metrics>>) -> Response {
    let (ready, report) = metrics.health();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report)).into_response()
}

fn now_ms() -> i64 {
    fim_model::Timestamp::now().unix_ms()
}
