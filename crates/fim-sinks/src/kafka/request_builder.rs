use std::collections::BTreeMap;
use std::sync::Arc;

use crate::Delivery;
use crate::template::Template;

/// One record ready to produce, kept until its delivery report confirmed
/// it, so a retry or a new producer sends the same bytes.
#[derive(Debug)]
pub struct KafkaRequest {
    pub delivery: Delivery,
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// Encodes records into [`KafkaRequest`]s.
#[derive(Debug)]
pub struct KafkaRequestBuilder {
    topic: Template,
    key: Option<String>,
    headers: BTreeMap<String, Template>,
    encoder: Arc<dyn fim_transform::Encoder>,
    /// Reused for every encoding, so each payload is copied out at its exact
    /// size and a request in flight has no spare capacity.
    buffer: Vec<u8>,
}

impl KafkaRequestBuilder {
    pub fn new(
        topic: Template,
        key: Option<String>,
        headers: BTreeMap<String, Template>,
        encoder: Arc<dyn fim_transform::Encoder>,
    ) -> Self {
        Self {
            topic,
            key,
            headers,
            encoder,
            buffer: Vec::new(),
        }
    }

    /// Encodes `delivery`; an error is the reason to dead-letter it.
    pub fn build(&mut self, delivery: Delivery) -> Result<KafkaRequest, (Delivery, String)> {
        let record = &delivery.record;
        self.buffer.clear();
        if let Err(err) = self.encoder.encode(record, &mut self.buffer) {
            return Err((delivery, err.to_string()));
        }
        let payload = self.buffer.clone();
        let mut topic = String::new();
        if let Err(err) = self.topic.render(record, topic_char, &mut topic) {
            return Err((delivery, err.to_string()));
        }

        let key = self
            .key
            .as_deref()
            .and_then(|field| record.text(field))
            .map(|value| value.into_owned())
            .unwrap_or_else(|| record.dedup_key());
        let mut headers = vec![
            ("stream".to_owned(), record.kind().stream_name().to_owned()),
            (
                "record_type".to_owned(),
                record_type(record.kind()).to_owned(),
            ),
        ];
        for (name, template) in &self.headers {
            let mut value = String::new();
            if let Err(err) = template.render(record, |c| c, &mut value) {
                return Err((delivery, err.to_string()));
            }
            headers.push((name.clone(), value));
        }

        Ok(KafkaRequest {
            topic,
            key,
            payload,
            headers,
            delivery,
        })
    }
}

/// Returns the singular name of a record's kind, for the `record_type`
/// header.
fn record_type(kind: fim_model::RecordKind) -> &'static str {
    match kind {
        fim_model::RecordKind::Event => "event",
        fim_model::RecordKind::IgnoredEvent => "ignored_event",
        fim_model::RecordKind::Incident => "incident",
        fim_model::RecordKind::IncidentEvent => "incident_event",
    }
}

/// Keeps a field value within Kafka's topic alphabet (`[a-zA-Z0-9._-]`).
fn topic_char(c: char) -> char {
    if c.is_ascii_alphanumeric() || c == '.' || c == '_' || c == '-' {
        c
    } else {
        '_'
    }
}
