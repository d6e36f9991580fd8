//! The Qualys FIM API client: one request at a time through auth, the
//! shared limiter and the retry rules.
//!
//! | response | what the client does |
//! |---|---|
//! | 2xx with a body that parses | returns it |
//! | 2xx with a cut-off or invalid body, 5xx, 408, timeout, reset | retries the same request after an exponential backoff with jitter |
//! | 401 | drops the token, logs in again and retries the same request |
//! | 409, 429 | waits `X-RateLimit-ToWait-Sec` or `Retry-After` (capped, plus jitter), then retries |
//! | other 4xx (400 invalid filter, 403, 404) | returns [`SourceError::Rejected`] naming the request and the server's reason |

pub(crate) mod auth;
pub mod limiter;

use std::sync::Arc;
use std::time::{Duration, Instant};

use fim_model::{ApiVersion, PageError, Record, RecordError, RecordKind, Timestamp};
use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use serde_json::{Value, json};

use crate::config::SourceConfig;
use crate::error::SourceError;
use crate::query::{Operation, endpoint};
use crate::secret::Secret;
use auth::Token;
use limiter::{ApiLimiter, LimitReport};

/// Receives the client's observations, for metrics. Every method has a
/// no-op default.
pub trait ApiObserver: Send + Sync + std::fmt::Debug {
    /// Records a response (`status` 0 for a transport failure).
    fn response(&self, _endpoint: &str, _status: u16, _latency: Duration) {}
    /// Records that a call waited `wait` for the limiter before it was sent.
    fn limiter_wait(&self, _wait: Duration) {}
    /// Records that a 409 or 429 closed the gate for `wait`.
    fn blocked(&self, _status: u16, _wait: Duration) {}
    /// Records a retry caused by `reason` (`5xx`, `timeout`, `body`...).
    fn retry(&self, _endpoint: &str, _reason: &str) {}
    /// Records that a new token was fetched.
    fn login(&self) {}
    /// Records that a record of `stream` could not be read and was skipped.
    fn rejected(&self, _stream: &str) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default)]
pub struct NoObserver;

impl ApiObserver for NoObserver {}

/// One search request.
#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub kind: RecordKind,
    /// Incident whose events are listed (incident events only).
    pub incident: Option<String>,
    pub filter: String,
    /// Sort as the API takes it: a string holding a JSON array.
    pub sort: String,
    pub page_size: usize,
    /// v1 paging.
    pub page_number: usize,
    /// v2 paging: the `sortValues` of the last record seen.
    pub search_after: Option<Value>,
}

impl SearchQuery {
    /// Describes the request for logs: stream, incident, filter and paging.
    pub fn describe(&self) -> String {
        let mut text = format!("{} search", self.kind);
        if let Some(incident) = &self.incident {
            text.push_str(&format!(" of incident {incident}"));
        }
        text.push_str(&format!(" with filter `{}`", self.filter));
        if self.page_number > 0 {
            text.push_str(&format!(", pageNumber {}", self.page_number));
        }
        if let Some(after) = &self.search_after {
            text.push_str(&format!(", searchAfter {after}"));
        }
        text
    }
}

/// One page of search results, each record parsed on its own so one bad
/// record does not hide the others.
#[derive(Debug)]
pub struct Page {
    pub items: Vec<Result<Record, RecordError>>,
    /// `sortValues` of the last item (v2), read from the raw item so a last
    /// record that failed to parse still lets paging continue.
    pub last_sort_values: Option<Value>,
}

/// The client; cheap to share between streams behind an `Arc`.
#[derive(Debug)]
pub struct FimClient {
    http: reqwest::Client,
    gateway: reqwest::Url,
    username: String,
    password: Secret,
    api_version: ApiVersion,
    renew_margin: Duration,
    max_backoff: Duration,
    /// Held while a token is fetched, so streams that find it missing at the
    /// same time make one login between them.
    token: tokio::sync::Mutex<Option<Token>>,
    limiter: ApiLimiter,
    observer: Arc<dyn ApiObserver>,
}

/// Plain parts of one HTTP exchange.
struct Exchange {
    status: u16,
    headers: HeaderMap,
    body: String,
}

impl FimClient {
    pub fn new(config: &SourceConfig, observer: Arc<dyn ApiObserver>) -> Result<Self, SourceError> {
        let gateway = config.gateway()?;
        let gateway = reqwest::Url::parse(&format!("{gateway}/")).map_err(|err| {
            crate::config::ConfigError::new(
                "source.base_url",
                &gateway,
                &format!("a valid URL ({err})"),
            )
        })?;
        let password = config.resolve_password()?;
        let mut builder = reqwest::Client::builder()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(30)))
            .user_agent(concat!("fim-forwarder/", env!("CARGO_PKG_VERSION")))
            .danger_accept_invalid_certs(config.danger_accept_invalid_certs);
        for certificate in config.root_certificates()? {
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder
            .build()
            .map_err(|err| SourceError::HttpClient(err.to_string()))?;
        Ok(Self {
            http,
            gateway,
            username: config.username.clone(),
            password,
            api_version: config.api_version,
            renew_margin: config.token_renew_margin,
            max_backoff: config.max_backoff,
            token: tokio::sync::Mutex::new(None),
            limiter: ApiLimiter::new(&config.rate_limit),
            observer,
        })
    }

    pub fn api_version(&self) -> ApiVersion {
        self.api_version
    }

    /// Fetches one page of `query`.
    pub async fn search(&self, query: &SearchQuery) -> Result<Page, SourceError> {
        if let Some(incident) = query
            .incident
            .as_deref()
            .filter(|incident| !crate::query::is_valid_path_segment(incident))
        {
            return Err(SourceError::InvalidIncidentId(incident.to_owned()));
        }
        let (method, segments) = endpoint(
            self.api_version,
            query.kind,
            Operation::Search,
            query.incident.as_deref(),
        );
        let mut params = vec![
            ("filter", Value::from(query.filter.clone())),
            ("sort", Value::from(query.sort.clone())),
            ("pageSize", Value::from(query.page_size)),
        ];
        if query.page_number > 0 {
            params.push(("pageNumber", Value::from(query.page_number)));
        }
        if let Some(after) = &query.search_after {
            params.push(("searchAfter", after.clone()));
        }
        params.retain(|(name, value)| !(*name == "filter" && value.as_str() == Some("")));

        let version = self.api_version;
        let kind = query.kind;
        self.execute(method, &segments, &params, |body| {
            parse_page(kind, version, body)
        })
        .await
    }

    /// Counts the records of `kind` matching `filter`; with `group_by`, the
    /// result is the API's map from group value to count.
    pub async fn count(
        &self,
        kind: RecordKind,
        incident: Option<&str>,
        filter: &str,
        group_by: Option<&str>,
        interval: Option<&str>,
    ) -> Result<Value, SourceError> {
        let (method, segments) = endpoint(self.api_version, kind, Operation::Count, incident);
        let mut params = Vec::new();
        if !filter.trim().is_empty() {
            params.push(("filter", Value::from(filter)));
        }
        if let Some(group_by) = group_by {
            params.push(("groupBy", Value::from(group_by)));
        }
        if let Some(interval) = interval {
            params.push(("interval", Value::from(interval)));
        }
        self.execute(method, &segments, &params, parse_count).await
    }

    /// Logs in once, to prove the credentials work.
    pub async fn login(&self) -> Result<(), SourceError> {
        self.token().await.map(|_| ())
    }

    /// Sends one request until it succeeds or fails for good.
    async fn execute<T>(
        &self,
        method: reqwest::Method,
        segments: &[String],
        params: &[(&str, Value)],
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, SourceError> {
        let url = self.url(segments);
        let label = endpoint_label(segments);
        let describe = describe(&method, &url, params);
        let mut failures: u32 = 0;
        let mut rejected_tokens: u32 = 0;

        loop {
            let token = self.token().await?;
            let (permit, waited) = self.limiter.acquire().await;
            if waited > Duration::from_millis(1) {
                self.observer.limiter_wait(waited);
            }
            let started = Instant::now();
            let result = self.send(&method, &url, params, &token).await;
            drop(permit);

            let exchange = match result {
                Ok(exchange) => exchange,
                Err(err) => {
                    self.observer.response(&label, 0, started.elapsed());
                    if let Some(reason) = certificate_error(&err) {
                        return Err(SourceError::Certificate {
                            url: self.gateway.to_string(),
                            reason,
                        });
                    }
                    let reason = if err.is_timeout() {
                        "timeout"
                    } else {
                        "transport"
                    };
                    self.observer.retry(&label, reason);
                    self.back_off(&describe, failures, reason, &err.to_string())
                        .await;
                    failures += 1;
                    continue;
                }
            };
            self.observer
                .response(&label, exchange.status, started.elapsed());
            let report = LimitReport::from_headers(&exchange.headers);
            self.limiter.observe(&report);

            match exchange.status {
                200..=299 => match parse(&exchange.body) {
                    Ok(value) => return Ok(value),
                    Err(reason) => {
                        self.observer.retry(&label, "body");
                        self.back_off(&describe, failures, "invalid body", &reason)
                            .await;
                        failures += 1;
                    }
                },
                401 => {
                    // One fresh token and the same request again; a second
                    // 401 in a row also backs off before the next login.
                    self.invalidate(&token).await;
                    self.observer.retry(&label, "401");
                    if rejected_tokens > 0 {
                        self.back_off(&describe, failures, "401 with a fresh token", "")
                            .await;
                        failures += 1;
                    }
                    rejected_tokens += 1;
                    tracing::info!(request = %describe, "token rejected, logging in again");
                    continue;
                }
                409 | 429 => {
                    let asked = blocked_wait(&exchange.headers, &report);
                    let applied = self.limiter.blocked(asked);
                    self.observer.blocked(exchange.status, applied);
                    tracing::info!(
                        request = %describe,
                        status = exchange.status,
                        wait_ms = applied.as_millis() as u64,
                        "rate limited, waiting"
                    );
                }
                408 | 500..=599 => {
                    self.observer.retry(&label, "5xx");
                    let reason = format!("HTTP {}", exchange.status);
                    self.back_off(&describe, failures, &reason, &server_reason(&exchange.body))
                        .await;
                    failures += 1;
                }
                status => {
                    return Err(SourceError::Rejected {
                        request: describe,
                        status,
                        reason: server_reason(&exchange.body),
                    });
                }
            }
            rejected_tokens = 0;
        }
    }

    async fn send(
        &self,
        method: &reqwest::Method,
        url: &reqwest::Url,
        params: &[(&str, Value)],
        token: &Token,
    ) -> Result<Exchange, reqwest::Error> {
        let mut request = self
            .http
            .request(method.clone(), url.clone())
            .bearer_auth(token.value.expose());
        if *method == reqwest::Method::GET {
            let query: Vec<(&str, String)> = params
                .iter()
                .map(|(name, value)| (*name, value_as_query(value)))
                .collect();
            request = request.query(&query);
        } else {
            let body: serde_json::Map<String, Value> = params
                .iter()
                .map(|(name, value)| ((*name).to_owned(), value.clone()))
                .collect();
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = body_text(response.bytes().await?);
        Ok(Exchange {
            status,
            headers,
            body,
        })
    }

    /// Returns a token that is not due for renewal, logging in if needed.
    async fn token(&self) -> Result<Token, SourceError> {
        let mut slot = self.token.lock().await;
        if let Some(token) = slot.as_ref().filter(|token| token.is_fresh(now_ms())) {
            return Ok(token.clone());
        }

        let url = self.url(&["auth".to_owned()]);
        let mut failures = 0;
        loop {
            let form = [
                ("username", self.username.as_str()),
                ("password", self.password.expose()),
                ("token", "true"),
            ];
            let started = Instant::now();
            let result = self.http.post(url.clone()).form(&form).send().await;
            let outcome = match result {
                Ok(response) => {
                    let status = response.status().as_u16();
                    self.observer.response("auth", status, started.elapsed());
                    match response.text().await {
                        Ok(body) => Ok((status, body)),
                        Err(err) => Err(err.to_string()),
                    }
                }
                Err(err) => {
                    self.observer.response("auth", 0, started.elapsed());
                    if let Some(reason) = certificate_error(&err) {
                        return Err(SourceError::Certificate {
                            url: self.gateway.to_string(),
                            reason,
                        });
                    }
                    Err(err.to_string())
                }
            };
            match outcome {
                Ok((200..=299, body)) if !body.trim().is_empty() => {
                    let token = Token::new(body.trim().to_owned(), now_ms(), self.renew_margin);
                    self.observer.login();
                    tracing::debug!(username = %self.username, "logged in");
                    *slot = Some(token.clone());
                    return Ok(token);
                }
                Ok((status @ (400 | 401 | 403), body)) => {
                    return Err(SourceError::Credentials {
                        username: self.username.clone(),
                        status,
                        reason: server_reason(&body),
                    });
                }
                Ok((status, body)) => {
                    let reason = format!("HTTP {status}");
                    self.back_off("POST /auth", failures, &reason, &server_reason(&body))
                        .await;
                }
                Err(cause) => {
                    self.back_off("POST /auth", failures, "transport", &cause)
                        .await
                }
            }
            failures += 1;
        }
    }

    /// Forgets `token` unless another request already replaced it.
    async fn invalidate(&self, token: &Token) {
        let mut slot = self.token.lock().await;
        if slot
            .as_ref()
            .is_some_and(|current| current.value == token.value)
        {
            *slot = None;
        }
    }

    /// Sleeps before retry number `failures + 1`: one second doubling up to
    /// `max_backoff`, drawn between half and all of that ("equal jitter").
    async fn back_off(&self, request: &str, failures: u32, reason: &str, detail: &str) {
        let ceiling = Duration::from_secs(1)
            .saturating_mul(1 << failures.min(16))
            .min(self.max_backoff);
        let wait = ceiling.mul_f64(rand::rng().random_range(0.5..=1.0));
        tracing::warn!(
            request = %request,
            attempt = failures + 1,
            wait_ms = wait.as_millis() as u64,
            reason,
            detail = %truncate(detail, 300),
            "request failed, retrying"
        );
        tokio::time::sleep(wait).await;
    }

    fn url(&self, segments: &[String]) -> reqwest::Url {
        join_url(&self.gateway, segments)
    }
}

/// Appends `segments` to the gateway's path. Each segment is escaped, so it
/// cannot add segments, a query or a fragment. The `url` crate still drops
/// `.` and `..` and strips tabs and line breaks, so callers check incident
/// ids with [`crate::query::is_valid_path_segment`] first.
pub(crate) fn join_url(gateway: &reqwest::Url, segments: &[String]) -> reqwest::Url {
    let mut url = gateway.clone();
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty();
        for segment in segments {
            path.push(segment);
        }
    }
    url
}

/// Returns the reason when `err` failed because the server's certificate
/// did not verify, which a retry cannot fix.
fn certificate_error(err: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = cause {
        if let Some(tls @ rustls::Error::InvalidCertificate(_)) =
            current.downcast_ref::<rustls::Error>()
        {
            return Some(tls.to_string());
        }
        // `io::Error::source` skips the error it wraps, so step into that one.
        let wrapped = current
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref);
        cause = match wrapped {
            Some(inner) => Some(inner),
            None => current.source(),
        };
    }
    None
}

/// Reads a search response: a JSON array of records (v1) or of
/// `{"sortValues", "data"}` wrappers (v2/v3).
pub(crate) fn parse_page(
    kind: RecordKind,
    version: ApiVersion,
    body: &str,
) -> Result<Page, String> {
    let fetched_at = Timestamp::from_unix_ms(now_ms());
    let items = Record::parse_page(kind, body, fetched_at, version)
        .map_err(|err: PageError| err.to_string())?;
    let last_sort_values = match items.last() {
        _ if !version.wraps_records() => None,
        // A parsed record kept its item's `sortValues`, so the body need not
        // be read again.
        Some(Ok(record)) => record
            .fetch()
            .and_then(|fetch| fetch.sort_values.as_ref())
            .filter(|values| values.as_array().is_some())
            .map(Value::from),
        Some(Err(_)) => last_sort_values(body),
        None => None,
    };
    Ok(Page {
        items,
        last_sort_values,
    })
}

/// Decodes a response body as UTF-8 without copying it, replacing invalid
/// sequences with U+FFFD as `reqwest::Response::text` does (without its
/// `charset` feature).
fn body_text(bytes: bytes::Bytes) -> String {
    match String::from_utf8(Vec::from(bytes)) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

pub(crate) fn last_sort_values(body: &str) -> Option<Value> {
    let items: Vec<&serde_json::value::RawValue> = serde_json::from_str(body).ok()?;
    let last = items.last()?;
    let wrapper: Value = serde_json::from_str(last.get()).ok()?;
    wrapper
        .get("sortValues")
        .filter(|values| values.is_array())
        .cloned()
}

/// Reads a count response, which must be a JSON object.
pub(crate) fn parse_count(body: &str) -> Result<Value, String> {
    let value = serde_json::from_str::<Value>(body)
        .map_err(|err| format!("count response is not JSON ({err})"))?;
    if value.is_object() {
        Ok(value)
    } else {
        Err("count response is not a JSON object".to_owned())
    }
}

/// Returns the wait a blocked response requests: `X-RateLimit-ToWait-Sec`, else
/// `Retry-After` (seconds or an HTTP date), else one second.
fn blocked_wait(headers: &HeaderMap, report: &LimitReport) -> Duration {
    if let Some(seconds) = report.to_wait_sec.filter(|seconds| *seconds > 0) {
        return Duration::from_secs(seconds);
    }
    let retry_after = headers
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .map(str::trim);
    if let Some(text) = retry_after {
        if let Ok(seconds) = text.parse::<u64>() {
            return Duration::from_secs(seconds);
        }
        if let Ok(when) = httpdate::parse_http_date(text) {
            return when
                .duration_since(std::time::SystemTime::now())
                .unwrap_or(Duration::ZERO)
                .max(Duration::from_secs(1));
        }
    }
    Duration::from_secs(1)
}

/// Returns the `message` of a Qualys error body, or the start of the body,
/// at most 300 characters either way because the text goes into logs and
/// errors.
pub(crate) fn server_reason(body: &str) -> String {
    let message = serde_json::from_str::<Value>(body).ok().and_then(|value| {
        value
            .get("message")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|message| !message.is_empty())
            .map(str::to_owned)
    });
    match message {
        Some(message) => truncate(&message, 300),
        None if body.trim().is_empty() => "empty body".to_owned(),
        None => truncate(body.trim(), 300),
    }
}

/// Describes a request on one line for logs and errors, without the
/// token: `POST http://host/fim/v2/events/search {"filter": ...}`.
fn describe(method: &reqwest::Method, url: &reqwest::Url, params: &[(&str, Value)]) -> String {
    let shown: serde_json::Map<String, Value> = params
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect();
    format!(
        "{method} {url} {}",
        truncate(&json!(shown).to_string(), 500)
    )
}

/// Metric label of an endpoint: the path without the incident id.
fn endpoint_label(segments: &[String]) -> String {
    match segments {
        [_, _, incidents, _, rest @ ..] if incidents == "incidents" && !rest.is_empty() => {
            format!("incidents/{{id}}/{}", rest.join("/"))
        }
        [_, _, rest @ ..] => rest.join("/"),
        other => other.join("/"),
    }
}

fn value_as_query(value: &Value) -> String {
    match value {
        Value::String(text) => text.clone(),
        other => other.to_string(),
    }
}

fn truncate(text: &str, max_chars: usize) -> String {
    match text.char_indices().nth(max_chars) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

pub(crate) fn now_ms() -> i64 {
    fim_model::Timestamp::now().unix_ms()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_hides_incident_id() {
        let segments: Vec<String> = ["fim", "v2", "incidents", "abc", "events", "search"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(endpoint_label(&segments), "incidents/{id}/events/search");
    }

    #[test]
    fn label_of_event_search() {
        let segments: Vec<String> = ["fim", "v2", "events", "search"]
            .iter()
            .map(|s| (*s).to_owned())
            .collect();
        assert_eq!(endpoint_label(&segments), "events/search");
    }

    #[test]
    fn server_reason_reads_message() {
        assert_eq!(
            server_reason(r#"{"errorCode":"400","message":"Invalid filter: x"}"#),
            "Invalid filter: x"
        );
    }

    fn segments(parts: &[&str]) -> Vec<String> {
        parts.iter().map(|part| (*part).to_owned()).collect()
    }

    #[test]
    fn join_url_escapes_each_segment() {
        let gateway = reqwest::Url::parse("https://gateway.example.test/").unwrap();
        let url = join_url(&gateway, &segments(&["fim", "a/b?c#d%", "events"]));
        assert_eq!(url.path(), "/fim/a%2Fb%3Fc%23d%25/events");
        assert_eq!(url.query(), None);
    }

    #[test]
    fn join_url_drops_dot_segments_and_tabs() {
        // The reason `query::is_valid_path_segment` rejects such ids.
        let gateway = reqwest::Url::parse("https://gateway.example.test/").unwrap();
        let url = join_url(&gateway, &segments(&["fim", "..", "a\tb", "events"]));
        assert_eq!(url.path(), "/fim/ab/events");
    }

    #[test]
    fn server_reason_limits_a_long_message() {
        let body = format!(r#"{{"message":"{}"}}"#, "x".repeat(10_000));
        assert_eq!(server_reason(&body).chars().count(), 301);
    }

    #[test]
    fn server_reason_of_blank_message_shows_body() {
        let body = r#"{"errorCode":"500","message":" "}"#;
        assert_eq!(server_reason(body), body);
    }

    #[test]
    fn retry_after_seconds_used_without_towait() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(
            blocked_wait(&headers, &LimitReport::default()),
            Duration::from_secs(7)
        );
    }

    #[test]
    fn towait_wins_over_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        let report = LimitReport {
            to_wait_sec: Some(42),
            ..LimitReport::default()
        };
        assert_eq!(blocked_wait(&headers, &report), Duration::from_secs(42));
    }

    #[test]
    fn invalid_utf8_body_gets_replacement_characters() {
        let body = bytes::Bytes::from_static(b"[{\"id\":\"a\xff\"}]");
        assert_eq!(body_text(body), "[{\"id\":\"a\u{fffd}\"}]");
    }

    #[test]
    fn last_sort_values_come_from_the_last_record() {
        let body = r#"[{"sortValues":[1,"a"],"data":{"id":"a"}},{"sortValues":[2,"b"],"data":{"id":"b"}}]"#;
        let page = parse_page(RecordKind::Event, ApiVersion::V2, body).unwrap();
        assert_eq!(page.last_sort_values, Some(json!([2, "b"])));
    }

    #[test]
    fn last_sort_values_survive_a_bad_last_record() {
        let body = r#"[{"sortValues":[1,"a"],"data":{"id":"a"}},{"sortValues":[2,"b"],"data":{}}]"#;
        assert_eq!(last_sort_values(body), Some(json!([2, "b"])));
    }
}
