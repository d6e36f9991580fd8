//! One request to the receiver: the reqwest client with its TLS settings,
//! the method, URL and headers every request carries, and the parts of the
//! response the retry logic reads.

use std::time::{Duration, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use reqwest::header::{
    AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue,
};
use reqwest::{Method, StatusCode};

use super::config::{Auth, HttpConfig, HttpConfigError, HttpMode};
use super::request_builder::Body;

/// Sends bodies to one endpoint.
#[derive(Debug, Clone)]
pub struct HttpService {
    client: reqwest::Client,
    method: Method,
    url: reqwest::Url,
    /// Authentication and configured headers; `Debug` of reqwest headers
    /// marked sensitive prints no value.
    headers: HeaderMap,
}

/// What the retry logic needs from a response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: StatusCode,
    /// `Retry-After`, as a delay from now.
    pub retry_after: Option<Duration>,
    pub body: bytes::Bytes,
}

impl HttpService {
    pub fn new(config: &HttpConfig) -> Result<Self, HttpConfigError> {
        let url = reqwest::Url::parse(&config.url).map_err(|err| HttpConfigError::InvalidUrl {
            url: config.url.clone(),
            reason: err.to_string(),
        })?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpConfigError::InvalidUrl {
                url: config.url.clone(),
                reason: format!("scheme {:?} is not http or https", url.scheme()),
            });
        }
        let method = match config.mode {
            HttpMode::Generic => Method::from_bytes(config.method.to_ascii_uppercase().as_bytes())
                .map_err(|_| HttpConfigError::InvalidMethod(config.method.clone()))?,
            HttpMode::SplunkHec | HttpMode::Elasticsearch => Method::POST,
        };

        let mut headers = HeaderMap::new();
        for (name, value) in &config.headers {
            let header_name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| HttpConfigError::InvalidHeader(name.clone()))?;
            let header_value = HeaderValue::from_str(value)
                .map_err(|_| HttpConfigError::InvalidHeader(name.clone()))?;
            headers.insert(header_name, header_value);
        }
        match (config.mode, &config.token) {
            (HttpMode::SplunkHec, Some(token)) => {
                headers.insert(AUTHORIZATION, secret_header("Splunk", token.expose())?);
            }
            (HttpMode::SplunkHec, None) => return Err(HttpConfigError::MissingHecToken),
            (_, Some(_)) => return Err(HttpConfigError::UnexpectedToken),
            (_, None) => {}
        }
        match &config.auth {
            Some(Auth::Basic { user, password }) => {
                let credentials = format!("{user}:{}", password.expose());
                let encoded = STANDARD.encode(credentials.as_bytes());
                headers.insert(AUTHORIZATION, secret_header("Basic", &encoded)?);
            }
            Some(Auth::Bearer { token }) => {
                headers.insert(AUTHORIZATION, secret_header("Bearer", token.expose())?);
            }
            Some(Auth::ApiKey { key }) => {
                headers.insert(AUTHORIZATION, secret_header("ApiKey", key.expose())?);
            }
            None => {}
        }

        let mut builder = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)));
        if let Some(path) = &config.tls.ca_file {
            let invalid = |reason: String| HttpConfigError::InvalidCaFile {
                path: path.clone(),
                reason,
            };
            let pem = std::fs::read(path).map_err(|err| invalid(err.to_string()))?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|err| invalid(err.to_string()))?;
            if certificates.is_empty() {
                return Err(invalid("no certificate found".to_owned()));
            }
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if config.tls.danger_accept_invalid_certs {
            builder = builder.danger_accept_invalid_certs(true);
        }
        let client = builder
            .build()
            .map_err(|err| HttpConfigError::Client(err.to_string()))?;

        Ok(Self {
            client,
            method,
            url,
            headers,
        })
    }

    pub fn url(&self) -> &reqwest::Url {
        &self.url
    }

    /// Sends `body` and reads the whole response.
    pub async fn send(&self, body: Body) -> Result<Response, reqwest::Error> {
        let mut request = self
            .client
            .request(self.method.clone(), self.url.clone())
            .headers(self.headers.clone())
            .header(CONTENT_TYPE, body.content_type);
        if body.gzip {
            request = request.header(CONTENT_ENCODING, "gzip");
        }
        let response = request.body(body.bytes).send().await?;

        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|value| value.to_str().ok())
            .and_then(parse_retry_after);
        let body = response.bytes().await?;
        Ok(Response {
            status,
            retry_after,
            body,
        })
    }
}

/// Parses `Retry-After` as delay seconds or an HTTP date (RFC 9110 section
/// 10.2.3). A date in the past means no wait.
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(
        date.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn secret_header(scheme: &str, secret: &str) -> Result<HeaderValue, HttpConfigError> {
    let mut value = HeaderValue::from_str(&format!("{scheme} {secret}"))
        .map_err(|_| HttpConfigError::InvalidHeader("Authorization".to_owned()))?;
    value.set_sensitive(true);
    Ok(value)
}
