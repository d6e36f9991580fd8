use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_nats::jetstream::{self, stream};
use async_nats::{Client, ConnectOptions, Event};

use super::config::NatsConfig;
use super::request_builder::NatsRequest;
use crate::SinkMetrics;

/// Connection options built from the configuration at start, so a missing
/// credentials or certificate file is reported before the sink runs.
pub fn connect_options(config: &NatsConfig) -> Result<ConnectOptions, String> {
    let auth = &config.auth;
    let mut options = match &auth.credentials_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|err| {
                format!(
                    "auth.credentials_file = {:?} cannot be read: {err}: give a readable credentials file",
                    path.display().to_string()
                )
            })?;
            ConnectOptions::with_credentials(&text).map_err(|err| {
                format!(
                    "auth.credentials_file = {:?} is invalid: {err}: give a file written by nsc",
                    path.display().to_string()
                )
            })?
        }
        None => ConnectOptions::new(),
    };
    if let Some(token) = &auth.token {
        options = options.token(token.expose().to_owned());
    }
    if let (Some(user), Some(password)) = (&auth.user, &auth.password) {
        options = options.user_and_password(user.clone(), password.expose().to_owned());
    }
    if let Some(seed) = &auth.nkey {
        options = options.nkey(seed.expose().to_owned());
    }

    if let Some(tls) = &config.tls {
        for (key, path) in [
            ("tls.ca_file", &tls.ca_file),
            ("tls.cert_file", &tls.cert_file),
            ("tls.key_file", &tls.key_file),
        ] {
            if let Some(path) = path
                && let Err(err) = std::fs::metadata(path)
            {
                return Err(format!(
                    "{key} = {:?} cannot be read: {err}: give a PEM file",
                    path.display().to_string()
                ));
            }
        }
        options = options.require_tls(true);
        if let Some(ca) = &tls.ca_file {
            options = options.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&tls.cert_file, &tls.key_file) {
            options = options.add_client_certificate(cert.clone(), key.clone());
        }
    }

    Ok(options
        .name("fim-forwarder")
        .connection_timeout(config.connect_timeout)
        // The sink starts while the servers are down and connects once they
        // are up; publishes wait and retry meanwhile.
        .retry_on_initial_connect()
        .max_reconnects(None))
}

/// Connects in the background: returns at once, and marks the sink
/// unreachable until the first connection and after each disconnect.
pub async fn connect(
    options: ConnectOptions,
    servers: &[String],
    sink: &str,
    metrics: Arc<SinkMetrics>,
) -> Result<Client, async_nats::ConnectError> {
    metrics.disconnected.store(true, Ordering::Relaxed);
    let name = sink.to_owned();
    let options = options.event_callback(move |event| {
        let metrics = metrics.clone();
        let name = name.clone();
        async move {
            match event {
                Event::Connected => {
                    metrics.disconnected.store(false, Ordering::Relaxed);
                    tracing::info!(sink = %name, "connected to the nats server");
                }
                Event::Disconnected => {
                    metrics.disconnected.store(true, Ordering::Relaxed);
                    tracing::warn!(sink = %name, "disconnected from the nats server, reconnecting");
                }
                Event::Closed => {
                    metrics.disconnected.store(true, Ordering::Relaxed);
                }
                other => tracing::warn!(sink = %name, event = %other, "nats client event"),
            }
        }
    });
    let addresses: Vec<async_nats::ServerAddr> = servers
        .iter()
        .filter_map(|server| server.parse().ok())
        .collect();
    options.connect(addresses).await
}

/// Returns the stream configuration the sink creates when the stream is
/// missing: file storage, the subjects, and the duplicate window.
pub fn stream_config(config: &NatsConfig) -> stream::Config {
    let subjects = config
        .stream_subjects
        .clone()
        .unwrap_or_else(|| vec![config.subject.with_wildcards("*")]);
    stream::Config {
        name: config.stream.clone(),
        subjects,
        duplicate_window: config.duplicate_window,
        storage: stream::StorageType::File,
        ..Default::default()
    }
}

/// Finds the stream, or creates it when missing. An existing stream is
/// left as it is: its subjects and duplicate window are the operator's.
pub async fn ensure_stream(
    context: &jetstream::Context,
    config: &NatsConfig,
) -> Result<(), jetstream::context::CreateStreamError> {
    context.get_or_create_stream(stream_config(config)).await?;
    Ok(())
}

/// Sends one request to JetStream; the returned future resolves to its
/// PubAck.
pub async fn publish_jetstream(
    context: &jetstream::Context,
    request: &NatsRequest,
) -> Result<jetstream::context::PublishAckFuture, jetstream::context::PublishError> {
    let message = jetstream::message::PublishMessage::build()
        .payload(request.payload.clone())
        .headers(request.headers.clone())
        .message_id(&request.message_id);
    context.send_publish(request.subject.clone(), message).await
}

/// Sends one request with core NATS: no acknowledgement beyond the flush.
pub async fn publish_core(
    client: &Client,
    request: &NatsRequest,
) -> Result<(), async_nats::PublishError> {
    client
        .publish_with_headers(
            request.subject.clone(),
            request.headers.clone(),
            request.payload.clone(),
        )
        .await
}
