//! The two binaries under test as child processes, killed when dropped, and
//! a minimal HTTP/1.0 GET for their loopback endpoints.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const SIM_USERNAME: &str = "bench";
const SIM_PASSWORD: &str = "bench-Password-4242";

/// A running `fim-sim`.
pub struct Sim {
    child: Child,
    /// `http://127.0.0.1:PORT`, from the first line the simulator prints.
    pub url: String,
}

impl Sim {
    /// Starts `fim-sim` on a free loopback port with the rate and
    /// concurrency limits off, plus `args`.
    pub fn start(binary: &Path, args: &[String], log: &Path) -> Result<Self, String> {
        let stderr = std::fs::File::create(log)
            .map_err(|err| format!("cannot create {}: {err}", log.display()))?;
        let mut child = Command::new(binary)
            .args([
                "--listen",
                "127.0.0.1:0",
                "--rate-limit",
                "0",
                "--concurrency-limit",
                "0",
            ])
            .args(["--username", SIM_USERNAME])
            .args(args)
            .env("FIM_SIM_PASSWORD", SIM_PASSWORD)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", binary.display()))?;

        // The first stdout line is `listening on http://IP:PORT`; the rest
        // is drained so the simulator never blocks on a full pipe.
        let stdout = child.stdout.take().ok_or("fim-sim stdout is not piped")?;
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = sender.send(first);
            }
            for _ in lines {}
        });
        let mut sim = Self {
            child,
            url: String::new(),
        };
        let first = receiver
            .recv_timeout(Duration::from_secs(120))
            .map_err(|_| "fim-sim printed no address within 120 s".to_owned())?;
        sim.url = first
            .strip_prefix("listening on ")
            .ok_or_else(|| format!("unexpected first line from fim-sim: {first}"))?
            .trim()
            .to_owned();
        Ok(sim)
    }

    /// Counts the events the simulator shows in the `events` stream now.
    pub fn visible_event_count(&self) -> Result<usize, String> {
        let body = http_get(&self.url, "/__sim/ids?stream=events")?;
        let ids: Vec<serde_json::Value> = serde_json::from_str(&body)
            .map_err(|err| format!("invalid /__sim/ids response: {err}"))?;
        Ok(ids.len())
    }
}

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `fim-forwarder run`.
pub struct Forwarder {
    child: Child,
    metrics_url: String,
}

impl Forwarder {
    pub fn start(
        binary: &Path,
        config: &Path,
        metrics_port: u16,
        log: &Path,
    ) -> Result<Self, String> {
        let stderr = std::fs::File::create(log)
            .map_err(|err| format!("cannot create {}: {err}", log.display()))?;
        let child = Command::new(binary)
            .args(["run", "--config"])
            .arg(config)
            .env("FIM_E2E_PASSWORD", SIM_PASSWORD)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", binary.display()))?;
        Ok(Self {
            child,
            metrics_url: format!("http://127.0.0.1:{metrics_port}"),
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Returns the Prometheus text of `/metrics`.
    pub fn metrics(&self) -> Result<String, String> {
        http_get(&self.metrics_url, "/metrics")
    }
}

impl Drop for Forwarder {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|err| format!("cannot bind: {err}"))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|err| format!("cannot read the bound port: {err}"))
}

/// Sends `GET path` over HTTP/1.0, so the server closes the connection
/// after the body and no chunked decoding is needed; returns the body of a
/// 200 response.
pub fn http_get(base_url: &str, path: &str) -> Result<String, String> {
    let authority = base_url
        .strip_prefix("http://")
        .ok_or_else(|| format!("not an http:// URL: {base_url}"))?;
    let mut stream = TcpStream::connect(authority)
        .map_err(|err| format!("cannot connect to {authority}: {err}"))?;
    let timeout = Some(Duration::from_secs(30));
    let _ = stream.set_read_timeout(timeout);
    let _ = stream.set_write_timeout(timeout);
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {authority}\r\n\r\n")
        .map_err(|err| format!("cannot send GET {path}: {err}"))?;

    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .map_err(|err| format!("cannot read the response to GET {path}: {err}"))?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or_else(|| format!("GET {path}: response without a header end"))?;
    let status_line = head.lines().next().unwrap_or_default();
    if !status_line.contains(" 200") {
        return Err(format!("GET {path}: {status_line}"));
    }
    Ok(body.to_owned())
}
