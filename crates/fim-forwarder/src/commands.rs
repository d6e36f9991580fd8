//! The subcommands: run, demo, validate, check, backfill and count.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use fim_model::RecordKind;
use fim_sim::{RateLimit, SimConfig, SimHandle, Simulator};
use fim_source::{
    CheckpointError, CheckpointStore, FimClient, RejectedRecords, Secret, SourceOptions,
    SourceState, StartFrom,
};
use tokio::sync::watch;

use crate::config::{Config, LogFormat};
use crate::metrics::Metrics;
use crate::pipeline::{self, Mode};

/// The configuration `fim-forwarder demo` uses when given none.
const DEMO_CONFIG: &str = include_str!("../../../config/demo.toml");

pub async fn run(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(path) = path else {
        bail!(
            "--config FILE is required (see config/fim-forwarder.toml), or run `fim-forwarder demo`"
        );
    };
    let config = load(path)?;
    init_logging(&config);
    serve(config, Mode::Continuous, None).await
}

pub async fn demo(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = match path {
        Some(path) => load(path)?,
        None => Config::parse(DEMO_CONFIG, "(built-in demo configuration)", |name| {
            std::env::var(name).ok()
        })
        .map_err(|errors| anyhow::anyhow!("{errors}"))?,
    };
    if config.demo.is_none() {
        bail!(
            "the configuration has no [demo] section with enabled = true; use `fim-forwarder run` for a real account"
        );
    }
    init_logging(&config);
    serve(config, Mode::Continuous, None).await
}

pub fn validate(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(path) = path else {
        bail!("--config FILE is required");
    };
    match Config::load(path) {
        Ok(config) => {
            let streams: Vec<&str> = config
                .source
                .streams
                .iter()
                .map(|kind| kind.stream_name())
                .collect();
            let sinks: Vec<String> = config
                .sinks
                .iter()
                .map(|sink| format!("{} ({}, {:?})", sink.name, sink.kind, sink.encoder.encoding))
                .collect();
            println!("configuration {} is valid", path.display());
            println!("  streams: {}", streams.join(", "));
            println!("  sinks: {}", sinks.join(", "));
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => {
            eprint!("{errors}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub async fn check(path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let Some(path) = path else {
        bail!("--config FILE is required");
    };
    let mut config = load(path)?;
    init_logging(&config);
    let _sim = start_demo_api(&mut config).await?;

    let mut rows: Vec<(String, bool, String)> = Vec::new();
    let client = FimClient::new(&config.source, Arc::new(fim_source::NoObserver))?;
    let gateway = config.source.gateway().unwrap_or_default();
    match client.login().await {
        Ok(()) => {
            rows.push((
                format!("login to {gateway}"),
                true,
                format!("as {}", config.source.username),
            ));
            for kind in &config.source.streams {
                if *kind == RecordKind::IncidentEvent {
                    rows.push((
                        format!("stream {kind}"),
                        true,
                        "counted per incident while running".to_owned(),
                    ));
                    continue;
                }
                let outcome = client
                    .count(*kind, None, &config.source.filter, None, None)
                    .await;
                match outcome {
                    Ok(value) => rows.push((
                        format!("stream {kind}"),
                        true,
                        format!(
                            "{} records visible",
                            value.get("count").cloned().unwrap_or_default()
                        ),
                    )),
                    Err(err) => rows.push((format!("stream {kind}"), false, err.to_string())),
                }
            }
        }
        Err(err) => rows.push((format!("login to {gateway}"), false, err.to_string())),
    }
    for sink in &config.sinks {
        let outcome = check_sink(sink).await;
        rows.push((
            format!("sink {} ({})", sink.name, sink.kind),
            outcome.is_ok(),
            outcome.unwrap_or_else(|err| err),
        ));
    }

    let width = rows
        .iter()
        .map(|(what, _, _)| what.len())
        .max()
        .unwrap_or(0);
    let mut all_ok = true;
    for (what, ok, detail) in &rows {
        all_ok &= ok;
        println!(
            "{what:<width$}  {}  {detail}",
            if *ok { "ok  " } else { "FAIL" }
        );
    }
    Ok(if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Checks that a sink's destination is reachable without sending anything:
/// a file can be opened for appending, a network destination accepts a TCP
/// connection.
async fn check_sink(sink: &fim_sinks::SinkSpec) -> Result<String, String> {
    match sink.kind.as_str() {
        "stdout" => Ok("writes to standard output".to_owned()),
        "file" => {
            let options: fim_sinks::file::FileConfig = sink.options()?;
            if let Some(parent) = options
                .path
                .parent()
                .filter(|parent| !parent.as_os_str().is_empty())
            {
                std::fs::create_dir_all(parent)
                    .map_err(|err| format!("cannot create {}: {err}", parent.display()))?;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&options.path)
                .map(|_| format!("{} is writable", options.path.display()))
                .map_err(|err| {
                    format!(
                        "cannot open {} for appending: {err}",
                        options.path.display()
                    )
                })
        }
        "syslog" => {
            // Completes the TLS handshake too, so an untrusted server fails.
            let options: fim_sinks::syslog::SyslogConfig = sink.options()?;
            fim_sinks::syslog::probe(&options)
                .await
                .map(|()| format!("{} accepted a connection", options.address))
                .map_err(|err| err.to_string())
        }
        _ => {
            let addresses = network_addresses(&sink.options);
            if addresses.is_empty() {
                return Err("no address, brokers, servers or url to check".to_owned());
            }
            let mut reached = Vec::new();
            for address in &addresses {
                let connect = tokio::net::TcpStream::connect(address.as_str());
                match tokio::time::timeout(Duration::from_secs(5), connect).await {
                    Ok(Ok(_)) => reached.push(address.clone()),
                    Ok(Err(err)) => return Err(format!("cannot connect to {address}: {err}")),
                    Err(_) => return Err(format!("connecting to {address} timed out after 5 s")),
                }
            }
            Ok(format!("TCP connection accepted by {}", reached.join(", ")))
        }
    }
}

/// Host:port pairs a network sink sends to, from its `address`, `brokers`,
/// `servers` or `url` option.
fn network_addresses(options: &toml::Table) -> Vec<String> {
    let mut found = Vec::new();
    for key in ["address", "brokers", "servers", "url"] {
        let values: Vec<&str> = match options.get(key) {
            Some(toml::Value::String(text)) => vec![text.as_str()],
            Some(toml::Value::Array(items)) => {
                items.iter().filter_map(toml::Value::as_str).collect()
            }
            _ => continue,
        };
        for value in values {
            found.extend(host_port(value));
        }
    }
    found
}

/// `nats://host:4222`, `https://host:8088/path` or `host:9092` to
/// `host:port`, with the scheme's default port when none is given.
fn host_port(value: &str) -> Option<String> {
    let (scheme, rest) = value.split_once("://").unwrap_or(("", value));
    let authority = rest.split('/').next()?.rsplit('@').next()?;
    if authority.is_empty() {
        return None;
    }
    let has_port = authority
        .rsplit_once(':')
        .is_some_and(|(_, port)| port.parse::<u16>().is_ok());
    if has_port {
        return Some(authority.to_owned());
    }
    let port = match scheme {
        "https" | "tls" => 443,
        "http" => 80,
        "nats" => 4222,
        _ => return None,
    };
    Some(format!("{authority}:{port}"))
}

/// Options of `backfill`.
#[derive(Debug, clap::Args)]
pub struct BackfillArgs {
    /// Start of the range: RFC 3339 time (2024-05-01T00:00:00Z) or a look-back (7d).
    #[arg(long, value_name = "TIME")]
    from: String,
    /// End of the range, same forms; now when left out.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Streams to collect, comma-separated; the configured ones when left out.
    #[arg(long, value_delimiter = ',', value_name = "STREAMS")]
    streams: Vec<String>,
}

pub async fn backfill(path: Option<&Path>, args: BackfillArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = path else {
        bail!("--config FILE is required");
    };
    let mut config = load(path)?;
    init_logging(&config);
    let now = now_ms();
    let from = StartFrom::parse(&args.from)
        .map_err(|err| anyhow::anyhow!("--from: {err}"))?
        .resolve(now);
    let to = match &args.to {
        Some(text) => StartFrom::parse(text)
            .map_err(|err| anyhow::anyhow!("--to: {err}"))?
            .resolve(now),
        None => now,
    };
    if to <= from {
        bail!("--to must be after --from");
    }
    if !args.streams.is_empty() {
        config.source.streams = args
            .streams
            .iter()
            .map(|name| {
                RecordKind::from_stream_name(name.trim()).ok_or_else(|| {
                    anyhow::anyhow!("unknown stream {name:?} in --streams: use events, ignored_events, incidents or incident_events")
                })
            })
            .collect::<anyhow::Result<_>>()?;
    }
    config.source.start_from = StartFrom::At(from);
    config.source.lag = Duration::ZERO;
    let _sim = start_demo_api(&mut config).await?;

    let client = FimClient::new(&config.source, Arc::new(fim_source::NoObserver))?;
    let mut expected = 0u64;
    for kind in &config.source.streams {
        let field = match kind {
            RecordKind::Event | RecordKind::IgnoredEvent => {
                fim_source::query::OrderField::ProcessedTime
            }
            RecordKind::Incident | RecordKind::IncidentEvent => {
                fim_source::query::OrderField::CreatedDate
            }
        };
        if *kind == RecordKind::IncidentEvent {
            continue;
        }
        let window = fim_source::query::time_window(field, from, to);
        let filter = if kind.is_incident() {
            window
        } else {
            fim_source::query::combine(&config.source.filter, &window)
        };
        let count = client.count(*kind, None, &filter, None, None).await?;
        expected += count
            .get("count")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
    }
    drop(client);

    let metrics = Metrics::new();
    let options = SourceOptions {
        observer: metrics.clone(),
        checkpoint_interval: None,
        stop_at_ms: Some(to),
        rejected: Some(Arc::new(RejectedRecords::new(
            config.source_dead_letter_path(),
        ))),
    };
    let (_shutdown_tx, shutdown) = shutdown_on_signals()?;
    let (_reopen_tx, reopen) = watch::channel(0u64);
    let progress = Progress::start(expected, metrics.clone());
    // A backfill keeps its position in memory: the running forwarder's
    // checkpoint is left alone.
    let store: Arc<dyn CheckpointStore> = Arc::new(MemoryStore::default());
    let summary = pipeline::run(
        config,
        metrics,
        options,
        Mode::Backfill,
        shutdown,
        reopen,
        Some(store),
    )
    .await?;
    progress.finish(summary.routed);
    Ok(ExitCode::SUCCESS)
}

/// Options of `count`.
#[derive(Debug, clap::Args)]
pub struct CountArgs {
    /// Field to group by, e.g. action, platform, dateTime.
    #[arg(long, value_name = "FIELD")]
    group_by: Option<String>,
    /// Bucket width when grouping by a date field: 1d, 12h, 1M...
    #[arg(long, value_name = "INTERVAL")]
    interval: Option<String>,
    /// QQL filter, e.g. "severity >= 4 and platform: LINUX"; the configured one when left out.
    #[arg(long, value_name = "QQL")]
    filter: Option<String>,
}

pub async fn count(path: Option<&Path>, args: CountArgs) -> anyhow::Result<ExitCode> {
    let Some(path) = path else {
        bail!("--config FILE is required");
    };
    let mut config = load(path)?;
    init_logging(&config);
    let _sim = start_demo_api(&mut config).await?;
    let client = FimClient::new(&config.source, Arc::new(fim_source::NoObserver))?;
    let filter = args.filter.unwrap_or_else(|| config.source.filter.clone());

    for kind in &config.source.streams {
        if *kind == RecordKind::IncidentEvent {
            continue;
        }
        let filter = if kind.is_incident() {
            ""
        } else {
            filter.as_str()
        };
        let value = client
            .count(
                *kind,
                None,
                filter,
                args.group_by.as_deref(),
                args.interval.as_deref(),
            )
            .await?;
        println!("{kind}");
        let rows: Vec<(String, u64)> = match value.get("count").and_then(serde_json::Value::as_u64)
        {
            Some(total) if args.group_by.is_none() => vec![("total".to_owned(), total)],
            _ => value
                .as_object()
                .map(|groups| {
                    groups
                        .iter()
                        .map(|(group, count)| (group.clone(), count.as_u64().unwrap_or(0)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let max = rows
            .iter()
            .map(|(_, count)| *count)
            .max()
            .unwrap_or(0)
            .max(1);
        let width = rows
            .iter()
            .map(|(group, _)| group.chars().count())
            .max()
            .unwrap_or(0);
        for (group, count) in rows {
            let bar = "#".repeat(((count * 40) / max) as usize);
            println!("  {group:<width$}  {count:>10}  {bar}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|errors| anyhow::anyhow!("{errors}"))
}

/// Runs the pipeline until a signal, with metrics and (for the demo) the
/// simulated API.
async fn serve(
    mut config: Config,
    mode: Mode,
    stop_at_ms: Option<i64>,
) -> anyhow::Result<ExitCode> {
    let _sim = start_demo_api(&mut config).await?;
    let metrics = Metrics::new();
    if config.metrics.enabled {
        let bound = crate::metrics::serve(config.metrics.listen, metrics.clone())
            .await
            .with_context(|| {
                format!(
                    "failed to listen on metrics.listen = {}",
                    config.metrics.listen
                )
            })?;
        tracing::info!(addr = %bound, "metrics and health on http://{bound}/metrics and /health");
    }
    let (_shutdown_tx, shutdown) = shutdown_on_signals()?;
    let reopen = reopen_on_sighup()?;
    let options = SourceOptions {
        observer: metrics.clone(),
        checkpoint_interval: Some(config.pipeline.checkpoint_interval),
        stop_at_ms,
        rejected: Some(Arc::new(RejectedRecords::new(
            config.source_dead_letter_path(),
        ))),
    };
    let summary = pipeline::run(config, metrics, options, mode, shutdown, reopen, None).await?;
    tracing::info!(
        records = summary.routed,
        drained = summary.drained,
        "fim-forwarder stopped"
    );
    Ok(ExitCode::SUCCESS)
}

/// Starts the simulated API for a `[demo]` configuration and points the
/// source at it.
async fn start_demo_api(config: &mut Config) -> anyhow::Result<Option<SimHandle>> {
    let Some(demo) = config.demo.clone() else {
        return Ok(None);
    };
    let password = "demo-password".to_owned();
    let sim = Simulator::start(SimConfig {
        listen: "127.0.0.1:0".parse().context("loopback address")?,
        username: config.source.username.clone(),
        password: password.clone(),
        backlog: demo.backlog,
        rate: demo.rate,
        rate_limit: RateLimit {
            calls: 600,
            window: Duration::from_secs(60),
        },
        ..SimConfig::default()
    })
    .await
    .context("failed to start the simulated Qualys API")?;
    config.source.base_url = Some(sim.base_url());
    config.source.password = Some(Secret::new(password));
    config.source.password_file = None;
    if demo.fresh_state {
        let checkpoint = config.state.dir.join("checkpoint.json");
        if checkpoint.exists() {
            std::fs::remove_file(&checkpoint).with_context(|| {
                format!(
                    "failed to clear the demo checkpoint {}",
                    checkpoint.display()
                )
            })?;
        }
    }
    tracing::info!(url = %sim.base_url(), backlog = demo.backlog, rate = demo.rate, "simulated Qualys FIM API started");
    Ok(Some(sim))
}

/// Returns a shutdown flag set by SIGTERM or SIGINT; a second signal exits at once.
fn shutdown_on_signals() -> anyhow::Result<(Arc<watch::Sender<bool>>, watch::Receiver<bool>)> {
    use tokio::signal::unix::{SignalKind, signal};
    let (sender, receiver) = watch::channel(false);
    let sender = Arc::new(sender);
    let mut terminate = signal(SignalKind::terminate()).context("failed to handle SIGTERM")?;
    let mut interrupt = signal(SignalKind::interrupt()).context("failed to handle SIGINT")?;
    let flag = sender.clone();
    tokio::spawn(async move {
        let mut signals = 0;
        loop {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = interrupt.recv() => {}
            }
            signals += 1;
            if signals > 1 {
                tracing::warn!("second signal: exiting now without draining");
                std::process::exit(130);
            }
            tracing::info!(
                "signal received: draining and saving the checkpoint (send it again to exit at once)"
            );
            let _ = flag.send(true);
        }
    });
    Ok((sender, receiver))
}

/// Returns a counter bumped on SIGHUP, the signal for file sinks to reopen.
fn reopen_on_sighup() -> anyhow::Result<watch::Receiver<u64>> {
    use tokio::signal::unix::{SignalKind, signal};
    let (sender, receiver) = watch::channel(0u64);
    let mut hangup = signal(SignalKind::hangup()).context("failed to handle SIGHUP")?;
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reopening output files");
            sender.send_modify(|count| *count += 1);
        }
    });
    Ok(receiver)
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let _ = match config.log.format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// A checkpoint store that keeps the state in memory (backfill).
#[derive(Debug, Default)]
struct MemoryStore(Mutex<Option<SourceState>>);

impl CheckpointStore for MemoryStore {
    fn load(&self) -> Result<Option<SourceState>, CheckpointError> {
        Ok(self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone())
    }

    fn save(&self, state: &SourceState) -> Result<(), CheckpointError> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(state.clone());
        Ok(())
    }
}

/// Backfill progress: a bar on a terminal, log lines otherwise.
struct Progress {
    task: tokio::task::JoinHandle<()>,
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    fn start(expected: u64, metrics: Arc<Metrics>) -> Self {
        let bar = std::io::stdout().is_terminal().then(|| {
            let bar = indicatif::ProgressBar::new(expected);
            if let Ok(style) = indicatif::ProgressStyle::with_template(
                "{bar:40} {pos}/{len} records  {per_sec}  eta {eta}",
            ) {
                bar.set_style(style);
            }
            bar
        });
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let started = std::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(if shown.is_some() { 1 } else { 5 })).await;
                let done = metrics.polled_total();
                match &shown {
                    Some(bar) => bar.set_position(done),
                    None => {
                        let rate = done as f64 / started.elapsed().as_secs_f64().max(0.001);
                        tracing::info!(
                            done,
                            expected,
                            rate = format!("{rate:.0}/s"),
                            "backfill progress"
                        );
                    }
                }
            }
        });
        Self { task, bar }
    }

    fn finish(self, routed: u64) {
        self.task.abort();
        if let Some(bar) = self.bar {
            bar.set_position(routed);
            bar.finish();
        }
        tracing::info!(records = routed, "backfill done");
    }
}

fn now_ms() -> i64 {
    fim_model::Timestamp::now().unix_ms()
}

#[cfg(test)]
mod tests {
    use super::host_port;

    #[test]
    fn host_port_reads_urls_and_plain_addresses() {
        assert_eq!(
            host_port("nats://127.0.0.1:4222").as_deref(),
            Some("127.0.0.1:4222")
        );
        assert_eq!(
            host_port("nats://user:pw@nats.example").as_deref(),
            Some("nats.example:4222")
        );
        assert_eq!(
            host_port("https://splunk.example:8088/services/collector").as_deref(),
            Some("splunk.example:8088")
        );
        assert_eq!(
            host_port("https://es.example/_bulk").as_deref(),
            Some("es.example:443")
        );
        assert_eq!(
            host_port("127.0.0.1:9092").as_deref(),
            Some("127.0.0.1:9092")
        );
        assert_eq!(host_port("kafka-1"), None);
    }
}
