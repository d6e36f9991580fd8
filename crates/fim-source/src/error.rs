//! Errors the source reports. Transient failures (5xx, timeouts, resets,
//! cut-off bodies, rate-limit answers) are retried inside the client and
//! never surface here; what surfaces stops a stream or the whole source.

/// An error that stops a stream (or, for credentials, every stream).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error(
        "Qualys rejected the credentials of user {username:?} (HTTP {status}: {reason}); \
         check source.username and source.password"
    )]
    Credentials {
        username: String,
        status: u16,
        reason: String,
    },
    #[error(
        "{request} failed with HTTP {status}: {reason}; this is not retried: fix the \
         configuration (filter, API version, account permissions) and restart"
    )]
    Rejected {
        request: String,
        status: u16,
        reason: String,
    },
    #[error(
        "the TLS certificate of {url} was rejected ({reason}); this is not retried: set \
         source.ca_file to the CA that issued it, or check that the URL names the Qualys gateway"
    )]
    Certificate { url: String, reason: String },
    #[error(
        "incident id {0:?} cannot be sent as a URL path segment (it is empty, '.' or '..', \
         or contains a tab or line break), so its events were not requested"
    )]
    InvalidIncidentId(String),
    #[error("invalid source configuration: {0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("failed to build the HTTP client: {0}")]
    HttpClient(String),
    #[error("{request}: the API keeps answering pages the poller cannot continue from: {reason}")]
    Stuck { request: String, reason: String },
    /// Transparent because the messages already name the checkpoint file,
    /// and a prefix beside `#[from]` would repeat them in error chains.
    #[error(transparent)]
    Checkpoint(#[from] crate::checkpoint::CheckpointError),
    #[error("the record channel was closed, so polling stopped")]
    ChannelClosed,
}
