//! Configuration checks of the NATS sink; the tests against a real server
//! are in `tests/nats.rs`.

use super::*;

fn config(text: &str) -> NatsConfig {
    toml::from_str(text).unwrap()
}

const MINIMAL: &str = "servers = [\"nats://127.0.0.1:4222\"]\nsubject = \"qualys.fim.{stream}\"\n";

#[test]
fn defaults_are_jetstream_with_named_stream() {
    let config = config(MINIMAL);
    assert!(config.jetstream);
    assert_eq!(config.stream, "QUALYS_FIM");
    assert!(config.validate().is_ok());
}

#[test]
fn created_stream_covers_the_subject_template() {
    let stream = stream_config(&config(MINIMAL));
    assert_eq!(stream.subjects, vec!["qualys.fim.*".to_owned()]);
    assert_eq!(
        stream.duplicate_window,
        std::time::Duration::from_secs(7200)
    );
}

#[test]
fn two_auth_methods_are_rejected() {
    let text = format!("{MINIMAL}[auth]\ntoken = \"t\"\nnkey = \"SUABC\"\n");
    let err = config(&text).validate().unwrap_err();
    assert_eq!(
        err,
        NatsConfigError::ConflictingAuth("token and nkey".to_owned())
    );
}

#[test]
fn user_without_password_is_rejected() {
    let text = format!("{MINIMAL}[auth]\nuser = \"fim\"\n");
    let err = config(&text).validate().unwrap_err();
    assert_eq!(err, NatsConfigError::IncompleteAuth("user", "password"));
}

#[test]
fn secrets_are_hidden_in_debug() {
    let text = format!("{MINIMAL}[auth]\nuser = \"fim\"\npassword = \"hunter2\"\n");
    let shown = format!("{:?}", config(&text));
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("fim"), "{shown}");
}

#[test]
fn invalid_stream_name_is_rejected() {
    let text = format!("{MINIMAL}stream = \"a.b\"\n");
    let err = config(&text).validate().unwrap_err();
    assert_eq!(err, NatsConfigError::InvalidStream("a.b".to_owned()));
}

#[test]
fn unknown_key_is_named() {
    let text = format!("{MINIMAL}subjet = \"x\"\n");
    let err = toml::from_str::<NatsConfig>(&text).unwrap_err();
    assert!(err.message().contains("subjet"), "{err}");
}
