//! `fim-chaos`: runs the release `fim-forwarder` against `fim-sim` and
//! real local servers while injecting faults at seeded random moments,
//! then checks that every record the simulator served reached every sink.
//! `scripts/chaos.sh` builds the binaries and runs it.
//!
//! - `servers.rs`, `process.rs`: the programs of a run and their restarts.
//! - `faults.rs`: the fault kinds and the seeded schedule.
//! - `run.rs`: the run itself: start, inject, drain, collect.
//! - `report.rs`: lost and duplicated ids, API budget, memory; the verdict.
//! - `received.rs`, `kafka.rs`, `elasticsearch.rs`: what each sink got.
//! - `disk.rs`: the tmpfs under the state directory.

mod disk;
mod elasticsearch;
mod faults;
mod kafka;
mod process;
mod received;
mod report;
mod run;
mod servers;

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Chaos run: the release fim-forwarder against fim-sim, nats-server
/// (JetStream), tansu (Kafka), syslog-ng over TLS, a file and an
/// in-process Elasticsearch `_bulk` receiver, while the forwarder is
/// killed, servers restart, the API fails and the state disk fills up.
/// Exits 1 when a record is lost, a duplicate reaches an idempotent sink,
/// the API budget is exceeded or memory goes over the bound.
#[derive(Debug, Parser)]
#[command(name = "fim-chaos")]
pub struct Options {
    /// The release fim-sim binary.
    #[arg(long, value_name = "PATH")]
    pub sim: PathBuf,
    /// The release fim-forwarder binary.
    #[arg(long, value_name = "PATH")]
    pub forwarder: PathBuf,
    /// Seed of the fault schedule and of the simulator's data and faults;
    /// a random one when absent. The report prints it for a replay.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Length of the fault phase, in seconds; draining and checking come
    /// after it.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub duration: u64,
    /// 60-second fault phase with short, dense faults (every kind at least
    /// once), a smaller backlog and a shorter drain limit, for CI.
    #[arg(long)]
    pub quick: bool,
    /// Upper bound on the forwarder's resident memory (VmRSS, sampled every
    /// second), in MiB.
    #[arg(long, value_name = "MIB", default_value_t = 256)]
    pub memory_bound_mib: u64,
    /// Events already waiting when the run starts; default 20000, or 5000
    /// with --quick.
    #[arg(long, value_name = "N")]
    pub backlog: Option<usize>,
    /// New events per second while faults are injected.
    #[arg(long, value_name = "N", default_value_t = 50.0)]
    pub rate: f64,
    /// API budget: calls per window, enforced by the simulator and
    /// configured in the forwarder's [source.rate_limit].
    #[arg(long, value_name = "N", default_value_t = 60)]
    pub budget_calls: u32,
    /// Window of the API budget, in seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = 10)]
    pub budget_window: u64,
    /// Directory for logs, configuration, sink output and the state tmpfs;
    /// emptied first. Default: $TMPDIR/fim-chaos.
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
}

impl Options {
    pub fn phase(&self) -> Duration {
        Duration::from_secs(if self.quick { 60 } else { self.duration })
    }

    pub fn backlog(&self) -> usize {
        self.backlog
            .unwrap_or(if self.quick { 5_000 } else { 20_000 })
    }

    /// Returns how long the forwarder may take to deliver everything once
    /// the faults stop.
    pub fn drain_limit(&self) -> Duration {
        Duration::from_secs(if self.quick { 120 } else { 300 })
    }
}

fn main() {
    let mut options = Options::parse();
    // A random seed is kept small so it is easy to copy from the report.
    let seed = options
        .seed
        .unwrap_or_else(|| u64::from(rand::random::<u32>()));
    options.seed = Some(seed);

    match run::run(&options) {
        Ok(outcome) => {
            let passed = report::print(&options, &outcome);
            std::process::exit(if passed { 0 } else { 1 });
        }
        Err(err) => {
            eprintln!("fim-chaos: run failed (seed {seed}): {err:#}");
            std::process::exit(2);
        }
    }
}
