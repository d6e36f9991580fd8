//! Entry points for the cargo-fuzz targets in `crates/fim-source/fuzz`: the
//! client's private readers of API response bodies and tokens. Built only
//! with the `fuzzing` feature.

use std::time::Duration;

use fim_model::{ApiVersion, RecordKind};
use serde_json::Value;

use crate::client::{self, Page, auth};

/// Reads a search response body as the client does.
pub fn parse_page(kind: RecordKind, version: ApiVersion, body: &str) -> Result<Page, String> {
    client::parse_page(kind, version, body)
}

/// Returns the `sortValues` of a v2/v3 page's last item.
pub fn last_sort_values(body: &str) -> Option<Value> {
    client::last_sort_values(body)
}

/// Reads a count response body as the client does.
pub fn parse_count(body: &str) -> Result<Value, String> {
    client::parse_count(body)
}

/// Returns the reason shown for an error response body.
pub fn server_reason(body: &str) -> String {
    client::server_reason(body)
}

/// Returns the `exp` claim of a JWT in epoch ms.
pub fn token_expiry_ms(token: &str) -> Option<i64> {
    auth::expiry_ms(token)
}

/// Returns when a token received at `now_ms` is renewed, in epoch ms.
pub fn token_renew_at_ms(token: &str, now_ms: i64, margin: Duration) -> i64 {
    auth::Token::new(token.to_owned(), now_ms, margin).renew_at_ms
}

/// Returns the request URL of `segments` below `gateway`, as the client builds it.
pub fn join_url(gateway: &reqwest::Url, segments: &[String]) -> reqwest::Url {
    client::join_url(gateway, segments)
}
