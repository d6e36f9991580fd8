//! The HTTP side: the accept loop (which can reset a connection on demand),
//! the Qualys FIM routes, the guard that applies auth, limits and faults to
//! every API call, and the `/__sim/` control routes.

use std::collections::{HashMap, VecDeque};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes, to_bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tower::ServiceExt;

use crate::api_error::ApiError;
use crate::auth::TokenIssuer;
use crate::config::{BlockedStatus, FaultUpdate, SimConfig};
use crate::data::{Data, Stream};
use crate::limits::{Admission, Limiter};
use crate::record::now_ms;
use crate::search::{CountRequest, Params, SearchRequest, project};
use crate::spoil::{self, Spoil, Spoiled};

/// Largest request body the API accepts.
const MAX_REQUEST_BYTES: usize = 1024 * 1024;

/// Part of a request body (or query string) kept in the request log.
const REQUEST_TEXT_BYTES: usize = 1024;

/// Characters of a request path kept in the request log.
const LOGGED_PATH_CHARS: usize = 256;

/// Entries the request log keeps; older ones are dropped first, so a long
/// run or a flood of requests cannot grow memory without bound.
pub const MAX_LOG_ENTRIES: usize = 200_000;

/// Time a client has to send its request headers, and then its body.
const REQUEST_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// State shared by every connection and the arrival task.
#[derive(Debug)]
pub struct Shared {
    pub config: RwLock<SimConfig>,
    pub data: RwLock<Data>,
    pub tokens: Mutex<TokenIssuer>,
    pub limiter: Mutex<Limiter>,
    pub log: Mutex<VecDeque<RequestLogEntry>>,
    /// Draws fault decisions; seeded so a run with the same seed injects the
    /// same sequence of faults.
    pub fault_rng: Mutex<ChaCha8Rng>,
    /// Spoils waiting for the next search pages, first in first applied.
    pub spoils: Mutex<VecDeque<Spoil>>,
}

/// One line of the request log.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct RequestLogEntry {
    /// When the request arrived, epoch ms.
    pub time_ms: i64,
    pub method: String,
    pub path: String,
    /// HTTP status sent; 0 when the connection was reset instead.
    pub status: u16,
    pub request_bytes: usize,
    /// The query string (GET) or body (POST), cut at 4 KiB.
    #[serde(default)]
    pub request: String,
    pub response_bytes: usize,
    pub duration_ms: u64,
    /// `X-RateLimit-ToWait-Sec` (or `Retry-After`) of a blocked call.
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub wait_sec: Option<u64>,
    /// Fault injected into this call: `error`, `truncated`, `reset`, or
    /// `spoil:<kind>[:<record id>]` (see [`crate::spoil`]).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub fault: Option<String>,
}

impl Shared {
    pub fn new(config: SimConfig, key: [u8; 32]) -> Self {
        let now = now_ms();
        let data = Data::new(&config, now);
        let fault_rng = ChaCha8Rng::seed_from_u64(config.seed ^ 0x5eed_fa17);
        Self {
            config: RwLock::new(config),
            data: RwLock::new(data),
            tokens: Mutex::new(TokenIssuer::new(key)),
            limiter: Mutex::new(Limiter::default()),
            log: Mutex::new(VecDeque::new()),
            fault_rng: Mutex::new(fault_rng),
            spoils: Mutex::new(VecDeque::new()),
        }
    }

    pub fn config(&self) -> SimConfig {
        self.config
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn record(&self, mut entry: RequestLogEntry) {
        if let Some((cut, _)) = entry.path.char_indices().nth(LOGGED_PATH_CHARS) {
            entry.path.truncate(cut);
        }
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        if log.len() >= MAX_LOG_ENTRIES {
            log.pop_front();
        }
        log.push_back(entry);
    }

    /// Applies a runtime settings change.
    pub fn apply(&self, update: &FaultUpdate) -> Result<SimConfig, crate::config::ConfigError> {
        let mut config = self.config.write().unwrap_or_else(PoisonError::into_inner);
        update.apply(&mut config)?;
        if update.expire_tokens == Some(true) {
            self.tokens
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .expire_all();
        }
        if let Some(spoils) = &update.spoil_pages {
            self.spoils
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(spoils.iter().copied());
        }
        Ok(config.clone())
    }

    /// Applies the first queued spoil to `page`; a spoil that needs a
    /// record stays queued while pages come back empty.
    fn spoil_next(&self, page: &[u8]) -> Option<Spoiled> {
        let mut spoils = self.spoils.lock().unwrap_or_else(PoisonError::into_inner);
        let spoil = *spoils.front()?;
        let spoiled = spoil::apply(spoil, page);
        if spoiled.is_some() || !spoil.needs_record() {
            spoils.pop_front();
        }
        spoiled
    }

    fn chance(&self, share: f64) -> bool {
        share > 0.0
            && self
                .fault_rng
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .random_bool(share.clamp(0.0, 1.0))
    }
}

/// Serves HTTP on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let app = router(shared);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(err) => {
                tracing::warn!(cause = %err, "failed to accept a connection");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let control = ConnectionControl::default();
        let io = TokioIo::new(ResettableStream {
            inner: stream,
            reset: control.flag.clone(),
        });
        let app = app.clone();
        let request_control = control.clone();
        let service = hyper::service::service_fn(
            move |mut request: hyper::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(request_control.clone());
                let app = app.clone();
                async move { app.oneshot(request.map(Body::new)).await }
            },
        );
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(REQUEST_READ_TIMEOUT)
                .keep_alive(true)
                .serve_connection(io, service);
            tokio::select! {
                result = connection => {
                    if let Err(err) = result {
                        tracing::debug!(cause = %err, "connection ended with an error");
                    }
                }
                // Dropping the connection drops the socket; with the reset
                // flag set it goes with an RST instead of a FIN.
                _ = control.notify.notified() => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

/// Lets a request handler reset its own connection.
#[derive(Debug, Clone, Default)]
struct ConnectionControl {
    flag: Arc<AtomicBool>,
    notify: Arc<Notify>,
}

impl ConnectionControl {
    fn reset(&self) {
        self.flag.store(true, Ordering::SeqCst);
        self.notify.notify_one();
    }
}

/// A TCP stream that, once its reset flag is set, closes with SO_LINGER 0
/// so the peer receives a TCP RST.
struct ResettableStream {
    inner: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for ResettableStream {
    fn drop(&mut self) {
        if self.reset.load(Ordering::SeqCst) {
            let _ = socket2::SockRef::from(&self.inner).set_linger(Some(Duration::ZERO));
        }
    }
}

impl AsyncRead for ResettableStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ResettableStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Response shape of a search.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    /// Bare array of records.
    V1,
    /// Array of `{"sortValues": [...], "data": {...}}`.
    V2,
}

fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        // v1: GET with the parameters in the query string.
        .route("/fim/v1/events", get(v1_search_events))
        .route("/fim/v1/events/count", get(v1_count_events))
        .route("/fim/v1/events/ignore", get(v1_search_ignored))
        .route("/fim/v1/events/ignore/count", get(v1_count_ignored))
        .route("/fim/v1/events/ignore/{id}", get(get_ignored_event))
        .route("/fim/v1/events/{id}", get(get_event))
        .route("/fim/v1/incidents", get(v1_search_incidents))
        .route("/fim/v1/incidents/count", get(v1_count_incidents))
        .route(
            "/fim/v1/incidents/{id}/events",
            get(v1_search_incident_events),
        )
        .route(
            "/fim/v1/incidents/{id}/events/count",
            get(v1_count_incident_events),
        )
        // v2/v3: POST with a JSON body.
        .route("/fim/v2/events/search", post(v2_search_events))
        .route("/fim/v2/events/count", post(v2_count_events))
        .route("/fim/v2/events/{id}", get(get_event))
        .route("/fim/v2/events/ignore/search", post(v2_search_ignored))
        .route("/fim/v2/events/ignore/count", post(v2_count_ignored))
        .route("/fim/v3/incidents/search", post(v2_search_incidents))
        .route("/fim/v2/incidents/count", post(v2_count_incidents))
        .route(
            "/fim/v2/incidents/{id}/events/search",
            post(v2_search_incident_events),
        )
        .route(
            "/fim/v2/incidents/{id}/events/count",
            post(v2_count_incident_events),
        )
        .fallback(|| async { ApiError::not_found("no such FIM API endpoint") })
        .route_layer(middleware::from_fn_with_state(shared.clone(), guard));

    Router::new()
        .route("/auth", post(auth))
        .route("/__sim/ids", get(sim_ids))
        .route("/__sim/requests", get(sim_requests))
        .route("/__sim/faults", get(sim_settings).post(sim_faults))
        .merge(api)
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(405, "method not allowed on this endpoint")
        })
        .with_state(shared)
}

/// Applies, in order, to every FIM API call: the token check, the rate and
/// concurrency limits, and the configured faults; then logs the call.
async fn guard(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let time_ms = now_ms();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let control = request.extensions().get::<ConnectionControl>().cloned();

    let (parts, body) = request.into_parts();
    let body = match tokio::time::timeout(REQUEST_READ_TIMEOUT, to_bytes(body, MAX_REQUEST_BYTES))
        .await
    {
        Ok(Ok(body)) => body,
        Ok(Err(_)) => {
            return ApiError::new(
                413,
                format!("request body larger than {MAX_REQUEST_BYTES} bytes"),
            )
            .into_response();
        }
        Err(_) => {
            return ApiError::new(408, "the request body did not arrive in time").into_response();
        }
    };
    let request_bytes = body.len();
    let request_text = if body.is_empty() {
        parts.uri.query().unwrap_or_default().to_owned()
    } else {
        String::from_utf8_lossy(&body[..body.len().min(REQUEST_TEXT_BYTES)]).into_owned()
    };
    let request = Request::from_parts(parts, Body::from(body));

    let log = |status: u16, response_bytes: usize, wait_sec: Option<u64>, fault: Option<&str>| {
        shared.record(RequestLogEntry {
            time_ms,
            method: method.clone(),
            path: path.clone(),
            status,
            request_bytes,
            request: request_text.clone(),
            response_bytes,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
            wait_sec,
            fault: fault.map(str::to_owned),
        });
    };

    let authorized = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            // The scheme name is case-insensitive (RFC 7235, section 2.1).
            let (scheme, token) = value.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(token)
        })
        .is_some_and(|token| {
            shared
                .tokens
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .verify(token.trim(), now_ms())
        });
    if !authorized {
        let error = ApiError::unauthorized();
        log(401, error.body().len(), None, None);
        return error.into_response();
    }

    let config = shared.config();
    let admission = shared
        .limiter
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(now_ms(), config.rate_limit, config.concurrency_limit);
    let headers = match admission {
        Admission::Blocked { headers, wait_sec } => {
            let error = match config.blocked_status {
                BlockedStatus::Conflict => ApiError::new(409, "API rate limit exceeded"),
                BlockedStatus::TooManyRequests => ApiError::new(429, "Too many requests"),
            };
            log(error.status, error.body().len(), Some(wait_sec), None);
            let mut response = error.into_response();
            for (name, value) in headers.pairs() {
                insert_header(&mut response, name, value);
            }
            if config.blocked_status == BlockedStatus::TooManyRequests {
                insert_header(&mut response, "Retry-After", wait_sec.to_string());
            }
            return response;
        }
        Admission::Admitted(headers) => headers,
    };
    // Ends the call in the limiter however this function returns, including
    // when the connection is reset and the future dropped.
    let _running = RunningCall(shared.clone());

    if !config.latency.is_zero() {
        tokio::time::sleep(config.latency).await;
    }

    if let Some(control) = control.filter(|_| shared.chance(config.reset_rate)) {
        log(0, 0, None, Some("reset"));
        control.reset();
        return std::future::pending().await;
    }

    let mut response = if shared.chance(config.fail_rate) {
        let statuses = [500, 502, 503];
        let index = shared
            .fault_rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .random_range(0..statuses.len());
        let error = ApiError::new(statuses[index], "Internal server error");
        log(error.status, error.body().len(), None, Some("error"));
        error.into_response()
    } else {
        let response = next.run(request).await;
        let (mut parts, body) = response.into_parts();
        let mut bytes = to_bytes(body, usize::MAX).await.unwrap_or_default();
        let mut fault = None;
        if parts.status == StatusCode::OK
            && parts.extensions.get::<SearchPage>().is_some()
            && let Some(spoiled) = shared.spoil_next(&bytes)
        {
            bytes = Bytes::from(spoiled.body);
            parts.headers.remove(header::CONTENT_LENGTH);
            fault = Some(spoiled.note);
        } else if parts.status == StatusCode::OK
            && bytes.len() > 1
            && shared.chance(config.truncate_rate)
        {
            // Cut mid-JSON; the length header matches the cut body, so the
            // HTTP exchange itself completes and only the JSON is broken.
            bytes = bytes.slice(..bytes.len() / 2);
            parts.headers.remove(header::CONTENT_LENGTH);
            fault = Some("truncated".to_owned());
        }
        log(parts.status.as_u16(), bytes.len(), None, fault.as_deref());
        Response::from_parts(parts, Body::from(bytes))
    };

    for (name, value) in headers.pairs() {
        insert_header(&mut response, name, value);
    }
    response
}

struct RunningCall(Arc<Shared>);

impl Drop for RunningCall {
    fn drop(&mut self) {
        self.0
            .limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finish();
    }
}

fn insert_header(response: &mut Response, name: &'static str, value: String) {
    if let Ok(value) = HeaderValue::from_str(&value) {
        response.headers_mut().insert(name, value);
    }
}

async fn auth(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let started = Instant::now();
    let time_ms = now_ms();
    let config = shared.config();
    // The form is parsed whatever the Content-Type header is, as lenient
    // gateways do. The password it carries is never logged.
    let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
    let request_bytes = body.len();
    let response = if form.get("token").map(String::as_str) != Some("true") {
        ApiError::bad_request("send token=true to receive a JSON Web Token")
    } else if form.get("username") != Some(&config.username)
        || form.get("password") != Some(&config.password)
    {
        ApiError::new(401, "Invalid username or password")
    } else {
        let ttl_ms = i64::try_from(config.token_ttl.as_millis()).unwrap_or(i64::MAX / 4);
        let token = shared
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .issue(&config.username, now_ms(), ttl_ms);
        shared.record(RequestLogEntry {
            time_ms,
            method: "POST".to_owned(),
            path: "/auth".to_owned(),
            status: 201,
            request_bytes,
            request: String::new(),
            response_bytes: token.len(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(0),
            wait_sec: None,
            fault: None,
        });
        return (
            StatusCode::CREATED,
            [(header::CONTENT_TYPE, "text/plain")],
            token,
        )
            .into_response();
    };
    shared.record(RequestLogEntry {
        time_ms,
        method: "POST".to_owned(),
        path: "/auth".to_owned(),
        status: response.status,
        request_bytes,
        request: String::new(),
        response_bytes: response.body().len(),
        duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(0),
        wait_sec: None,
        fault: None,
    });
    response.into_response()
}

type QueryPairs = Query<Vec<(String, String)>>;

async fn v1_search_events(State(shared): State<Arc<Shared>>, Query(query): QueryPairs) -> Response {
    search(
        &shared,
        Stream::Events,
        None,
        Params::from_query(query),
        Version::V1,
    )
}

async fn v1_count_events(State(shared): State<Arc<Shared>>, Query(query): QueryPairs) -> Response {
    count(&shared, Stream::Events, None, Params::from_query(query))
}

async fn v1_search_ignored(
    State(shared): State<Arc<Shared>>,
    Query(query): QueryPairs,
) -> Response {
    search(
        &shared,
        Stream::IgnoredEvents,
        None,
        Params::from_query(query),
        Version::V1,
    )
}

async fn v1_count_ignored(State(shared): State<Arc<Shared>>, Query(query): QueryPairs) -> Response {
    count(
        &shared,
        Stream::IgnoredEvents,
        None,
        Params::from_query(query),
    )
}

async fn v1_search_incidents(
    State(shared): State<Arc<Shared>>,
    Query(query): QueryPairs,
) -> Response {
    search(
        &shared,
        Stream::Incidents,
        None,
        Params::from_query(query),
        Version::V1,
    )
}

async fn v1_count_incidents(
    State(shared): State<Arc<Shared>>,
    Query(query): QueryPairs,
) -> Response {
    count(&shared, Stream::Incidents, None, Params::from_query(query))
}

async fn v1_search_incident_events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): QueryPairs,
) -> Response {
    search(
        &shared,
        Stream::IncidentEvents,
        Some(&id),
        Params::from_query(query),
        Version::V1,
    )
}

async fn v1_count_incident_events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    Query(query): QueryPairs,
) -> Response {
    count(
        &shared,
        Stream::IncidentEvents,
        Some(&id),
        Params::from_query(query),
    )
}

async fn v2_search_events(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |params| {
        search(&shared, Stream::Events, None, params, Version::V2)
    })
}

async fn v2_count_events(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |params| count(&shared, Stream::Events, None, params))
}

async fn v2_search_ignored(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |params| {
        search(&shared, Stream::IgnoredEvents, None, params, Version::V2)
    })
}

async fn v2_count_ignored(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |params| {
        count(&shared, Stream::IgnoredEvents, None, params)
    })
}

async fn v2_search_incidents(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |params| {
        search(&shared, Stream::Incidents, None, params, Version::V2)
    })
}

async fn v2_count_incidents(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    with_body(&body, |params| {
        count(&shared, Stream::Incidents, None, params)
    })
}

async fn v2_search_incident_events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    with_body(&body, |params| {
        search(
            &shared,
            Stream::IncidentEvents,
            Some(&id),
            params,
            Version::V2,
        )
    })
}

async fn v2_count_incident_events(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    with_body(&body, |params| {
        count(&shared, Stream::IncidentEvents, Some(&id), params)
    })
}

async fn get_event(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    one_event(&shared, &id, false)
}

async fn get_ignored_event(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    one_event(&shared, &id, true)
}

fn with_body(body: &[u8], run: impl FnOnce(Params) -> Response) -> Response {
    match Params::from_body(body) {
        Ok(params) => run(params),
        Err(err) => err.into_response(),
    }
}

fn search(
    shared: &Shared,
    stream: Stream,
    incident: Option<&str>,
    params: Params,
    version: Version,
) -> Response {
    let max_page_size = shared.config().max_page_size;
    let now = now_ms();
    let data = shared.data.read().unwrap_or_else(PoisonError::into_inner);
    if let Some(id) = incident
        && !data.has_incident(id)
    {
        return ApiError::not_found(format!("incident {id} not found")).into_response();
    }
    let view = data.view(stream, incident, now);
    let request =
        match SearchRequest::parse(&params, view.fields, max_page_size, version == Version::V2) {
            Ok(request) => request,
            Err(err) => return err.into_response(),
        };
    let hits = match request.run(view) {
        Ok(hits) => hits,
        Err(err) => return err.into_response(),
    };

    let mut body = String::with_capacity(
        hits.iter()
            .map(|hit| hit.record.json.len() + 96)
            .sum::<usize>()
            + 2,
    );
    body.push('[');
    for (index, hit) in hits.iter().enumerate() {
        if index > 0 {
            body.push(',');
        }
        let projected;
        let json = match &request.attributes {
            Some(attributes) => {
                projected = project(&hit.record.json, attributes);
                projected.as_str()
            }
            None => &hit.record.json,
        };
        match version {
            Version::V1 => body.push_str(json),
            Version::V2 => {
                body.push_str("{\"sortValues\":");
                body.push_str(&serde_json::Value::from(hit.sort_values.clone()).to_string());
                body.push_str(",\"data\":");
                body.push_str(json);
                body.push('}');
            }
        }
    }
    body.push(']');
    let mut response = json_response(body);
    response.extensions_mut().insert(SearchPage);
    response
}

/// Marks a search page, the only kind of response a queued spoil applies to.
#[derive(Debug, Clone, Copy)]
struct SearchPage;

fn count(shared: &Shared, stream: Stream, incident: Option<&str>, params: Params) -> Response {
    let now = now_ms();
    let data = shared.data.read().unwrap_or_else(PoisonError::into_inner);
    if let Some(id) = incident
        && !data.has_incident(id)
    {
        return ApiError::not_found(format!("incident {id} not found")).into_response();
    }
    let view = data.view(stream, incident, now);
    match CountRequest::parse(&params, view.fields) {
        Ok(request) => json_response(request.run(view).to_string()),
        Err(err) => err.into_response(),
    }
}

fn one_event(shared: &Shared, id: &str, ignored: bool) -> Response {
    let data = shared.data.read().unwrap_or_else(PoisonError::into_inner);
    match data.event_by_id(id, ignored, now_ms()) {
        Some(record) => json_response(record.json.to_string()),
        None => ApiError::not_found(format!("event {id} not found")).into_response(),
    }
}

fn json_response(body: String) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn sim_ids(State(shared): State<Arc<Shared>>, Query(query): QueryPairs) -> Response {
    let name = query
        .iter()
        .find(|(key, _)| key == "stream")
        .map(|(_, value)| value.as_str())
        .unwrap_or_default();
    let Some(stream) = Stream::parse(name) else {
        return ApiError::bad_request(format!(
            "unknown stream '{name}': use stream=events, ignored_events, incidents or incident_events"
        ))
        .into_response();
    };
    let ids = shared
        .data
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .visible_ids(stream, now_ms());
    let ids: Vec<&str> = ids.iter().map(|id| &**id).collect();
    json_response(serde_json::to_string(&ids).unwrap_or_default())
}

async fn sim_requests(State(shared): State<Arc<Shared>>) -> Response {
    let log = shared.log.lock().unwrap_or_else(PoisonError::into_inner);
    let mut body = String::new();
    for entry in log.iter() {
        body.push_str(&serde_json::to_string(entry).unwrap_or_default());
        body.push('\n');
    }
    ([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response()
}

async fn sim_settings(State(shared): State<Arc<Shared>>) -> Response {
    json_response(settings_json(&shared.config()))
}

/// Renders the settings for `/__sim/faults`, with the password hidden.
fn settings_json(config: &SimConfig) -> String {
    let mut shown = config.clone();
    shown.password = "<redacted>".to_owned();
    serde_json::to_string(&shown).unwrap_or_default()
}

async fn sim_faults(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    let update = match FaultUpdate::from_json(&body) {
        Ok(update) => update,
        Err(err) => return ApiError::bad_request(err.to_string()).into_response(),
    };
    match shared.apply(&update) {
        Ok(config) => json_response(settings_json(&config)),
        Err(err) => ApiError::bad_request(err.to_string()).into_response(),
    }
}
