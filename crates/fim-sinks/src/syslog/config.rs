//! Options of the syslog sink, read from its `[[sinks]]` table.
//!
//! ```toml
//! [[sinks]]
//! name = "siem"
//! type = "syslog"
//! encoding = "cef"                # the MSG: cef or json
//! address = "127.0.0.1:6514"
//! transport = "tls"               # tcp | tls | udp
//! framing = "octet-counting"      # or "newline"
//! format = "rfc5424"              # or "rfc3164"
//! [syslog]
//! pen = 99999                     # the encoder's options: facility, app_name, hostname
//! [sinks.tls]
//! ca_file = "/etc/ssl/siem-ca.pem"
//! server_name = "siem.example.org"
//! ```

use std::path::PathBuf;
use std::time::Duration;

use fim_transform::config::ByteSize;
use fim_transform::{EncoderConfig, Encoding, SyslogPayload};
use serde::Deserialize;

/// Options of the syslog sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogConfig {
    /// Receiver as `host:port`; a host name is resolved at each connect.
    pub address: String,

    #[serde(default)]
    pub transport: Transport,

    /// Framing on TCP and TLS; UDP sends one message per datagram.
    #[serde(default)]
    pub framing: Framing,

    /// Syslog header format. Unset uses the encoding's when it is
    /// `syslog_rfc3164` or `syslog_rfc5424`, else RFC 5424.
    #[serde(default)]
    pub format: Option<Format>,

    /// Largest message sent, in bytes, framing excluded. A longer message is
    /// cut on a UTF-8 character boundary. The default matches syslog-ng's
    /// default `log-msg-size` (64 KiB); rsyslog's `maxMessageSize` defaults
    /// to 8 KiB, so set 8KiB for rsyslog receivers. UDP is capped at 65507,
    /// the largest IPv4 datagram payload.
    #[serde(default = "default_max_message_bytes")]
    pub max_message_bytes: ByteSize,

    /// How long written records are kept to be sent again after a
    /// reconnect. TCP has no application-level acknowledgement: a record
    /// counts as delivered once written and flushed, and the frames written
    /// in this window before a connection drops are resent on the next
    /// connection, so delivery is at least once within the window.
    #[serde(default = "default_resend_window", with = "humantime_serde")]
    pub resend_window: Duration,

    /// Bytes the resend window keeps at most, whatever its duration; the
    /// oldest batches go first, but the newest batch always stays. The
    /// default, 16 MiB, is more than the largest TCP send and receive
    /// buffers of a default Linux sender and receiver together (4 and
    /// 6 MiB). Raise it for a receiver that queues more in memory before it
    /// writes. The window keeps its batches LZ4-compressed, so it takes a
    /// fraction of this size in memory: a fifth for the simulator's RFC 5424
    /// lines carrying CEF, in batches of 512.
    #[serde(default = "default_resend_window_max_bytes")]
    pub resend_window_max_bytes: ByteSize,

    /// How long a TCP connect and TLS handshake may take.
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,

    #[serde(default)]
    pub retry: SyslogRetryConfig,

    #[serde(default)]
    pub tls: SyslogTlsConfig,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    #[default]
    Tcp,
    /// TCP with TLS (RFC 5425); the conventional port is 6514.
    Tls,
    /// One datagram per message (RFC 5426). Lost datagrams go unnoticed.
    Udp,
}

/// TCP framing, RFC 6587 section 3.4.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// `MSG-LEN SP MSG`, MSG-LEN counted in bytes (section 3.4.1). RFC 5425
    /// requires it on TLS.
    #[default]
    OctetCounting,
    /// The message followed by LF (section 3.4.2). A CR or LF inside a
    /// message is written as `\r` or `\n`, so one record is always one frame.
    Newline,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Rfc5424,
    Rfc3164,
}

/// Waits between reconnects.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogRetryConfig {
    #[serde(with = "humantime_serde")]
    pub initial_backoff: Duration,
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
}

impl Default for SyslogRetryConfig {
    fn default() -> Self {
        Self {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// TLS client options. The server certificate is always verified, against
/// `ca_file` when set and the system's roots otherwise, unless
/// `danger_accept_invalid_certs` is on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyslogTlsConfig {
    /// PEM file of the CA certificates to trust instead of the system roots.
    pub ca_file: Option<PathBuf>,
    /// Name sent as SNI and checked against the certificate. Unset uses the
    /// host part of `address`.
    pub server_name: Option<String>,
    /// PEM certificate chain presented to servers that require client
    /// authentication; needs `client_key_file`.
    pub client_cert_file: Option<PathBuf>,
    /// PEM private key of `client_cert_file`.
    pub client_key_file: Option<PathBuf>,
    /// Accepts any server certificate, so anyone on the path can read and
    /// change the traffic. Meant for a lab, and logged as a warning at start.
    pub danger_accept_invalid_certs: bool,
}

fn default_max_message_bytes() -> ByteSize {
    ByteSize(64 * 1024)
}

fn default_resend_window() -> Duration {
    Duration::from_secs(5)
}

fn default_resend_window_max_bytes() -> ByteSize {
    ByteSize(16 * 1024 * 1024)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

/// A syslog sink option that cannot work, named with its key and the fix.
#[derive(Debug, thiserror::Error)]
pub enum SyslogConfigError {
    #[error("address = {0:?} is invalid: give host:port, such as \"siem.example.org:6514\"")]
    InvalidAddress(String),
    #[error(
        "encoding = {0:?} cannot be the syslog MSG: use cef or json (with format = \"rfc5424\" or \"rfc3164\")"
    )]
    UnsupportedEncoding(String),
    #[error("format = {format:?} contradicts encoding = {encoding:?}: remove one of them")]
    FormatMismatch { format: String, encoding: String },
    #[error("{0}")]
    Encoder(#[from] fim_transform::ConfigError),
    #[error("max_message_bytes = {0} is invalid: give at least 64 bytes")]
    MessageSizeTooSmall(usize),
    #[error("tls options are set but transport is {0:?}: set transport = \"tls\" or remove [tls]")]
    TlsWithoutTransport(String),
    #[error("tls.{file_key} {path:?} could not be used ({reason}): give a PEM file")]
    InvalidPemFile {
        file_key: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("tls.client_cert_file and tls.client_key_file go together: set both or neither")]
    IncompleteClientAuth,
    #[error("tls.server_name {0:?} is invalid: give a DNS name or IP address")]
    InvalidServerName(String),
    #[error("the TLS client could not be built: {0}")]
    Tls(String),
    #[error("no system CA certificates were found: set tls.ca_file")]
    NoSystemRoots,
    #[error("failed to connect to the syslog receiver at {address}: {source}")]
    Unreachable {
        address: String,
        source: std::io::Error,
    },
}

impl SyslogConfig {
    /// Returns the encoder options that write whole syslog messages: the
    /// sink's `encoding` (cef or json) becomes the MSG of an RFC 5424 or RFC
    /// 3164 message, with the `[syslog]` options of the table. Fails when
    /// the combination cannot work, or when the encoder rejects its options
    /// (RFC 5424 needs `syslog.pen`).
    pub fn message_encoder(
        &self,
        encoder: &EncoderConfig,
    ) -> Result<EncoderConfig, SyslogConfigError> {
        let encoding_name = format!("{:?}", encoder.encoding).to_lowercase();
        let mut derived = encoder.clone();
        let format = match (encoder.encoding, self.format) {
            (Encoding::Cef, format) => {
                derived.syslog.payload = SyslogPayload::Cef;
                format.unwrap_or(Format::Rfc5424)
            }
            (Encoding::Json, format) => {
                derived.syslog.payload = SyslogPayload::Json;
                format.unwrap_or(Format::Rfc5424)
            }
            (Encoding::SyslogRfc5424, None | Some(Format::Rfc5424)) => Format::Rfc5424,
            (Encoding::SyslogRfc3164, None | Some(Format::Rfc3164)) => Format::Rfc3164,
            (Encoding::SyslogRfc5424 | Encoding::SyslogRfc3164, Some(format)) => {
                return Err(SyslogConfigError::FormatMismatch {
                    format: format!("{format:?}").to_lowercase(),
                    encoding: encoding_name,
                });
            }
            (Encoding::Ecs | Encoding::FlatJson, _) => {
                return Err(SyslogConfigError::UnsupportedEncoding(encoding_name));
            }
        };
        derived.encoding = match format {
            Format::Rfc5424 => Encoding::SyslogRfc5424,
            Format::Rfc3164 => Encoding::SyslogRfc3164,
        };
        fim_transform::build(&derived)?;
        Ok(derived)
    }

    /// Checks the options and returns the message encoder's options (see
    /// [`SyslogConfig::message_encoder`]).
    pub fn validate(&self, encoder: &EncoderConfig) -> Result<EncoderConfig, SyslogConfigError> {
        let derived = self.message_encoder(encoder)?;
        split_host_port(&self.address)?;
        if self.max_message_bytes.0 < 64 {
            return Err(SyslogConfigError::MessageSizeTooSmall(
                self.max_message_bytes.0,
            ));
        }
        let tls = &self.tls;
        let tls_set = tls.ca_file.is_some()
            || tls.server_name.is_some()
            || tls.client_cert_file.is_some()
            || tls.client_key_file.is_some()
            || tls.danger_accept_invalid_certs;
        if tls_set && self.transport != Transport::Tls {
            return Err(SyslogConfigError::TlsWithoutTransport(
                format!("{:?}", self.transport).to_lowercase(),
            ));
        }
        if self.transport == Transport::Tls {
            super::tls::client_config(self)?;
        }
        Ok(derived)
    }
}

/// Splits `host:port` (or `[v6]:port`) into the host and port.
pub(super) fn split_host_port(address: &str) -> Result<(String, u16), SyslogConfigError> {
    let invalid = || SyslogConfigError::InvalidAddress(address.to_owned());
    let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().map_err(|_| invalid())?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || port == 0 {
        return Err(invalid());
    }
    Ok((host.to_owned(), port))
}
