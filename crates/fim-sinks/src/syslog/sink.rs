//! The syslog sink's loop. It encodes what the channel has ready, writes it
//! as one buffer, flushes, acknowledges, and keeps the frames in the resend
//! window. After a failed connect or write it reconnects with backoff and
//! sends the window and the unacknowledged batch again.

use std::collections::VecDeque;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use fim_transform::EncoderConfig;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::config::{Framing, SyslogConfig, SyslogConfigError, Transport};
use super::connection::{Connection, Connector};
use super::framing::Framer;
use crate::lines::dead_letter;
use crate::retry::Backoff;
use crate::{Acknowledge, Delivery, Sink, SinkContext, SinkMetrics};

/// Records taken from the channel in one go, at most.
const MAX_BATCH: usize = 512;

/// Sends records to a syslog receiver over TCP, TLS or UDP.
#[derive(Debug)]
pub struct SyslogSink {
    config: SyslogConfig,
    /// The sink's context, its encoder replaced by the one that writes whole
    /// syslog messages.
    context: SinkContext,
    framer: Framer,
    connector: Connector,
}

/// Frames of one batch, written together.
#[derive(Debug, Default)]
struct Batch {
    bytes: Vec<u8>,
    /// Each record's frame within `bytes`.
    frames: Vec<Range<usize>>,
    acks: Vec<Arc<dyn Acknowledge>>,
}

/// Batches written in the last `resend_window`, oldest first. Only stream
/// transports keep one, so a batch is kept as its bytes and frame count.
/// The bytes are kept LZ4-compressed: syslog lines repeat their field names,
/// so a full window takes a fraction of `max_bytes`, which counts the bytes
/// as written.
#[derive(Debug)]
struct ResendWindow {
    span: Duration,
    /// Bytes kept at most, whatever the span; the oldest batches go first,
    /// but the newest batch is kept even when it alone is larger.
    max_bytes: usize,
    batches: VecDeque<KeptBatch>,
    /// Bytes of the kept batches as written, before compression.
    bytes: usize,
    /// When the connection dropped, while no new one is up. The window is
    /// measured back from this moment, not from the reconnect, because a
    /// receiver may stay down for longer than the window.
    dropped_at: Option<Instant>,
    /// Output buffer of the compressor, reused for every batch.
    scratch: Vec<u8>,
}

/// One batch of the resend window.
#[derive(Debug)]
struct KeptBatch {
    written: Instant,
    /// The batch's bytes in the LZ4 block format, at the exact size.
    compressed: Box<[u8]>,
    /// Size of the batch as written.
    len: usize,
    frames: usize,
}

impl ResendWindow {
    fn new(span: Duration, max_bytes: usize) -> Self {
        Self {
            span,
            max_bytes,
            batches: VecDeque::new(),
            bytes: 0,
            dropped_at: None,
            scratch: Vec::new(),
        }
    }

    /// Keeps what was written in the window before now until the next
    /// connection has resent it.
    fn connection_dropped(&mut self) {
        if self.dropped_at.is_none() {
            self.prune();
            self.dropped_at = Some(Instant::now());
        }
    }

    /// Marks every kept batch as written now: the new connection carried
    /// them again, so a drop within the span sends them once more.
    fn resent(&mut self) {
        self.dropped_at = None;
        let now = Instant::now();
        for batch in &mut self.batches {
            batch.written = now;
        }
    }

    fn push(&mut self, bytes: &[u8], frames: usize) {
        if self.span.is_zero() {
            return;
        }
        self.scratch
            .resize(lz4_flex::block::get_maximum_output_size(bytes.len()), 0);
        let compressed = match lz4_flex::block::compress_into(bytes, &mut self.scratch) {
            Ok(size) => Box::from(&self.scratch[..size]),
            // Not reached: the scratch buffer has the maximum output size.
            Err(_) => lz4_flex::block::compress(bytes).into_boxed_slice(),
        };
        self.bytes += bytes.len();
        self.batches.push_back(KeptBatch {
            written: Instant::now(),
            compressed,
            len: bytes.len(),
            frames,
        });
        self.prune();
    }

    fn prune(&mut self) {
        let reference = self.dropped_at.unwrap_or_else(Instant::now);
        while let Some(oldest) = self.batches.front() {
            let expired = reference.saturating_duration_since(oldest.written) > self.span;
            // The newest batch stays, even alone over the cap: it is the
            // one a dropped connection most likely lost.
            let over_cap = self.bytes > self.max_bytes && self.batches.len() > 1;
            if !expired && !over_cap {
                break;
            }
            self.bytes -= oldest.len;
            self.batches.pop_front();
        }
    }

    /// Returns the batches still in the window, oldest first, each as its
    /// bytes as written and its frame count.
    fn contents(
        &mut self,
    ) -> impl Iterator<Item = (Result<Vec<u8>, lz4_flex::block::DecompressError>, usize)> {
        self.prune();
        self.batches.iter().map(|kept| {
            let bytes = lz4_flex::block::decompress(&kept.compressed, kept.len);
            (bytes, kept.frames)
        })
    }
}

impl SyslogSink {
    /// Builds the sink. `encoder` is the sink's encoder table: its `cef` or
    /// `json` encoding becomes the MSG of the configured syslog format.
    pub fn new(
        config: SyslogConfig,
        encoder: &EncoderConfig,
        mut context: SinkContext,
    ) -> Result<Self, SyslogConfigError> {
        let message_encoder = config.validate(encoder)?;
        context.encoder = Arc::from(fim_transform::build(&message_encoder)?);

        let tls = match config.transport {
            Transport::Tls => Some(super::tls::client_config(&config)?),
            Transport::Tcp | Transport::Udp => None,
        };
        if config.tls.danger_accept_invalid_certs {
            tracing::warn!(
                sink = %context.name,
                address = %config.address,
                "tls.danger_accept_invalid_certs is on: the server certificate is not checked"
            );
        }
        if config.transport == Transport::Tls && config.framing == Framing::Newline {
            tracing::warn!(
                sink = %context.name,
                "framing = \"newline\" over TLS: RFC 5425 requires octet counting, so only receivers configured for newline framing will read these messages"
            );
        }
        Ok(Self {
            framer: Framer::new(config.transport, config.framing, config.max_message_bytes.0),
            connector: Connector {
                address: config.address.clone(),
                transport: config.transport,
                timeout: config.connect_timeout,
                tls,
            },
            config,
            context,
        })
    }

    async fn run_loop(self, mut input: mpsc::Receiver<Delivery>) {
        let window_span = match self.config.transport {
            // A UDP sender never learns that datagrams were lost.
            Transport::Udp => Duration::ZERO,
            Transport::Tcp | Transport::Tls => self.config.resend_window,
        };
        let mut window = ResendWindow::new(window_span, self.config.resend_window_max_bytes.0);
        let mut connection: Option<Connection> = None;
        let mut deliveries = Vec::with_capacity(MAX_BATCH);
        let mut scratch = Vec::new();

        loop {
            deliveries.clear();
            let taken = match connection.as_mut() {
                Some(open) => {
                    tokio::select! {
                        taken = input.recv_many(&mut deliveries, MAX_BATCH) => taken,
                        cause = open.closed() => {
                            tracing::info!(sink = %self.context.name, address = %self.config.address, cause = %cause, "syslog connection closed, reconnecting");
                            connection = None;
                            window.connection_dropped();
                            continue;
                        }
                    }
                }
                None => input.recv_many(&mut deliveries, MAX_BATCH).await,
            };
            if taken == 0 {
                break;
            }

            let mut batch = self.encode(&mut deliveries, &mut scratch);
            if batch.acks.is_empty() {
                continue;
            }
            self.write(&mut connection, &mut window, &batch).await;

            let metrics = &self.context.metrics;
            let count = batch.acks.len() as u64;
            SinkMetrics::add(&metrics.sent, count);
            SinkMetrics::add(&metrics.bytes, batch.bytes.len() as u64);
            for ack in batch.acks.drain(..) {
                ack.ack();
            }
            SinkMetrics::add(&metrics.acknowledged, count);
            SinkMetrics::sub(&metrics.in_flight, count);
            window.push(&batch.bytes, batch.frames.len());
        }

        if let Some(mut open) = connection {
            open.shutdown().await;
        }
    }

    /// Encodes and frames `deliveries`; a record the encoder rejects is
    /// dead-lettered.
    fn encode(&self, deliveries: &mut Vec<Delivery>, scratch: &mut Vec<u8>) -> Batch {
        let mut batch = Batch::default();
        SinkMetrics::add(&self.context.metrics.in_flight, deliveries.len() as u64);
        for delivery in deliveries.drain(..) {
            scratch.clear();
            if let Err(err) = self.context.encoder.encode(&delivery.record, scratch) {
                dead_letter(&self.context, &delivery, &err.to_string());
                continue;
            }
            let start = batch.bytes.len();
            if self.framer.frame(scratch, &mut batch.bytes) {
                tracing::debug!(
                    sink = %self.context.name,
                    event_id = delivery.record.id(),
                    bytes = scratch.len(),
                    max_message_bytes = self.config.max_message_bytes.0,
                    "message cut to max_message_bytes"
                );
            }
            batch.frames.push(start..batch.bytes.len());
            batch.acks.push(delivery.ack);
        }
        batch
    }

    /// Writes `batch`, reconnecting with backoff until it is written and
    /// flushed. A new connection first carries the resend window.
    async fn write(
        &self,
        connection: &mut Option<Connection>,
        window: &mut ResendWindow,
        batch: &Batch,
    ) {
        let retry = &self.config.retry;
        let mut backoff = Backoff::new(retry.initial_backoff, retry.max_backoff);
        loop {
            if connection.is_none() {
                match self.reconnect(window).await {
                    Ok(open) => *connection = Some(open),
                    Err(err) => {
                        window.connection_dropped();
                        self.wait_after_failure(&mut backoff, &err, batch).await;
                        continue;
                    }
                }
            }
            let Some(open) = connection.as_mut() else {
                continue;
            };
            match open.write(&batch.bytes, &batch.frames).await {
                Ok(()) => {
                    self.context
                        .metrics
                        .disconnected
                        .store(false, std::sync::atomic::Ordering::Relaxed);
                    return;
                }
                Err(err) => {
                    *connection = None;
                    window.connection_dropped();
                    self.wait_after_failure(&mut backoff, &err, batch).await;
                }
            }
        }
    }

    async fn wait_after_failure(&self, backoff: &mut Backoff, err: &std::io::Error, batch: &Batch) {
        // Readiness reports the sink down until a batch goes through again.
        self.context
            .metrics
            .disconnected
            .store(true, std::sync::atomic::Ordering::Relaxed);
        SinkMetrics::add(&self.context.metrics.retried, batch.acks.len() as u64);
        let wait = backoff.next_wait();
        tracing::warn!(
            sink = %self.context.name,
            address = %self.config.address,
            cause = %err,
            attempt = backoff.failures(),
            wait_ms = wait.as_millis() as u64,
            "failed to send to the syslog receiver, retrying"
        );
        tokio::time::sleep(wait).await;
    }

    /// Connects and sends the resend window.
    async fn reconnect(&self, window: &mut ResendWindow) -> std::io::Result<Connection> {
        let mut open = self.connector.connect().await?;
        let (mut records, mut bytes) = (0, 0);
        for (batch, frames) in window.contents() {
            let batch = match batch {
                Ok(batch) => batch,
                // Not expected: the window decompresses only what it
                // compressed itself.
                Err(err) => {
                    tracing::error!(sink = %self.context.name, records = frames, cause = %err, "failed to decompress a batch of the resend window, so its records are not resent");
                    continue;
                }
            };
            // Stream connections take the bytes as they are. Frame ranges
            // matter only for datagrams, which keep no window.
            open.write(&batch, &[]).await?;
            records += frames;
            bytes += batch.len();
        }
        window.resent();
        if records > 0 {
            SinkMetrics::add(&self.context.metrics.sent, records as u64);
            SinkMetrics::add(&self.context.metrics.bytes, bytes as u64);
            tracing::info!(
                sink = %self.context.name,
                address = %self.config.address,
                records,
                window_ms = self.config.resend_window.as_millis() as u64,
                "reconnected; resent the records of the resend window"
            );
        } else {
            tracing::info!(sink = %self.context.name, address = %self.config.address, "connected to the syslog receiver");
        }
        Ok(open)
    }
}

/// Connects to the receiver, TLS handshake included, and closes the
/// connection without sending anything, for a deployment check. A UDP
/// receiver cannot be checked this way, so UDP only resolves the address.
pub async fn probe(config: &SyslogConfig) -> Result<(), SyslogConfigError> {
    let tls = match config.transport {
        Transport::Tls => Some(super::tls::client_config(config)?),
        Transport::Tcp | Transport::Udp => None,
    };
    let connector = Connector {
        address: config.address.clone(),
        transport: config.transport,
        timeout: config.connect_timeout,
        tls,
    };
    let mut connection =
        connector
            .connect()
            .await
            .map_err(|source| SyslogConfigError::Unreachable {
                address: config.address.clone(),
                source,
            })?;
    connection.shutdown().await;
    Ok(())
}

impl Sink for SyslogSink {
    fn run(
        self: Box<Self>,
        input: mpsc::Receiver<Delivery>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin((*self).run_loop(input))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(window: &mut ResendWindow) -> (Vec<u8>, usize) {
        window
            .contents()
            .fold((Vec::new(), 0), |(mut bytes, count), (batch, frames)| {
                bytes.extend_from_slice(&batch.unwrap());
                (bytes, count + frames)
            })
    }

    #[tokio::test(start_paused = true)]
    async fn window_drops_oldest_batches_over_max_bytes() {
        let mut window = ResendWindow::new(Duration::from_secs(5), 10);
        window.push(b"first", 1);
        window.push(b"second", 2);
        window.push(b"third", 3);
        assert_eq!(joined(&mut window), (b"third".to_vec(), 3));
        window.push(b"larger than the cap", 1);
        assert_eq!(joined(&mut window), (b"larger than the cap".to_vec(), 1));
    }

    #[tokio::test(start_paused = true)]
    async fn window_outlives_long_outage() {
        let mut window = ResendWindow::new(Duration::from_secs(5), 1024);
        window.push(b"old", 1);
        tokio::time::advance(Duration::from_secs(10)).await;
        window.push(b"recent", 1);
        window.connection_dropped();
        tokio::time::advance(Duration::from_secs(60)).await;

        assert_eq!(joined(&mut window), (b"recent".to_vec(), 1));
    }

    #[tokio::test(start_paused = true)]
    async fn window_keeps_resent_batches_for_next_drop() {
        let mut window = ResendWindow::new(Duration::from_secs(5), 1024);
        window.push(b"first", 1);
        tokio::time::advance(Duration::from_secs(4)).await;
        window.connection_dropped();
        assert_eq!(joined(&mut window), (b"first".to_vec(), 1));
        window.resent();

        // The next connection drops 4 s after the resend, 8 s after the
        // first write.
        tokio::time::advance(Duration::from_secs(4)).await;
        window.connection_dropped();
        assert_eq!(joined(&mut window), (b"first".to_vec(), 1));
    }

    #[tokio::test(start_paused = true)]
    async fn window_expires_while_connected() {
        let mut window = ResendWindow::new(Duration::from_secs(5), 1024);
        window.push(b"old", 1);
        tokio::time::advance(Duration::from_secs(6)).await;

        assert_eq!(joined(&mut window), (Vec::new(), 0));
    }

    #[tokio::test(start_paused = true)]
    async fn window_keeps_lines_compressed() {
        let line = b"<134>1 2024-05-01T10:00:00.000Z host fim-forwarder - event - CEF:0|Qualys|FIM|1.0|File Modified|File Modified|5|act=Content fname=/etc/passwd\n";
        let batch = line.repeat(512);
        let mut window = ResendWindow::new(Duration::from_secs(5), 16 * 1024 * 1024);
        window.push(&batch, 512);
        window.push(line, 1);

        let compressed_size: usize = window
            .batches
            .iter()
            .map(|kept| kept.compressed.len())
            .sum();
        assert!(
            compressed_size < batch.len() / 10,
            "{compressed_size} bytes"
        );
        assert_eq!(window.bytes, batch.len() + line.len());
        assert_eq!(joined(&mut window), ([batch, line.to_vec()].concat(), 513));
    }

    #[tokio::test(start_paused = true)]
    async fn window_is_off_when_zero() {
        let mut window = ResendWindow::new(Duration::ZERO, 1024);
        window.push(b"frame", 1);
        assert_eq!(joined(&mut window), (Vec::new(), 0));
    }
}
