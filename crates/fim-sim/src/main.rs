//! `fim-sim`: serves a simulated Qualys FIM API until interrupted.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use fim_sim::config::parse_duration;
use fim_sim::{BlockedStatus, RateLimit, SimConfig, Simulator};

/// Simulated Qualys File Integrity Monitoring API for tests, benchmarks and
/// demos. Every setting can also come from a TOML file (`--config`) with the
/// same names as the flags; flags win over the file. The limits are on by
/// default, as on a typical subscription: 300 calls per hour, 2 at once; pass
/// `--rate-limit 0 --concurrency-limit 0` to turn them off.
#[derive(Debug, Parser)]
#[command(name = "fim-sim", version)]
struct Cli {
    /// Address to listen on; port 0 picks a free port. [default: 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// User name `POST /auth` accepts. [default: demo]
    #[arg(long)]
    username: Option<String>,
    /// Password `POST /auth` accepts. [default: demo-password]
    #[arg(long, env = "FIM_SIM_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// Seed of the synthetic data; the same seed gives the same records. [default: 1]
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Events already visible at start. [default: 1000]
    #[arg(long, value_name = "N")]
    backlog: Option<usize>,
    /// Span, ending at start-up, over which the backlog was processed (30m, 6h). [default: 1h]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    backlog_span: Option<Duration>,
    /// New events per second while running; 0 for none. [default: 10]
    #[arg(long, value_name = "N")]
    rate: Option<f64>,
    /// Share of events (0-1) whose processedTime is minutes to hours after dateTime. [default: 0.1]
    #[arg(long, value_name = "F")]
    late_share: Option<f64>,
    /// Maximum delay of a late event. [default: 2h]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    late_max: Option<Duration>,
    /// Share of events (0-1) that land in the ignored-events stream. [default: 0.05]
    #[arg(long, value_name = "F")]
    ignored_share: Option<f64>,
    /// Open one incident for every N events; 0 for no incidents. [default: 50]
    #[arg(long, value_name = "N")]
    incident_every: Option<usize>,
    /// Maximum delay before a new incident is reviewed (status and approval change). [default: 1m]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    incident_update_after: Option<Duration>,
    /// Share of events (0-1) drawn from the edge-case fixtures, each with a fresh id. [default: 0]
    #[arg(long, value_name = "F")]
    tricky_share: Option<f64>,
    /// Delay before a processed event becomes searchable, like the real index lag. [default: 0s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    index_lag: Option<Duration>,
    /// Rate limit as CALLS/SECONDS (300/3600), or 0 for none. [default: 300/3600]
    #[arg(long, value_name = "CALLS/SECONDS")]
    rate_limit: Option<RateLimit>,
    /// API calls allowed to run at once; 0 for no cap. [default: 2]
    #[arg(long, value_name = "N")]
    concurrency_limit: Option<usize>,
    /// Status of a call the limits block: 409 (with X-RateLimit-ToWait-Sec) or 429 (with Retry-After). [default: 409]
    #[arg(long, value_name = "409|429")]
    blocked_status: Option<BlockedStatus>,
    /// Lifetime of tokens from POST /auth (4h, 30s). [default: 4h]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    token_ttl: Option<Duration>,
    /// Share of API calls (0-1) that get a 500, 502 or 503 response. [default: 0]
    #[arg(long, value_name = "F")]
    fail_rate: Option<f64>,
    /// Delay added before every API response (250ms). [default: 0s]
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    latency: Option<Duration>,
    /// Share of API calls (0-1) whose 200 body is cut off mid-JSON. [default: 0]
    #[arg(long, value_name = "F")]
    truncate_rate: Option<f64>,
    /// Share of API calls (0-1) whose connection is reset instead of getting a response. [default: 0]
    #[arg(long, value_name = "F")]
    reset_rate: Option<f64>,
    /// Largest pageSize a search accepts. [default: 10000]
    #[arg(long, value_name = "N")]
    max_page_size: Option<usize>,
    /// TOML file with any of the settings above (keys as the flag names, e.g. late-share = 0.2).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

impl Cli {
    /// Layers the flags given over the file (or the defaults).
    fn into_config(self) -> anyhow::Result<SimConfig> {
        let mut config = match &self.config {
            Some(path) => SimConfig::from_toml_file(path)?,
            None => SimConfig::default(),
        };
        macro_rules! layer {
            ($($field:ident),*) => { $(if let Some(value) = self.$field { config.$field = value; })* };
        }
        layer!(
            listen,
            username,
            password,
            seed,
            backlog,
            backlog_span,
            rate,
            late_share,
            late_max,
            ignored_share,
            incident_every,
            incident_update_after,
            tricky_share,
            index_lag,
            rate_limit,
            concurrency_limit,
            blocked_status,
            token_ttl,
            fail_rate,
            latency,
            truncate_rate,
            reset_rate,
            max_page_size
        );
        config.validate()?;
        Ok(config)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    let config = Cli::parse().into_config()?;
    let backlog = config.backlog;
    let sim = Simulator::start(config)
        .await
        .context("failed to start fim-sim")?;

    // The first stdout line is the contract scripts wait for.
    let mut stdout = std::io::stdout();
    writeln!(stdout, "listening on {}", sim.base_url())?;
    stdout.flush()?;
    tracing::info!(addr = %sim.addr(), backlog, "fim-sim ready");

    wait_for_signal().await?;
    tracing::info!("stopping");
    sim.shutdown().await;
    Ok(())
}

async fn wait_for_signal() -> anyhow::Result<()> {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("failed to install the SIGTERM handler")?;
    tokio::select! {
        result = tokio::signal::ctrl_c() => result.context("failed to wait for Ctrl-C")?,
        _ = terminate.recv() => {}
    }
    Ok(())
}
