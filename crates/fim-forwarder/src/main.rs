//! `fim-forwarder`: collects Qualys FIM events, ignored events and incidents
//! and delivers them to every configured sink. This binary only wires the
//! crates together: `fim-source` polls, `fim-transform` encodes,
//! `fim-sinks` delivers.

mod commands;
mod config;
mod metrics;
mod pipeline;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// jemalloc replaces glibc's malloc. Records are parsed on one runtime thread
/// and freed on another, which glibc's per-thread arenas handle slowly: in
/// the end-to-end benchmark (`scripts/bench.sh`) glibc's malloc and free took
/// about 40% of the forwarder's CPU time. jemalloc's options are compiled in
/// from `.cargo/config.toml`, so freed pages leave the resident set within
/// about 100 ms. In the same benchmark that peaked 3 to 5 MiB lower than
/// mimalloc 2, at equal CPU time. Where the kernel gives transparent huge
/// pages without a request (`transparent_hugepage=always`), `main` turns them
/// off for the process, because each touched 2 MiB page counts whole in RSS.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Forwards Qualys File Integrity Monitoring events, ignored events and
/// incidents to Kafka, NATS, syslog and HTTP collectors, at least once and
/// without duplicates.
#[derive(Debug, Parser)]
#[command(name = "fim-forwarder", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Configuration file (TOML) for `run` when no command is given.
    #[arg(long, short, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Poll the Qualys FIM API and deliver to every sink until stopped (SIGTERM or Ctrl-C).
    Run,
    /// Run the built-in demo: a simulated Qualys API in-process, ECS JSON on stdout and CEF
    /// in demo-output/events.cef, metrics on 127.0.0.1:9598. Needs no account and no config.
    Demo,
    /// Parse and check the configuration without using the network; exit code 0 or 1.
    Validate,
    /// Log in to Qualys, make one count call per stream and open every sink, sending nothing.
    Check,
    /// Collect a historic time range once and exit, leaving the running checkpoint alone.
    Backfill(commands::BackfillArgs),
    /// Count records per stream with the API's count endpoint, optionally grouped.
    Count(commands::CountArgs),
}

fn main() -> ExitCode {
    // See the allocator above. Kernels before 3.15 lack PR_SET_THP_DISABLE,
    // so there the call fails and huge pages stay on.
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_thp_disable(true);
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("fim-forwarder: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command.unwrap_or(Command::Run) {
            Command::Run => commands::run(cli.config.as_deref()).await,
            Command::Demo => commands::demo(cli.config.as_deref()).await,
            Command::Validate => commands::validate(cli.config.as_deref()),
            Command::Check => commands::check(cli.config.as_deref()).await,
            Command::Backfill(args) => commands::backfill(cli.config.as_deref(), args).await,
            Command::Count(args) => commands::count(cli.config.as_deref(), args).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("fim-forwarder: {err:#}");
            ExitCode::FAILURE
        }
    }
}
