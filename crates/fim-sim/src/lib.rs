//! `fim-sim`: a Qualys File Integrity Monitoring API simulator.
//!
//! It serves the v1 (GET) and v2/v3 (POST) FIM endpoints over real HTTP with
//! deterministic synthetic data, JWT auth, the Qualys rate and concurrency
//! limits and injectable faults, so tests, benchmarks and the demo can run
//! without a Qualys account. Control routes under `/__sim/` expose the
//! ground truth (every visible id), the request log and runtime settings.
//!
//! Tests start it in-process:
//!
//! ```no_run
//! # async fn example() -> Result<(), fim_sim::SimError> {
//! let sim = fim_sim::Simulator::start(fim_sim::SimConfig {
//!     listen: "127.0.0.1:0".parse().unwrap(),
//!     ..Default::default()
//! })
//! .await?;
//! println!("{}", sim.base_url());
//! # Ok(()) }
//! ```

mod api_error;
mod auth;
pub mod config;
mod data;
mod generate;
mod limits;
pub mod qql;
pub mod record;
mod search;
mod server;
pub mod spoil;

use std::net::SocketAddr;
use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use config::{BlockedStatus, FaultUpdate, RateLimit, SimConfig};
pub use data::Stream;
pub use record::parse_time_ms;
pub use search::{EVENT_FIELDS, INCIDENT_FIELDS, PAGING_WINDOW};
pub use server::{MAX_LOG_ENTRIES, RequestLogEntry};

/// How often new events arrive and incident changes come due.
const TICK: Duration = Duration::from_millis(50);

/// Errors starting the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("failed to listen on {addr}")]
    Listen {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(transparent)]
    Config(#[from] config::ConfigError),
}

/// Entry point of the simulator.
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Builds the backlog, binds `config.listen` and serves until the handle
    /// is shut down or dropped.
    pub async fn start(config: SimConfig) -> Result<SimHandle, SimError> {
        config.validate()?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| SimError::Listen {
                    addr: config.listen,
                    source,
                })?;
        let addr = listener.local_addr().map_err(|source| SimError::Listen {
            addr: config.listen,
            source,
        })?;

        let key: [u8; 32] = rand::random();
        let mut backlog_config = config.clone();
        // Port 0 becomes the port bound, so the settings show it.
        backlog_config.listen = addr;
        // Building a large backlog takes seconds of CPU: keep it off the
        // async workers.
        let shared = tokio::task::spawn_blocking(move || server::Shared::new(backlog_config, key))
            .await
            .map_err(|err| SimError::Listen {
                addr,
                source: std::io::Error::other(err.to_string()),
            })?;
        let shared = Arc::new(shared);

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let server = tokio::spawn(server::serve(listener, shared.clone(), shutdown_rx.clone()));
        let arrivals = tokio::spawn(arrive(shared.clone(), shutdown_rx));
        Ok(SimHandle {
            addr,
            shared,
            shutdown: shutdown_tx,
            tasks: vec![server, arrivals],
        })
    }
}

/// Adds new events and applies incident changes every tick.
async fn arrive(shared: Arc<server::Shared>, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.changed() => return,
        }
        let config = shared.config();
        shared
            .data
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .tick(&config, record::now_ms());
    }
}

/// A running simulator. Dropping it stops the server.
#[derive(Debug)]
pub struct SimHandle {
    addr: SocketAddr,
    shared: Arc<server::Shared>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl SimHandle {
    /// Address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`, the base URL clients use.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Returns the requests served so far, oldest first: the last
    /// [`MAX_LOG_ENTRIES`] of them.
    pub fn request_log(&self) -> Vec<RequestLogEntry> {
        self.shared
            .log
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// Lists every id of `stream` a client can see now.
    pub fn visible_ids(&self, stream: Stream) -> Vec<String> {
        self.shared
            .data
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .visible_ids(stream, record::now_ms())
            .iter()
            .map(|id| id.to_string())
            .collect()
    }

    /// Counts the API calls running now: admitted by the limits, not yet responded to.
    pub fn running_calls(&self) -> usize {
        self.shared
            .limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .running()
    }

    /// Current settings.
    pub fn config(&self) -> SimConfig {
        self.shared.config()
    }

    /// Changes settings at runtime, as `POST /__sim/faults` does.
    pub fn update(&self, update: &FaultUpdate) -> Result<SimConfig, config::ConfigError> {
        self.shared.apply(update)
    }

    /// Stops serving.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown.send(true);
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}
