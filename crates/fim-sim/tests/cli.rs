//! The `fim-sim` binary: flags, settings file, the first stdout line that
//! scripts wait for, and clear errors for bad values.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sim() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fim-sim"))
}

/// Starts the binary and returns it with the base URL from its first line.
fn spawn(args: &[&str]) -> (Running, String) {
    let mut child = sim()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first).unwrap();
    let url = first
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
        .to_owned();
    (Running(child), url)
}

#[test]
fn help_explains_every_flag() {
    let output = sim().arg("--help").output().unwrap();
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for flag in [
        "--listen",
        "--username",
        "--password",
        "--seed",
        "--backlog",
        "--backlog-span",
        "--rate",
        "--late-share",
        "--late-max",
        "--ignored-share",
        "--incident-every",
        "--tricky-share",
        "--rate-limit",
        "--concurrency-limit",
        "--blocked-status",
        "--token-ttl",
        "--fail-rate",
        "--latency",
        "--truncate-rate",
        "--reset-rate",
        "--config",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
}

#[tokio::test]
async fn port_zero_prints_the_address_and_serves() {
    let (_sim, url) = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--backlog",
        "50",
        "--password",
        "pw",
    ]);
    let http = reqwest::Client::new();
    let token = http
        .post(format!("{url}/auth"))
        .form(&[("username", "demo"), ("password", "pw"), ("token", "true")])
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let page: serde_json::Value = http
        .post(format!("{url}/fim/v2/events/search"))
        .bearer_auth(token)
        .json(&serde_json::json!({ "pageSize": 50 }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!page.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn settings_file_applies_and_flags_win() {
    let dir = std::env::temp_dir().join(format!("fim-sim-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sim.toml");
    std::fs::write(
        &file,
        "backlog = 10\nrate-limit = \"7/60\"\nconcurrency_limit = 3\nusername = \"from-file\"\n",
    )
    .unwrap();
    let (_sim, url) = spawn(&[
        "--listen",
        "127.0.0.1:0",
        "--config",
        file.to_str().unwrap(),
        "--username",
        "from-flag",
    ]);
    let settings: serde_json::Value = reqwest::get(format!("{url}/__sim/faults"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(settings["backlog"], 10);
    assert_eq!(settings["rate-limit"], "7/60");
    assert_eq!(settings["concurrency-limit"], 3);
    assert_eq!(settings["username"], "from-flag");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_values_name_the_flag_and_the_fix() {
    let cases: [(&[&str], &str); 4] = [
        (&["--rate-limit", "300"], "CALLS/SECONDS"),
        (&["--late-share", "1.5"], "late-share"),
        (&["--token-ttl", "soon"], "30s"),
        (&["--blocked-status", "418"], "409 or 429"),
    ];
    for (args, expected) in cases {
        let output = sim().args(args).output().unwrap();
        assert!(!output.status.success(), "{args:?} was accepted");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

#[test]
fn unknown_key_in_settings_file_is_named() {
    let dir = std::env::temp_dir().join(format!("fim-sim-cli-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("sim.toml");
    std::fs::write(&file, "backlgo = 10\n").unwrap();
    let output = sim()
        .args(["--config", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("backlgo"), "{stderr}");
    std::fs::remove_dir_all(dir).unwrap();
}
