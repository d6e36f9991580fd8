use rdkafka::error::{KafkaError, RDKafkaErrorCode};

/// Decision for a record the producer did not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Produce it again after a backoff.
    Retry,
    /// librdkafka's queue is full: produce it again once a delivery report
    /// has made room.
    QueueFull,
    /// The brokers will never take it: dead-letter it.
    Reject,
}

/// Sorts produce and delivery errors into retryable and permanent ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct KafkaRetryLogic;

impl KafkaRetryLogic {
    /// Classifies `error`. A message over `message.max.bytes` (local or on
    /// the broker), a record the broker calls invalid and an invalid topic
    /// name are permanent for that record. Everything else, including
    /// timeouts, unreachable brokers, missing topics and authorization
    /// errors, is retried: an operator can fix those without losing data.
    pub fn classify(&self, error: &KafkaError) -> Outcome {
        match error.rdkafka_error_code() {
            Some(RDKafkaErrorCode::QueueFull) => Outcome::QueueFull,
            Some(
                RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTopic,
            ) => Outcome::Reject,
            _ => Outcome::Retry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_large_is_rejected() {
        let error = KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge);
        assert_eq!(KafkaRetryLogic.classify(&error), Outcome::Reject);
    }

    #[test]
    fn queue_full_waits() {
        let error = KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull);
        assert_eq!(KafkaRetryLogic.classify(&error), Outcome::QueueFull);
    }

    #[test]
    fn timeouts_and_missing_topics_retry() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::TopicAuthorizationFailed,
        ] {
            let error = KafkaError::MessageProduction(code);
            assert_eq!(KafkaRetryLogic.classify(&error), Outcome::Retry, "{code:?}");
        }
    }
}
