use async_nats::HeaderMap;
use bytes::Bytes;

use crate::Delivery;
use crate::template::Template;

/// Header naming the record's stream (`events`, `incidents`, …), so a
/// consumer can route without decoding the payload.
pub const STREAM_HEADER: &str = "Fim-Stream";

/// One record ready to publish, kept until the server confirmed it so a
/// retry sends the same bytes with the same message id.
#[derive(Debug)]
pub struct NatsRequest {
    pub delivery: Delivery,
    pub subject: String,
    pub payload: Bytes,
    /// `Nats-Msg-Id`: the record's dedup key, so the stream's duplicate
    /// window absorbs a record sent twice, and a changed incident (same id,
    /// new update time) is stored as a new message.
    pub message_id: String,
    pub headers: HeaderMap,
}

impl NatsRequest {
    /// Returns the bytes the server counts against its `max_payload`.
    pub fn size(&self) -> usize {
        self.payload.len() + self.subject.len()
    }
}

/// Encodes records into [`NatsRequest`]s.
#[derive(Debug)]
pub struct NatsRequestBuilder {
    subject: Template,
    encoder: std::sync::Arc<dyn fim_transform::Encoder>,
    buffer: Vec<u8>,
    name: String,
}

impl NatsRequestBuilder {
    pub fn new(subject: Template, encoder: std::sync::Arc<dyn fim_transform::Encoder>) -> Self {
        Self {
            subject,
            encoder,
            buffer: Vec::new(),
            name: String::new(),
        }
    }

    /// Encodes `delivery`; an error is the reason to dead-letter it.
    pub fn build(&mut self, delivery: Delivery) -> Result<NatsRequest, (Delivery, String)> {
        self.buffer.clear();
        if let Err(err) = self.encoder.encode(&delivery.record, &mut self.buffer) {
            return Err((delivery, err.to_string()));
        }
        if let Err(err) = self
            .subject
            .render(&delivery.record, subject_char, &mut self.name)
        {
            return Err((delivery, err.to_string()));
        }

        let mut headers = HeaderMap::new();
        headers.insert(STREAM_HEADER, delivery.record.kind().stream_name());
        Ok(NatsRequest {
            subject: self.name.clone(),
            payload: Bytes::copy_from_slice(&self.buffer),
            message_id: delivery.record.dedup_key(),
            headers,
            delivery,
        })
    }
}

/// Keeps a field value inside one subject token: separators, wildcards and
/// whitespace become `_`.
fn subject_char(c: char) -> char {
    if c == '.' || c == '*' || c == '>' || c.is_whitespace() || c.is_control() {
        '_'
    } else {
        c
    }
}
