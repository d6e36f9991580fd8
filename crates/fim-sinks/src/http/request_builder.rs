//! Encoding records into request bodies: one [`Item`] per record holding
//! its part of the body, so a batch can be split, or partly resent, without
//! encoding anything again.

use std::io::Write;

use fim_model::Record;
use fim_transform::Encoding;
use fim_transform::text::write_json_str;

use super::config::{Compression, GenericBody, HttpConfig, HttpMode};
use crate::{Delivery, SinkContext};

/// One record and its encoded part of a request body.
#[derive(Debug)]
pub struct Item {
    pub delivery: Delivery,
    /// The record's bytes in the body: an HEC envelope, a `_bulk` action
    /// line and document line, a JSON array element or an NDJSON line,
    /// each without separator.
    pub chunk: Vec<u8>,
}

/// A request body ready to send.
#[derive(Debug)]
pub struct Body {
    pub bytes: Vec<u8>,
    pub content_type: &'static str,
    pub gzip: bool,
}

/// Encodes records for one mode.
#[derive(Debug)]
pub struct RequestBuilder {
    mode: HttpMode,
    generic_body: GenericBody,
    compression: Compression,
    /// Whether the encoder writes a JSON object, which HEC and the JSON array
    /// embed as is; any other output is embedded as a JSON string.
    json_output: bool,
    hec_host: Option<String>,
    hec_source: String,
    hec_sourcetype: Option<String>,
    hec_index: Option<String>,
    es_index: Option<String>,
    /// Buffer the encoder writes into, reused between records.
    scratch: Vec<u8>,
}

impl RequestBuilder {
    pub fn new(config: &HttpConfig, encoding: Encoding) -> Self {
        Self {
            mode: config.mode,
            generic_body: config.body,
            compression: config.compression,
            json_output: writes_json(encoding),
            hec_host: config.splunk_hec.host.clone(),
            hec_source: config.splunk_hec.source.clone(),
            hec_sourcetype: config.splunk_hec.sourcetype.clone(),
            hec_index: config.splunk_hec.index.clone(),
            es_index: config.elasticsearch.index.clone(),
            scratch: Vec::new(),
        }
    }

    /// Encodes `delivery` into an item. On an encoder error the delivery is
    /// returned with the reason, for the dead-letter file.
    pub fn item(
        &mut self,
        context: &SinkContext,
        delivery: Delivery,
    ) -> Result<Item, (Delivery, String)> {
        self.scratch.clear();
        if let Err(err) = context.encoder.encode(&delivery.record, &mut self.scratch) {
            return Err((delivery, err.to_string()));
        }

        let mut chunk = Vec::with_capacity(self.scratch.len() + 256);
        match self.mode {
            HttpMode::Generic => match self.generic_body {
                GenericBody::Ndjson => chunk.extend_from_slice(&self.scratch),
                GenericBody::JsonArray => self.push_payload(&mut chunk),
            },
            HttpMode::SplunkHec => self.write_hec(&delivery.record, &mut chunk),
            HttpMode::Elasticsearch => self.write_bulk(&delivery.record, &mut chunk),
        }
        Ok(Item { delivery, chunk })
    }

    /// Joins the chunks of `items` into a body, compressed when configured.
    pub fn body(&self, items: &[Item]) -> std::io::Result<Body> {
        let content_type = match (self.mode, self.generic_body) {
            (HttpMode::Generic, GenericBody::JsonArray) => "application/json",
            (HttpMode::SplunkHec, _) => "application/json",
            _ => "application/x-ndjson",
        };
        let mut bytes = Vec::with_capacity(items.iter().map(|item| item.chunk.len() + 1).sum());
        let array = self.mode == HttpMode::Generic && self.generic_body == GenericBody::JsonArray;
        if array {
            bytes.push(b'[');
        }
        for (index, item) in items.iter().enumerate() {
            if array && index > 0 {
                bytes.push(b',');
            }
            bytes.extend_from_slice(&item.chunk);
            if !array {
                // `_bulk` requires a final newline; HEC and NDJSON take it too.
                bytes.push(b'\n');
            }
        }
        if array {
            bytes.push(b']');
        }

        if self.compression == Compression::None {
            return Ok(Body {
                bytes,
                content_type,
                gzip: false,
            });
        }
        let mut encoder = flate2::write::GzEncoder::new(
            Vec::with_capacity(bytes.len() / 4),
            flate2::Compression::fast(),
        );
        encoder.write_all(&bytes)?;
        Ok(Body {
            bytes: encoder.finish()?,
            content_type,
            gzip: true,
        })
    }

    /// Appends the encoded record as a JSON value: the object itself for JSON
    /// encodings, a JSON string otherwise.
    fn push_payload(&self, out: &mut Vec<u8>) {
        if self.json_output {
            out.extend_from_slice(&self.scratch);
            return;
        }
        // Encoders write UTF-8; a lossy view only guards the invariant.
        write_json_str(out, &String::from_utf8_lossy(&self.scratch));
    }

    /// Writes one HEC envelope: `time` in epoch seconds with milliseconds,
    /// `fields` holding the dedup key so searches can find duplicates.
    fn write_hec(&self, record: &Record, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{");
        if let Some(time) = record.event_time() {
            let unix_ms = time.unix_ms();
            let seconds = unix_ms.div_euclid(1000);
            let millis = unix_ms.rem_euclid(1000);
            out.extend_from_slice(format!("\"time\":{seconds}.{millis:03},").as_bytes());
        }
        let host = self
            .hec_host
            .clone()
            .or_else(|| asset_hostname(record).map(str::to_owned));
        if let Some(host) = host {
            out.extend_from_slice(b"\"host\":");
            write_json_str(out, &host);
            out.push(b',');
        }
        out.extend_from_slice(b"\"source\":");
        write_json_str(out, &self.hec_source);
        out.extend_from_slice(b",\"sourcetype\":");
        let sourcetype = self
            .hec_sourcetype
            .as_deref()
            .unwrap_or_else(|| default_sourcetype(record));
        write_json_str(out, sourcetype);
        if let Some(index) = &self.hec_index {
            out.extend_from_slice(b",\"index\":");
            write_json_str(out, index);
        }
        out.extend_from_slice(b",\"fields\":{\"event_id\":");
        write_json_str(out, &record.dedup_key());
        out.extend_from_slice(b",\"stream\":");
        write_json_str(out, record.kind().stream_name());
        out.extend_from_slice(b"},\"event\":");
        self.push_payload(out);
        out.push(b'}');
    }

    /// Writes a `create` action and the document. `create` makes a resent
    /// record a 409 instead of a second copy, and is the only action data
    /// streams accept.
    fn write_bulk(&self, record: &Record, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"create\":{\"_index\":");
        match &self.es_index {
            Some(index) => write_json_str(out, index),
            None => {
                let dataset = fim_transform::ecs::dataset(record.kind());
                write_json_str(out, &format!("logs-{dataset}-default"));
            }
        }
        out.extend_from_slice(b",\"_id\":");
        write_json_str(out, &record.dedup_key());
        out.extend_from_slice(b"}}\n");
        out.extend_from_slice(&self.scratch);
    }
}

/// Returns whether `encoding` writes one JSON object per record.
pub fn writes_json(encoding: Encoding) -> bool {
    matches!(
        encoding,
        Encoding::Ecs | Encoding::Json | Encoding::FlatJson
    )
}

fn default_sourcetype(record: &Record) -> &'static str {
    match record.kind() {
        fim_model::RecordKind::Event | fim_model::RecordKind::IncidentEvent => "qualys:fim:event",
        fim_model::RecordKind::IgnoredEvent => "qualys:fim:ignored_event",
        fim_model::RecordKind::Incident => "qualys:fim:incident",
    }
}

fn asset_hostname(record: &Record) -> Option<&str> {
    record
        .get("asset")?
        .as_object()?
        .get("hostname")?
        .as_str()
        .filter(|name| !name.is_empty())
}
