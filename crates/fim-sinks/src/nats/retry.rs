use async_nats::jetstream;
use async_nats::jetstream::context::PublishErrorKind;

/// What to do with a record the server did not confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Send it again, with the same message id, after a backoff.
    Retry,
    /// The server will never take it: dead-letter it.
    Reject,
}

/// Sorts publish failures into retryable and permanent ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct NatsRetryLogic;

impl NatsRetryLogic {
    /// Classifies a JetStream publish or PubAck error. Too large (for the
    /// server's `max_payload` or the stream's `max_msg_size`) is permanent.
    /// Everything else, including a missing stream, a PubAck timeout and a
    /// lost connection, is retried, because it clears once the server or
    /// its configuration is back.
    pub fn classify_jetstream(&self, error: &jetstream::context::PublishError) -> Outcome {
        if error.kind() == PublishErrorKind::MaxPayloadExceeded {
            return Outcome::Reject;
        }
        let code = std::error::Error::source(error)
            .and_then(|source| source.downcast_ref::<jetstream::Error>())
            .map(jetstream::Error::error_code);
        match code {
            Some(jetstream::ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM) => Outcome::Reject,
            _ => Outcome::Retry,
        }
    }

    /// Classifies a core NATS publish error.
    pub fn classify_core(&self, error: &async_nats::PublishError) -> Outcome {
        match error.kind() {
            async_nats::client::PublishErrorKind::MaxPayloadExceeded
            | async_nats::client::PublishErrorKind::InvalidSubject => Outcome::Reject,
            async_nats::client::PublishErrorKind::Send => Outcome::Retry,
        }
    }
}
