//! Readers of each sink's output, counting deliveries per record id: the
//! lines of the file sink and of syslog-ng's output file, and the messages
//! of the NATS JetStream stream.

use std::collections::HashMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use futures::StreamExt;

/// How many times each record id arrived.
pub type IdCounts = HashMap<String, u32>;

/// Returns the `id` of the JSON object that starts at the first `{` of
/// `text`, which skips a syslog header before the message.
pub fn record_id(text: &[u8]) -> Option<String> {
    let start = text.iter().position(|&byte| byte == b'{')?;
    let value: serde_json::Value = serde_json::from_slice(&text[start..]).ok()?;
    value.get("id")?.as_str().map(str::to_owned)
}

/// Reads the lines appended to a file since the last call.
#[derive(Debug)]
pub struct LineTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    pub counts: IdCounts,
    /// Complete lines without a JSON object with an `id`.
    pub unreadable: Vec<String>,
}

impl LineTail {
    pub fn new(path: &Path) -> Self {
        Self {
            path: path.to_owned(),
            offset: 0,
            partial: Vec::new(),
            counts: IdCounts::new(),
            unreadable: Vec::new(),
        }
    }

    /// Counts the ids of the lines completed since the last call; a file
    /// that does not exist yet has none.
    pub fn read_new(&mut self) -> anyhow::Result<()> {
        let mut file = match std::fs::File::open(&self.path) {
            Ok(file) => file,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(err) => {
                return Err(err).with_context(|| format!("failed to open {}", self.path.display()));
            }
        };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut chunk = Vec::new();
        let read = file
            .read_to_end(&mut chunk)
            .with_context(|| format!("failed to read {}", self.path.display()))?;
        self.offset += read as u64;
        self.partial.extend_from_slice(&chunk);

        let Some(last_newline) = self.partial.iter().rposition(|&byte| byte == b'\n') else {
            return Ok(());
        };
        let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
        for line in complete.split(|&byte| byte == b'\n') {
            if line.is_empty() {
                continue;
            }
            match record_id(line) {
                Some(id) => *self.counts.entry(id).or_insert(0) += 1,
                None => self
                    .unreadable
                    .push(String::from_utf8_lossy(&line[..line.len().min(200)]).into_owned()),
            }
        }
        Ok(())
    }
}

/// Reads every message of the JetStream `stream` on the server at `url`.
pub async fn read_jetstream(url: &str, stream: &str) -> anyhow::Result<IdCounts> {
    let client = async_nats::connect(url)
        .await
        .with_context(|| format!("failed to connect to nats-server at {url}"))?;
    let jetstream = async_nats::jetstream::new(client);
    let mut handle = jetstream
        .get_stream(stream)
        .await
        .with_context(|| format!("JetStream stream {stream} not found"))?;
    let total = handle.info().await?.state.messages;
    let consumer = handle
        .create_consumer(async_nats::jetstream::consumer::pull::Config {
            ack_policy: async_nats::jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .context("failed to create a JetStream consumer")?;

    let mut counts = IdCounts::new();
    let mut read = 0u64;
    let mut empty_batches = 0;
    while read < total && empty_batches < 5 {
        let mut batch = consumer
            .fetch()
            .max_messages(1000)
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .context("failed to fetch from JetStream")?;
        let mut in_batch = 0;
        while let Some(message) = batch.next().await {
            let message =
                message.map_err(|err| anyhow::anyhow!("JetStream fetch failed: {err}"))?;
            in_batch += 1;
            if let Some(id) = record_id(&message.payload) {
                *counts.entry(id).or_insert(0) += 1;
            }
        }
        read += in_batch;
        empty_batches = if in_batch == 0 { empty_batches + 1 } else { 0 };
    }
    anyhow::ensure!(
        read >= total,
        "read {read} of the {total} messages of JetStream stream {stream}"
    );
    Ok(counts)
}

/// Returns the number of messages the JetStream `stream` stores now.
pub async fn jetstream_messages(url: &str, stream: &str) -> anyhow::Result<u64> {
    let client = async_nats::connect(url).await?;
    let jetstream = async_nats::jetstream::new(client);
    let mut handle = jetstream.get_stream(stream).await?;
    Ok(handle.info().await?.state.messages)
}
