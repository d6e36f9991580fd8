//! Reads the Kafka topic continuously while the run goes on.
//!
//! The tansu build this project installs keeps topics in memory only, so a
//! broker restart loses every message. The run therefore consumes as the
//! forwarder produces, and a broker restart goes like this: the forwarder
//! is paused with SIGSTOP, this reader catches up with the partition's high
//! watermark, the broker is stopped, and the forwarder continues with
//! SIGCONT. Every message the broker acknowledged is then read before the
//! restart discards it, so a record missing at the end was never
//! acknowledged by the broker, or was acknowledged and lost by the
//! forwarder. The forwarder is paused again while the broker starts, the
//! topic is created and a new reader starts at offset 0. What the pauses
//! hide: a durable broker keeps its log, and a restart of it would also
//! test the consumer's resume from its committed offset, which this run
//! does not. After the restart the topic is created again (a durable
//! broker would still have it) and read from offset 0. A restarted tansu
//! also loses producer ids, so the forwarder's Kafka sink runs without the
//! idempotent producer here and resends after a restart count as
//! duplicates.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use crate::received::{IdCounts, record_id};

/// Topic the forwarder's Kafka sink writes to. It has one partition, so
/// one high watermark is the broker's whole progress.
pub const TOPIC: &str = "chaos.fim";

/// State shared between the reading thread and the run.
#[derive(Debug, Default)]
struct Shared {
    /// Offset of the next message to read in the current broker life.
    next_offset: AtomicI64,
    stop: AtomicBool,
}

/// A consumer thread that counts the ids of every message of [`TOPIC`].
///
/// Each broker life gets a new consumer: with librdkafka 2.12.1
/// (rdkafka-sys 4.10), one consumer that lived through a tansu restart
/// and the topic's re-creation crashed with SIGSEGV in
/// `rd_kafka_metadata_cache_find`.
#[derive(Debug)]
pub struct KafkaReader {
    brokers: String,
    counts: Arc<Mutex<IdCounts>>,
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl KafkaReader {
    pub fn start(brokers: &str) -> anyhow::Result<Self> {
        let mut reader = Self {
            brokers: brokers.to_owned(),
            counts: Arc::default(),
            shared: Arc::default(),
            thread: None,
        };
        reader.start_consumer()?;
        Ok(reader)
    }

    /// Starts a consumer reading from offset 0.
    fn start_consumer(&mut self) -> anyhow::Result<()> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", "fim-chaos-reader")
            .set("enable.auto.commit", "false")
            // A position the broker reports out of range is read again from
            // the start (offsets already read are skipped) instead of
            // jumping to the end, which would hide the messages between.
            .set("auto.offset.reset", "earliest")
            .set("log_level", "3")
            .create()
            .context("failed to create the Kafka consumer")?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(TOPIC, 0, Offset::Beginning)?;
        consumer
            .assign(&assignment)
            .context("failed to assign the Kafka partition")?;
        let shared = Arc::new(Shared::default());
        let thread_shared = shared.clone();
        let counts = self.counts.clone();
        self.thread = Some(std::thread::spawn(move || {
            read_loop(&consumer, &thread_shared, &counts);
        }));
        self.shared = shared;
        Ok(())
    }

    /// Ends the consumer of this broker life.
    pub fn stop_consumer(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Reads the topic from offset 0 with a new consumer, after a broker
    /// restart.
    pub fn restart_from_zero(&mut self) -> anyhow::Result<()> {
        self.stop_consumer();
        self.start_consumer()
    }

    /// Waits until every message the broker stores has been read: the read
    /// position reaches the high watermark, and the watermark has not moved
    /// for 300 ms. Fails after `limit`.
    pub fn catch_up(&self, limit: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        let client: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("log_level", "3")
            .create()?;
        let mut last_high = -1;
        loop {
            let (_, high) = client
                .fetch_watermarks(TOPIC, 0, Duration::from_secs(5))
                .context("failed to read the Kafka high watermark")?;
            let read_to = self.shared.next_offset.load(Ordering::SeqCst);
            if read_to >= high && high == last_high {
                return Ok(());
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "the Kafka reader is at offset {read_to} of {high} after {limit:?}"
            );
            last_high = high;
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    pub fn counts(&self) -> IdCounts {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn distinct(&self) -> usize {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

impl Drop for KafkaReader {
    fn drop(&mut self) {
        self.stop_consumer();
    }
}

fn read_loop(consumer: &BaseConsumer, shared: &Shared, counts: &Mutex<IdCounts>) {
    let mut errors_seen = HashSet::new();
    while !shared.stop.load(Ordering::SeqCst) {
        let message = match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Ok(message)) => message,
            // Errors while the broker is down are expected, and the
            // consumer reconnects by itself. Each distinct error is printed
            // once, so a reset position shows in the run's output.
            Some(Err(err)) => {
                let text = err.to_string();
                if errors_seen.insert(text.clone()) {
                    eprintln!("fim-chaos: kafka reader: {text}");
                }
                continue;
            }
        };
        if message.offset() < shared.next_offset.load(Ordering::SeqCst) {
            continue;
        }
        if let Some(id) = message.payload().and_then(record_id) {
            *counts
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(id)
                .or_insert(0) += 1;
        }
        shared
            .next_offset
            .store(message.offset() + 1, Ordering::SeqCst);
    }
}

/// Creates [`TOPIC`] with one partition; an existing topic is fine.
pub async fn create_topic(brokers: &str) -> anyhow::Result<()> {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("log_level", "3")
        .create()?;
    let topic = NewTopic::new(TOPIC, 1, TopicReplication::Fixed(1));
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .context("failed to create the Kafka topic")?;
    for result in results {
        match result {
            Ok(_) | Err((_, rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => anyhow::bail!("failed to create Kafka topic {topic}: {code}"),
        }
    }
    Ok(())
}
