//! Helpers for the binary's end-to-end tests: a simulator in the test
//! process, the `fim-forwarder` binary as a child process with a generated
//! configuration, and readers for what the sinks wrote.

#![allow(dead_code)]

use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fim_sim::{RateLimit, SimConfig, SimHandle, Simulator};

pub const USERNAME: &str = "e2e-user";
pub const PASSWORD: &str = "e2e-Password-4242";

pub fn sim_config(backlog: usize) -> SimConfig {
    SimConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        username: USERNAME.to_owned(),
        password: PASSWORD.to_owned(),
        seed: 99,
        backlog,
        rate: 0.0,
        rate_limit: RateLimit::NONE,
        concurrency_limit: 0,
        ..SimConfig::default()
    }
}

/// A simulator on its own runtime, so the test body can block freely.
pub struct Sim {
    pub handle: SimHandle,
    _runtime: tokio::runtime::Runtime,
}

pub fn start_sim(config: SimConfig) -> Sim {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let handle = runtime
        .block_on(Simulator::start(config))
        .expect("simulator starts");
    Sim {
        handle,
        _runtime: runtime,
    }
}

/// A forwarder configuration pointing at `sim`, writing into `dir`.
/// `sinks` is TOML for the `[[sinks]]` tables.
pub fn write_config(
    dir: &Path,
    sim: &SimHandle,
    streams: &str,
    extra: &str,
    sinks: &str,
) -> PathBuf {
    let text = format!(
        r#"
[source]
base_url = "{url}"
username = "{USERNAME}"
password = "${{E2E_QUALYS_PASSWORD}}"
api_version = "v2"
streams = {streams}
poll_interval = "200ms"
page_size = 250
start_from = "7d"
lag = "0s"
max_backoff = "200ms"
[source.rate_limit]
calls = 100000
per = "1s"
burst = 1000
concurrency = 4

[state]
dir = "{state}"

[pipeline]
buffer = 200
checkpoint_interval = "100ms"
shutdown_timeout = "10s"

[metrics]
enabled = false

[log]
format = "json"
level = "info"
{extra}
{sinks}
"#,
        url = sim.base_url(),
        state = dir.join("state").display(),
    );
    let path = dir.join("forwarder.toml");
    std::fs::write(&path, text).unwrap();
    path
}

pub fn forwarder() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_fim-forwarder"));
    command.env("E2E_QUALYS_PASSWORD", PASSWORD);
    command.env_remove("RUST_LOG");
    command
}

/// The forwarder as a child process; killed when dropped.
pub struct Running {
    pub child: Child,
    pub stderr_path: PathBuf,
}

impl Running {
    pub fn start(config: &Path, stderr_path: PathBuf) -> Self {
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let child = forwarder()
            .args(["run", "--config"])
            .arg(config)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        Self { child, stderr_path }
    }

    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(self.child.id() as i32)
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(self.pid(), signal).unwrap();
    }

    /// Waits up to `limit` for the process to exit; returns its code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status.code().unwrap_or(-1));
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = std::fs::File::open(&self.stderr_path) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines of a sink's output file (empty when it does not exist yet).
pub fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Ids of a `json` sink's lines.
pub fn json_ids(path: &Path) -> Vec<String> {
    lines(path)
        .iter()
        .map(|line| {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            value["id"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Waits until `condition` holds, polling every 50 ms, for at most `limit`.
pub fn wait_until(limit: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + limit;
    while !condition() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub fn id_set(ids: &[String]) -> HashSet<String> {
    ids.iter().cloned().collect()
}

pub fn json_sink(name: &str, path: &Path) -> String {
    format!(
        "[[sinks]]\nname = \"{name}\"\ntype = \"file\"\nencoding = \"json\"\npath = \"{}\"\n",
        path.display()
    )
}
