//! The syslog sink: RFC 5424 or RFC 3164 messages carrying CEF or JSON,
//! sent over TCP, TLS (rustls) or UDP.
//!
//! TCP gives no application-level acknowledgement, so a record counts as
//! delivered once it is written and flushed. The sink keeps the frames
//! written in the last `resend_window` (5 s by default), up to
//! `resend_window_max_bytes` (16 MiB by default), and sends them again
//! first on every new connection, because a receiver that went away may
//! have lost what it had not yet processed. Delivery is therefore at least
//! once for records written within the window before a drop, and those may
//! arrive twice. At a backlog's rate the byte cap binds first: at 20 MB/s,
//! 16 MiB is under a second of records. UDP has no such guarantee: a
//! datagram the network drops is lost.
//!
//! - `config.rs`: the options, and how the encoding becomes the MSG.
//! - `framing.rs`: size limit and RFC 6587 framing.
//! - `connection.rs`: TCP, TLS and UDP connections.
//! - `tls.rs`: the rustls client.
//! - `sink.rs`: the loop, reconnects and the resend window.

mod config;
mod connection;
mod framing;
mod sink;
#[cfg(test)]
mod tests;
mod tls;

pub use config::{
    Format, Framing, SyslogConfig, SyslogConfigError, SyslogRetryConfig, SyslogTlsConfig, Transport,
};
pub use framing::Framer;
pub use sink::{SyslogSink, probe};
