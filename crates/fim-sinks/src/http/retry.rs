//! How a response decides the fate of each record in the request: the
//! retry policy of the HTTP sink, kept apart from the loop that carries it
//! out so each mode's rules read in one place.
//!
//! | response | outcome |
//! |---|---|
//! | 2xx (generic, HEC) | every record delivered |
//! | 2xx with `errors: true` (`_bulk`) | per item: 2xx and 409 (already stored by an earlier `create`) delivered, 429 and 5xx retried, other 4xx dead-lettered |
//! | HEC 400 code 6 with `invalid-event-number` = n | records before n delivered, record n dead-lettered, the rest sent again at once |
//! | 413 | batch split in two; a single record is dead-lettered |
//! | 400, 422 and other payload 4xx | batch split until the record at fault is alone, then dead-lettered |
//! | 401, 403, 404, 407, HEC codes 1-4, 7, 10, 11, 14 | retried: the configuration is wrong, not the record |
//! | 408, 429, 5xx, connection errors | retried, waiting `Retry-After` when given |

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;

use super::config::HttpMode;
use super::service::Response;

/// What happens to the records of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The receiver has every record.
    Delivered,
    /// The receiver reported on each record, in request order.
    PerItem(Vec<ItemOutcome>),
    /// The body is too large for the receiver: send each half on its own.
    Split { reason: String },
    /// The receiver rejected the payload without saying which record is at
    /// fault: split the batch until the record at fault is alone, then
    /// dead-letter it.
    Isolate { reason: String },
    /// Send the same batch again after `retry_after`, or after the backoff
    /// when the receiver gave no time.
    Retry {
        reason: String,
        retry_after: Option<Duration>,
        /// The receiver says its configuration (token, index, URL) is
        /// wrong; logged as an error rather than a warning.
        misconfigured: bool,
    },
}

/// What happens to one record of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemOutcome {
    Delivered,
    /// The receiver failed on it for now: resend after the backoff.
    Retry(String),
    /// The receiver never read it (HEC stops at the first invalid event):
    /// resend without waiting.
    NotProcessed,
    /// The receiver will never take it: dead-letter it.
    Rejected(String),
}

/// Reads responses of one receiver mode.
#[derive(Debug, Clone, Copy)]
pub struct ResponseLogic {
    mode: HttpMode,
}

impl ResponseLogic {
    pub fn new(mode: HttpMode) -> Self {
        Self { mode }
    }

    /// Classifies the response to a request of `count` records.
    pub fn classify(&self, response: &Response, count: usize) -> Outcome {
        let status = response.status;
        match self.mode {
            HttpMode::Elasticsearch if status.is_success() => bulk_items(&response.body, count),
            HttpMode::SplunkHec if !status.is_success() => hec_error(response, count),
            _ => by_status(response),
        }
    }

    /// Classifies a request that got no response (connection refused or
    /// reset, timeout, TLS failure).
    pub fn transport_error(&self, error: &reqwest::Error) -> Outcome {
        Outcome::Retry {
            reason: error_chain(error),
            retry_after: None,
            misconfigured: false,
        }
    }
}

/// Rules shared by every mode, by HTTP status alone.
fn by_status(response: &Response) -> Outcome {
    let status = response.status;
    let reason = describe(response);
    if status.is_success() {
        return Outcome::Delivered;
    }
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => Outcome::Split { reason },
        StatusCode::REQUEST_TIMEOUT | StatusCode::TOO_MANY_REQUESTS => Outcome::Retry {
            reason,
            retry_after: response.retry_after,
            misconfigured: false,
        },
        StatusCode::UNAUTHORIZED
        | StatusCode::FORBIDDEN
        | StatusCode::NOT_FOUND
        | StatusCode::METHOD_NOT_ALLOWED
        | StatusCode::PROXY_AUTHENTICATION_REQUIRED => Outcome::Retry {
            reason,
            retry_after: response.retry_after,
            misconfigured: true,
        },
        _ if status.is_client_error() => Outcome::Isolate { reason },
        // 5xx, and 1xx or 3xx that reqwest did not resolve.
        _ => Outcome::Retry {
            reason,
            retry_after: response.retry_after,
            misconfigured: false,
        },
    }
}

/// The error reply of Splunk HEC: `{"text":"…","code":6,"invalid-event-number":2}`.
#[derive(Debug, Deserialize)]
struct HecReply {
    #[serde(default)]
    text: String,
    code: Option<u32>,
    #[serde(rename = "invalid-event-number")]
    invalid_event_number: Option<usize>,
}

/// HEC error codes, from Splunk's "Troubleshoot HTTP Event Collector" table.
fn hec_error(response: &Response, count: usize) -> Outcome {
    let Ok(reply) = serde_json::from_slice::<HecReply>(&response.body) else {
        return by_status(response);
    };
    let reason = format!(
        "HTTP {} code {}: {}",
        response.status.as_u16(),
        reply
            .code
            .map_or_else(|| "none".to_owned(), |code| code.to_string()),
        reply.text
    );
    match reply.code {
        // Invalid data format: events before the invalid one are indexed,
        // those after it were not read.
        Some(6) => match reply.invalid_event_number {
            Some(invalid) if invalid < count => {
                let items = (0..count)
                    .map(|index| match index.cmp(&invalid) {
                        std::cmp::Ordering::Less => ItemOutcome::Delivered,
                        std::cmp::Ordering::Equal => ItemOutcome::Rejected(reason.clone()),
                        std::cmp::Ordering::Greater => ItemOutcome::NotProcessed,
                    })
                    .collect();
                Outcome::PerItem(items)
            }
            _ => Outcome::Isolate { reason },
        },
        // Token missing, disabled or invalid; index not allowed; channel
        // missing or invalid; acknowledgement disabled.
        Some(1..=4 | 7 | 10 | 11 | 14) => Outcome::Retry {
            reason,
            retry_after: response.retry_after,
            misconfigured: true,
        },
        // No data: the body was empty, which only a broken proxy causes.
        Some(5) => Outcome::Retry {
            reason,
            retry_after: response.retry_after,
            misconfigured: false,
        },
        _ => by_status(response),
    }
}

/// The reply of `_bulk`: `{"errors":true,"items":[{"create":{"status":201}}, …]}`.
#[derive(Debug, Deserialize)]
struct BulkReply {
    errors: bool,
    #[serde(default)]
    items: Vec<serde_json::Map<String, serde_json::Value>>,
}

fn bulk_items(body: &[u8], count: usize) -> Outcome {
    let reply = match serde_json::from_slice::<BulkReply>(body) {
        Ok(reply) => reply,
        // `create` with our `_id` makes resending the batch safe.
        Err(err) => {
            return Outcome::Retry {
                reason: format!("unreadable _bulk response: {err}"),
                retry_after: None,
                misconfigured: false,
            };
        }
    };
    if !reply.errors {
        return Outcome::Delivered;
    }
    if reply.items.len() != count {
        return Outcome::Retry {
            reason: format!(
                "_bulk response lists {} items for {count} actions",
                reply.items.len()
            ),
            retry_after: None,
            misconfigured: false,
        };
    }
    Outcome::PerItem(reply.items.iter().map(bulk_item).collect())
}

fn bulk_item(item: &serde_json::Map<String, serde_json::Value>) -> ItemOutcome {
    let Some(result) = item.values().next() else {
        return ItemOutcome::Retry("empty _bulk item".to_owned());
    };
    let status = result
        .get("status")
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0);
    let error = result.get("error");
    let error_type = error
        .and_then(|error| error.get("type"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("unknown");
    let error_reason = error
        .and_then(|error| error.get("reason"))
        .and_then(serde_json::Value::as_str)
        .unwrap_or("");
    let reason = format!("status {status} {error_type}: {error_reason}");
    match status {
        200..=299 | 409 => ItemOutcome::Delivered,
        429 | 500..=599 => ItemOutcome::Retry(reason),
        400..=499 => ItemOutcome::Rejected(reason),
        _ => ItemOutcome::Retry(reason),
    }
}

/// Status line and the start of the body, for logs and dead-letter reasons.
fn describe(response: &Response) -> String {
    const MAX_BODY: usize = 512;
    let body = String::from_utf8_lossy(&response.body);
    let body = fim_transform::text::truncate_utf8(body.trim(), MAX_BODY);
    if body.is_empty() {
        format!("HTTP {}", response.status)
    } else {
        format!("HTTP {}: {body}", response.status)
    }
}

/// Joins an error with its sources: reqwest's own message rarely names the
/// cause (refused, certificate, timeout).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
