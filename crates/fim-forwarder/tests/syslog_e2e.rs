//! The `fim-forwarder` binary from the simulator to syslog-ng. Each test
//! starts its own syslog-ng as a child process with a generated config on a
//! free loopback port. syslog-ng parses each RFC 5424 message and writes its
//! MSG (the record's JSON) to a file the test reads back.
//! `scripts/test.sh` installs syslog-ng.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Running, lines, sim_config, start_sim, wait_until, write_config};
use fim_sim::Stream;
use nix::sys::signal::Signal;

fn syslog_ng_binary() -> PathBuf {
    for candidate in ["/usr/sbin/syslog-ng", "/usr/bin/syslog-ng"] {
        if Path::new(candidate).is_file() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "syslog-ng is not installed: run scripts/test.sh, which installs it (Debian package syslog-ng-core)"
    );
}

/// A syslog-ng child on a free loopback port; killed when dropped.
struct SyslogNg {
    dir: PathBuf,
    port: u16,
    source: String,
    child: Option<Child>,
}

impl SyslogNg {
    /// Starts syslog-ng with `source`, a source driver whose port is
    /// `{port}`.
    fn start(dir: &Path, source: &str) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut server = Self {
            dir: dir.to_owned(),
            port,
            source: source.to_owned(),
            child: None,
        };
        server.resume();
        server
    }

    fn output(&self) -> PathBuf {
        self.dir.join("received.log")
    }

    fn resume(&mut self) {
        let source = self.source.replace("{port}", &self.port.to_string());
        let config = format!(
            "@version: 3.38\n\
             options {{ log-msg-size(262144); }};\n\
             source s_test {{ {source} }};\n\
             destination d_test {{ file(\"{}\" template(\"$MSG\\n\") flush-lines(1)); }};\n\
             log {{ source(s_test); destination(d_test); }};\n",
            self.output().display()
        );
        let config_path = self.dir.join("syslog-ng.conf");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new(syslog_ng_binary())
            .arg("-F")
            .arg("--no-caps")
            .arg("-f")
            .arg(&config_path)
            .arg("-p")
            .arg(self.dir.join("syslog-ng.pid"))
            .arg("-c")
            .arg(self.dir.join("syslog-ng.ctl"))
            .arg("-R")
            .arg(self.dir.join("syslog-ng.persist"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_until(Duration::from_secs(20), "syslog-ng to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok()
        });
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            nix::sys::signal::kill(pid, Signal::SIGTERM).unwrap();
            child.wait().unwrap();
        }
    }

    /// Record ids of the received messages, with how often each arrived.
    fn received_ids(&self) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for line in lines(&self.output()) {
            let record: serde_json::Value = serde_json::from_str(&line)
                .unwrap_or_else(|err| panic!("message is not whole JSON ({err}): {line}"));
            let id = record["id"].as_str().unwrap().to_owned();
            *counts.entry(id).or_insert(0) += 1;
        }
        counts
    }
}

impl Drop for SyslogNg {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn syslog_sink(address: &str, transport: &str, extra: &str) -> String {
    format!(
        "[[sinks]]\nname = \"siem\"\ntype = \"syslog\"\nencoding = \"json\"\naddress = \"{address}\"\ntransport = \"{transport}\"\nframing = \"octet-counting\"\nformat = \"rfc5424\"\n[sinks.syslog]\npen = 99999\n[sinks.retry]\nmax_backoff = \"1s\"\n{extra}"
    )
}

/// Writes a CA and a server certificate for `localhost` signed by it;
/// returns the CA, certificate and key paths.
fn certificates(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca.pem()).unwrap();
    std::fs::write(&paths.1, certificate.pem()).unwrap();
    std::fs::write(&paths.2, key.serialize_pem()).unwrap();
    paths
}

fn assert_each_once(received: &BTreeMap<String, usize>, expected: &HashSet<String>) {
    let missing: Vec<&String> = expected
        .iter()
        .filter(|id| !received.contains_key(*id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} ids missing, first {:?}",
        missing.len(),
        missing.first()
    );
    let repeated: Vec<(&String, &usize)> =
        received.iter().filter(|(_, count)| **count > 1).collect();
    assert!(
        repeated.is_empty(),
        "ids received more than once: {repeated:?}"
    );
}

#[test]
fn tls_delivers_every_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let source = format!(
        "syslog(ip(127.0.0.1) port({{port}}) transport(tls) tls(key-file(\"{}\") cert-file(\"{}\") peer-verify(optional-untrusted)));",
        key.display(),
        cert.display()
    );
    let server = SyslogNg::start(dir.path(), &source);
    let sim = start_sim(fim_sim::SimConfig {
        incident_every: 0,
        ignored_share: 0.0,
        tricky_share: 0.05,
        ..sim_config(2_000)
    });
    let sink = syslog_sink(
        &format!("localhost:{}", server.port),
        "tls",
        &format!("[sinks.tls]\nca_file = \"{}\"\n", ca.display()),
    );
    let config = write_config(dir.path(), &sim.handle, r#"["events"]"#, "", &sink);
    let expected: HashSet<String> = sim.handle.visible_ids(Stream::Events).into_iter().collect();
    assert!(
        expected.len() >= 1_000,
        "the simulator lists {} events",
        expected.len()
    );

    let mut running = Running::start(&config, dir.path().join("stderr.log"));
    wait_until(Duration::from_secs(120), "every event at syslog-ng", || {
        lines(&server.output()).len() >= expected.len()
    });
    running.signal(Signal::SIGTERM);
    assert_eq!(
        running.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        running.stderr()
    );
    assert_each_once(&server.received_ids(), &expected);
}

#[test]
fn receiver_stopped_30s_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = SyslogNg::start(
        dir.path(),
        "syslog(ip(127.0.0.1) port({port}) transport(tcp));",
    );
    let sim = start_sim(fim_sim::SimConfig {
        incident_every: 0,
        ignored_share: 0.0,
        latency: Duration::from_millis(50),
        ..sim_config(10_000)
    });
    let sink = syslog_sink(&format!("127.0.0.1:{}", server.port), "tcp", "");
    let config = write_config(dir.path(), &sim.handle, r#"["events"]"#, "", &sink);
    let expected: HashSet<String> = sim.handle.visible_ids(Stream::Events).into_iter().collect();
    assert!(
        expected.len() >= 1_000,
        "the simulator lists {} events",
        expected.len()
    );

    let mut running = Running::start(&config, dir.path().join("stderr.log"));
    wait_until(
        Duration::from_secs(120),
        "part of the backlog at syslog-ng",
        || lines(&server.output()).len() >= 1_000,
    );
    server.stop();
    // The outage lasts 30 s; the checks do not depend on its length.
    std::thread::sleep(Duration::from_secs(30));
    assert!(
        running.child.try_wait().unwrap().is_none(),
        "{}",
        running.stderr()
    );
    server.resume();

    let deadline = std::time::Instant::now() + Duration::from_secs(180);
    loop {
        let received = server.received_ids();
        let missing = expected
            .iter()
            .filter(|id| !received.contains_key(*id))
            .count();
        if missing == 0 {
            break;
        }
        if std::time::Instant::now() > deadline {
            let stderr = running.stderr();
            let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
            panic!(
                "{missing} of {} events missing after the restart; forwarder log tail: {tail:#?}",
                expected.len()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    running.signal(Signal::SIGTERM);
    assert_eq!(
        running.wait_exit(Duration::from_secs(20)),
        Some(0),
        "{}",
        running.stderr()
    );
    let received = server.received_ids();
    let missing = expected
        .iter()
        .filter(|id| !received.contains_key(*id))
        .count();
    assert_eq!(missing, 0, "events lost");
}
