//! Unit tests of framing and option checks; the sink runs against real
//! syslog-ng in `tests/syslog.rs`.

use fim_transform::{EncoderConfig, Encoding};

use super::config::{Format, Framing, SyslogConfig, Transport};
use super::framing::Framer;

#[test]
fn octet_counting_counts_bytes() {
    let framer = Framer::new(Transport::Tcp, Framing::OctetCounting, 1024);
    let mut out = Vec::new();
    framer.frame("<13>1 - - - - - - é".as_bytes(), &mut out);
    assert_eq!(out, "20 <13>1 - - - - - - é".as_bytes());
}

#[test]
fn newline_framing_escapes_line_breaks() {
    let framer = Framer::new(Transport::Tcp, Framing::Newline, 1024);
    let mut out = Vec::new();
    framer.frame(b"a\nb\rc", &mut out);
    assert_eq!(out, b"a\\nb\\rc\n");
}

#[test]
fn limit_cuts_on_character_boundary() {
    let framer = Framer::new(Transport::Tcp, Framing::OctetCounting, 5);
    let mut out = Vec::new();
    let truncated = framer.frame("abcdé".as_bytes(), &mut out);
    assert!(truncated);
    assert_eq!(out, b"4 abcd");
}

#[test]
fn udp_sends_bare_message() {
    let framer = Framer::new(Transport::Udp, Framing::OctetCounting, 1024);
    let mut out = Vec::new();
    framer.frame(b"<13>1 x", &mut out);
    assert_eq!(out, b"<13>1 x");
}

fn config(text: &str) -> SyslogConfig {
    toml::from_str(text).unwrap()
}

fn encoder(encoding: Encoding, pen: Option<u32>) -> EncoderConfig {
    let mut encoder = EncoderConfig::new(encoding);
    encoder.syslog.pen = pen;
    encoder
}

#[test]
fn cef_becomes_syslog_payload() {
    let config = config("address = \"127.0.0.1:514\"\nformat = \"rfc3164\"");
    let derived = config
        .message_encoder(&encoder(Encoding::Json, None))
        .unwrap();
    assert_eq!(derived.encoding, Encoding::SyslogRfc3164);
    assert_eq!(derived.syslog.payload, fim_transform::SyslogPayload::Json);
    assert_eq!(config.format, Some(Format::Rfc3164));
}

#[test]
fn rfc5424_without_pen_is_rejected() {
    let config = config("address = \"127.0.0.1:514\"");
    let err = config
        .message_encoder(&encoder(Encoding::Cef, None))
        .unwrap_err();
    assert!(err.to_string().contains("pen"), "{err}");
}

#[test]
fn ecs_encoding_is_rejected() {
    let config = config("address = \"127.0.0.1:514\"");
    let err = config
        .message_encoder(&encoder(Encoding::Ecs, Some(99_999)))
        .unwrap_err();
    assert!(err.to_string().contains("cef or json"), "{err}");
}

#[test]
fn tls_options_need_tls_transport() {
    let config = config("address = \"127.0.0.1:514\"\n[tls]\nca_file = \"/x.pem\"");
    let err = config
        .validate(&encoder(Encoding::Cef, Some(99_999)))
        .unwrap_err();
    assert!(
        err.to_string().contains(r#"set transport = "tls""#),
        "{err}"
    );
}

#[test]
fn address_without_port_is_rejected() {
    let config = config("address = \"siem.example.org\"");
    let err = config
        .validate(&encoder(Encoding::Cef, Some(99_999)))
        .unwrap_err();
    assert!(err.to_string().contains("host:port"), "{err}");
}

#[test]
fn resend_window_max_bytes_default_and_units() {
    let default = config("address = \"127.0.0.1:514\"");
    assert_eq!(default.resend_window_max_bytes.0, 16 * 1024 * 1024);
    let set = config("address = \"127.0.0.1:514\"\nresend_window_max_bytes = \"4MiB\"");
    assert_eq!(set.resend_window_max_bytes.0, 4 * 1024 * 1024);
}
