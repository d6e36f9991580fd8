//! Checks that `packaging/grafana-dashboard.json` queries only metrics the
//! forwarder exports, by reading `/metrics` from a running demo.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DASHBOARD: &str = include_str!("../../../packaging/grafana-dashboard.json");
const DEMO_CONFIG: &str = include_str!("../../../config/demo.toml");

/// The demo process; killed when dropped so a failed assert leaves nothing running.
struct Demo(Child);

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn dashboard_uses_only_exported_metrics() {
    let used = dashboard_metric_names();
    assert!(
        used.len() >= 10,
        "found only {used:?} in the dashboard's queries"
    );

    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = demo_config(dir.path(), port);
    let config_path = dir.path().join("demo.toml");
    std::fs::write(&config_path, config).unwrap();
    let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let _demo = Demo(
        Command::new(env!("CARGO_BIN_EXE_fim-forwarder"))
            .args(["demo", "--config"])
            .arg(&config_path)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap(),
    );

    // Label sets appear as the pipeline runs, so scrape until every name
    // is there or the limit passes, then report each missing name.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut exported = BTreeSet::new();
    while Instant::now() < deadline {
        if let Some(body) = http_get(port, "/metrics") {
            exported = exported_metric_names(&body);
            if used.is_subset(&exported) {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }

    let log = std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
    for name in &used {
        assert!(
            exported.contains(name),
            "the dashboard queries {name}, which /metrics does not serve; demo log:\n{log}"
        );
    }
}

/// Builds the demo configuration with its metrics on `port` and its output and
/// state under `dir`. A 1 ms request timeout makes API requests time out
/// and be retried, because a fault-free demo never sets
/// `fim_api_retries_total` and the registry omits metrics without samples.
fn demo_config(dir: &Path, port: u16) -> String {
    let output = format!("{}/", dir.display());
    DEMO_CONFIG
        .replace("127.0.0.1:9598", &format!("127.0.0.1:{port}"))
        .replace("demo-output/", &output)
        .replace(
            "lag = \"1s\"\n",
            "lag = \"1s\"\nrequest_timeout = \"1ms\"\nmax_backoff = \"100ms\"\n",
        )
}

/// Collects the metric names of every panel query of the dashboard. Histogram queries
/// name the `_bucket` series, which `/metrics` serves under that name too.
fn dashboard_metric_names() -> BTreeSet<String> {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    let mut names = BTreeSet::new();
    for panel in panels {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            names.extend(
                expr.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                    .filter(|token| token.starts_with("fim_"))
                    .map(str::to_owned),
            );
        }
    }
    names
}

/// Collects the sample names of a Prometheus text exposition.
fn exported_metric_names(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// Sends `GET path` to 127.0.0.1:`port` and returns the body of a 200
/// response, or `None` while the server is not up yet.
fn http_get(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    Some(body.to_owned())
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
