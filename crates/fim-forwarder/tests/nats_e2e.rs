//! The `fim-forwarder` binary from the simulator to NATS JetStream, on a
//! `nats-server` each test starts on its own loopback port (so a test can
//! stop it). `scripts/test.sh` installs `nats-server` when it is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::jetstream;
use common::{Running, sim_config, start_sim, wait_until, write_config};
use fim_sim::Stream;
use nix::sys::signal::Signal;

/// A `nats-server` with JetStream on a free loopback port.
struct NatsServer {
    port: u16,
    store: tempfile::TempDir,
    child: Option<Child>,
}

impl NatsServer {
    fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            port,
            store: tempfile::tempdir().unwrap(),
            child: None,
        };
        server.resume();
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    fn resume(&mut self) {
        let binary = nats_server_binary();
        let child = Command::new(&binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(self.store.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "failed to start {}: {err}; run scripts/test.sh, which installs nats-server",
                    binary.display()
                )
            });
        self.child = Some(child);
        wait_until(Duration::from_secs(20), "nats-server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn nats_server_binary() -> PathBuf {
    let candidates = std::env::var_os("NATS_SERVER")
        .map(PathBuf::from)
        .into_iter()
        .chain(
            [
                "/usr/sbin/nats-server",
                "/usr/bin/nats-server",
                "/usr/local/bin/nats-server",
            ]
            .map(PathBuf::from),
        );
    for candidate in candidates {
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("nats-server not found (set NATS_SERVER or run scripts/test.sh, which installs it)");
}

fn nats_sink(url: &str, stream: &str) -> String {
    format!(
        "[[sinks]]\nname = \"nats\"\ntype = \"nats\"\nencoding = \"ecs\"\nservers = [\"{url}\"]\nsubject = \"qualys.fim.{{stream}}\"\nstream = \"{stream}\"\nack_timeout = \"2s\"\n"
    )
}

/// Runs a future on a runtime of its own, so the test body stays blocking
/// like the other end-to-end tests.
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

fn stream_count(url: &str, stream: &str) -> u64 {
    block_on(async {
        let Ok(client) = async_nats::connect(url).await else {
            return 0;
        };
        let context = jetstream::new(client);
        let Ok(mut stream) = context.get_stream(stream).await else {
            return 0;
        };
        stream
            .info()
            .await
            .map(|info| info.state.messages)
            .unwrap_or(0)
    })
}

/// Reads every message of `stream`: `Nats-Msg-Id` to how often it is stored.
fn stored_ids(url: &str, stream: &str) -> BTreeMap<String, usize> {
    block_on(async {
        let client = async_nats::connect(url).await.unwrap();
        let context = jetstream::new(client);
        let stream = context.get_stream(stream).await.unwrap();
        let total = stream.get_info().await.unwrap().state.messages as usize;
        let consumer = stream
            .create_consumer(jetstream::consumer::pull::OrderedConfig::default())
            .await
            .unwrap();
        let mut messages = consumer.messages().await.unwrap();
        let mut counts = BTreeMap::new();
        for _ in 0..total {
            let message = tokio::time::timeout(
                Duration::from_secs(30),
                futures::StreamExt::next(&mut messages),
            )
            .await
            .unwrap()
            .unwrap()
            .unwrap();
            let id = message
                .headers
                .as_ref()
                .and_then(|headers| headers.get("Nats-Msg-Id"))
                .map(|value| value.to_string())
                .unwrap_or_default();
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    })
}

fn assert_each_once(stored: &BTreeMap<String, usize>, expected: &HashSet<String>) {
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| !stored.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} ids missing, first {:?}",
        missing.len(),
        missing.first()
    );
    let repeated: Vec<(&String, &usize)> = stored.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        repeated.is_empty(),
        "ids stored more than once: {repeated:?}"
    );
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn start_forwarder(dir: &Path, config: &Path, label: &str) -> Running {
    Running::start(config, dir.join(format!("stderr-{label}.log")))
}

#[test]
fn every_id_once_and_replay_absorbed() {
    let server = NatsServer::start();
    let sim = start_sim(fim_sim::SimConfig {
        incident_every: 0,
        ignored_share: 0.0,
        ..sim_config(3_000)
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim.handle,
        r#"["events"]"#,
        "",
        &nats_sink(&server.url(), "FIM_E2E"),
    );
    let expected: HashSet<String> = sim.handle.visible_ids(Stream::Events).into_iter().collect();

    let mut running = start_forwarder(dir.path(), &config, "first");
    wait_until(
        Duration::from_secs(120),
        "every event in the stream",
        || stream_count(&server.url(), "FIM_E2E") >= expected.len() as u64,
    );
    running.signal(Signal::SIGTERM);
    assert_eq!(
        running.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        running.stderr()
    );
    assert_each_once(&stored_ids(&server.url(), "FIM_E2E"), &expected);

    // Without its state the forwarder starts over and sends every record
    // again; the stream's duplicate window absorbs them by Nats-Msg-Id. The
    // replay is done once its checkpoint is back where the first run left
    // it, because a checkpoint passes only acknowledged records.
    let checkpoint = dir.path().join("state/checkpoint.json");
    let finished = events_cursor(&checkpoint);
    std::fs::remove_dir_all(dir.path().join("state")).unwrap();
    let mut replay = start_forwarder(dir.path(), &config, "replay");
    wait_until(
        Duration::from_secs(120),
        "the replay to reach the first run's checkpoint",
        || std::fs::metadata(&checkpoint).is_ok() && events_cursor(&checkpoint) == finished,
    );
    replay.signal(Signal::SIGTERM);
    assert_eq!(
        replay.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        replay.stderr()
    );
    assert_eq!(
        stream_count(&server.url(), "FIM_E2E"),
        expected.len() as u64
    );
    assert_each_once(&stored_ids(&server.url(), "FIM_E2E"), &expected);
}

/// Returns the events stream's lane cursors from a checkpoint file, or
/// `Null`
/// while the file cannot be read.
fn events_cursor(path: &Path) -> serde_json::Value {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .map(|value| value["streams"]["events"]["lanes"].clone())
        .unwrap_or(serde_json::Value::Null)
}

#[test]
fn server_outage_loses_nothing() {
    let mut server = NatsServer::start();
    let sim = start_sim(fim_sim::SimConfig {
        incident_every: 0,
        ignored_share: 0.0,
        latency: Duration::from_millis(50),
        ..sim_config(20_000)
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim.handle,
        r#"["events"]"#,
        "",
        &nats_sink(&server.url(), "FIM_OUTAGE"),
    );
    let expected: HashSet<String> = sim.handle.visible_ids(Stream::Events).into_iter().collect();

    let mut running = start_forwarder(dir.path(), &config, "outage");
    wait_until(
        Duration::from_secs(120),
        "part of the backlog in the stream",
        || stream_count(&server.url(), "FIM_OUTAGE") >= 2_000,
    );
    let before = resident_kib(running.child.id());
    server.stop();

    // The outage lasts 30 s; the checks do not depend on its length.
    std::thread::sleep(Duration::from_secs(30));
    let during = resident_kib(running.child.id());
    assert!(
        during <= before + 32 * 1024,
        "resident memory grew from {before} KiB to {during} KiB while nats-server was down"
    );
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "{}",
        running.stderr()
    );

    server.resume();
    wait_until(
        Duration::from_secs(180),
        "every event in the stream",
        || stream_count(&server.url(), "FIM_OUTAGE") >= expected.len() as u64,
    );
    running.signal(Signal::SIGTERM);
    assert_eq!(
        running.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        running.stderr()
    );
    assert_each_once(&stored_ids(&server.url(), "FIM_OUTAGE"), &expected);
}
