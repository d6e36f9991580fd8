//! The syslog sink against real syslog-ng instances. Each test starts its
//! own syslog-ng as a child process, with its own config, pid, control and
//! persist files, on a free loopback port. syslog-ng writes every message
//! it receives to a file the test reads back. `scripts/test.sh` installs
//! syslog-ng.
//!
//! syslog-ng's sources use `flags(no-parse)` and the file template
//! `$MSG\n`, so each line of the file is exactly one message as the sink
//! framed it: the framing is checked by syslog-ng itself, and the content
//! byte for byte against the encoder's output.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fim_model::{Record, RecordKind, SharedRecord};
use fim_sinks::syslog::SyslogConfig;
use fim_sinks::{Acknowledge, DeadLetter, Delivery, SinkContext, SinkMetrics, SinkSpec};
use serde_json::Value;
use tokio::sync::watch;

const TRICKY_EVENTS: &str = include_str!("../../../fixtures/qualys-fim/edge/tricky_events.json");

/// How long the tests wait for syslog-ng to start or for messages to land.
const DEADLINE: Duration = Duration::from_secs(60);

fn syslog_ng_binary() -> PathBuf {
    for candidate in [
        "/usr/sbin/syslog-ng",
        "/usr/bin/syslog-ng",
        "/sbin/syslog-ng",
    ] {
        if Path::new(candidate).exists() {
            return PathBuf::from(candidate);
        }
    }
    panic!(
        "syslog-ng is not installed: run scripts/test.sh, which installs it (Debian package syslog-ng-core)"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A syslog-ng child process; killed when dropped.
struct SyslogNg {
    dir: PathBuf,
    port: u16,
    source: String,
    child: Option<Child>,
}

impl SyslogNg {
    /// Starts syslog-ng with `source`, a source driver whose `port()` is
    /// `{port}`, writing to `<dir>/received.log`.
    async fn start(dir: &Path, source: &str) -> Self {
        let mut server = Self {
            dir: dir.to_owned(),
            port: free_port(),
            source: source.to_owned(),
            child: None,
        };
        server.launch().await;
        server
    }

    fn output(&self) -> PathBuf {
        self.dir.join("received.log")
    }

    async fn launch(&mut self) {
        let source = self.source.replace("{port}", &self.port.to_string());
        let config = format!(
            "@version: 3.38\n\
             options {{ log-msg-size(262144); keep-timestamp(no); }};\n\
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
            .stderr(std::fs::File::create(self.dir.join("syslog-ng.stderr")).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);

        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            let stderr =
                std::fs::read_to_string(self.dir.join("syslog-ng.stderr")).unwrap_or_default();
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("syslog-ng exited with {status}: {stderr}");
            }
            assert!(
                start.elapsed() < DEADLINE,
                "syslog-ng did not listen: {stderr}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops syslog-ng with SIGTERM, as an operator's restart would.
    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let status = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status()
                .unwrap();
            assert!(status.success());
            child.wait().unwrap();
        }
    }

    /// Lines received so far.
    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.output())
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Waits until the file contains every message of `expected`.
    async fn wait_for(&self, expected: &[String]) -> Vec<String> {
        let start = Instant::now();
        loop {
            let lines = self.lines();
            let received: std::collections::HashSet<&String> = lines.iter().collect();
            if expected.iter().all(|message| received.contains(message)) {
                return lines;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{} of {} messages arrived",
                expected
                    .iter()
                    .filter(|message| received.contains(message))
                    .count(),
                expected.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
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

/// Certificates generated for one test: a CA and a server certificate for
/// `localhost` and 127.0.0.1 signed by it.
struct Certificates {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

fn certificates(dir: &Path) -> Certificates {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fim-forwarder test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();

    let server_key = rcgen::KeyPair::generate().unwrap();
    let mut server_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server_params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let server_cert = server_params.signed_by(&server_key, &ca).unwrap();

    let paths = Certificates {
        ca: dir.join("ca.pem"),
        server_cert: dir.join("server.pem"),
        server_key: dir.join("server.key"),
    };
    std::fs::write(&paths.ca, ca.pem()).unwrap();
    std::fs::write(&paths.server_cert, server_cert.pem()).unwrap();
    std::fs::write(&paths.server_key, server_key.serialize_pem()).unwrap();
    paths
}

fn tls_options(certificates: &Certificates) -> String {
    format!(
        "tls(key-file(\"{}\") cert-file(\"{}\") peer-verify(optional-untrusted))",
        certificates.server_key.display(),
        certificates.server_cert.display()
    )
}

#[derive(Debug, Default)]
struct AckCount(AtomicUsize);

impl Acknowledge for AckCount {
    fn ack(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn records(generated: usize) -> Vec<SharedRecord> {
    let values: Vec<Value> = serde_json::from_str(TRICKY_EVENTS).unwrap();
    let mut records: Vec<SharedRecord> = values
        .iter()
        .map(|value| {
            Record::from_json(RecordKind::Event, &value.to_string())
                .unwrap()
                .shared()
        })
        .collect();
    for index in 0..generated {
        let text = format!(
            r#"{{"id":"gen-{index:05}","dateTime":"2024-05-02T00:00:00.000+0000","fullPath":"/srv/data/file-{index}.txt","name":"file-{index}.txt","action":"Content","severity":2,"asset":{{"hostname":"web-{index}"}}}}"#
        );
        records.push(
            Record::from_json(RecordKind::Event, &text)
                .unwrap()
                .shared(),
        );
    }
    records
}

/// A running sink and what the test needs to check it.
struct Running {
    sender: tokio::sync::mpsc::Sender<Delivery>,
    handle: fim_sinks::SinkHandle,
    metrics: Arc<SinkMetrics>,
    acks: Arc<AckCount>,
    /// The message each record should arrive as.
    expected: Mutex<Vec<String>>,
    encoder: Box<dyn fim_transform::Encoder>,
    _dir: tempfile::TempDir,
}

fn start_sink(table: &str) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let spec = SinkSpec::from_table(0, toml::from_str(table).unwrap()).unwrap();
    let config: SyslogConfig = spec.options().unwrap();
    let message_encoder = config.message_encoder(&spec.encoder).unwrap();
    let (_reopen_tx, reopen) = watch::channel(0);
    let metrics = Arc::new(SinkMetrics::default());
    let context = SinkContext {
        name: spec.name.clone(),
        encoder: fim_sinks::spec::encoder(&spec).unwrap(),
        dead_letter: Arc::new(DeadLetter::new(&spec.name, dir.path().join("dead.ndjson"))),
        metrics: metrics.clone(),
        reopen,
    };
    let sink = fim_sinks::build(&spec, context).unwrap();
    let (sender, handle) = fim_sinks::spawn(spec.name.clone(), sink, metrics.clone(), 64);
    Running {
        sender,
        handle,
        metrics,
        acks: Arc::new(AckCount::default()),
        expected: Mutex::new(Vec::new()),
        encoder: fim_transform::build(&message_encoder).unwrap(),
        _dir: dir,
    }
}

impl Running {
    async fn send(&self, records: &[SharedRecord]) {
        for record in records {
            let mut message = Vec::new();
            self.encoder.encode(record, &mut message).unwrap();
            self.expected
                .lock()
                .unwrap()
                .push(String::from_utf8(message).unwrap());
            let delivery = Delivery {
                record: record.clone(),
                ack: self.acks.clone(),
            };
            self.sender.send(delivery).await.unwrap();
        }
    }

    fn expected(&self) -> Vec<String> {
        self.expected.lock().unwrap().clone()
    }
}

fn sink_table(address: &str, transport: &str, framing: &str, format: &str, extra: &str) -> String {
    format!(
        r#"
        name = "siem"
        type = "syslog"
        encoding = "cef"
        address = "{address}"
        transport = "{transport}"
        framing = "{framing}"
        format = "{format}"
        [syslog]
        pen = 99999
        [retry]
        initial_backoff = "50ms"
        max_backoff = "500ms"
        {extra}
        "#
    )
}

fn counts(lines: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for line in lines {
        *counts.entry(line.as_str()).or_insert(0) += 1;
    }
    counts
}

/// Sends the tricky fixture records and `generated` more, checks that
/// each arrived whole and exactly once, then closes the sink.
async fn round_trip(server: &SyslogNg, table: &str, generated: usize) {
    let records = records(generated);
    let running = start_sink(table);
    running.send(&records).await;
    let expected = running.expected();
    let lines = server.wait_for(&expected).await;

    let received = counts(&lines);
    for message in &expected {
        assert_eq!(
            received.get(message.as_str()),
            Some(&1),
            "arrivals of {message}"
        );
    }
    assert_eq!(lines.len(), expected.len(), "lines received");
    assert_eq!(running.acks.0.load(Ordering::SeqCst), records.len());
    assert_eq!(running.metrics.snapshot().dead_lettered, 0);
    let Running { sender, handle, .. } = running;
    drop(sender);
    assert!(handle.flush_and_close(Duration::from_secs(10)).await);
}

#[tokio::test]
async fn tcp_octet_counting_rfc5424_arrives_whole_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = SyslogNg::start(
        dir.path(),
        "syslog(ip(127.0.0.1) port({port}) transport(tcp) flags(no-parse));",
    )
    .await;
    let address = format!("127.0.0.1:{}", server.port);
    let table = sink_table(&address, "tcp", "octet-counting", "rfc5424", "");
    round_trip(&server, &table, 500).await;
}

#[tokio::test]
async fn tcp_newline_rfc3164_arrives_whole_once() {
    let dir = tempfile::tempdir().unwrap();
    let server = SyslogNg::start(
        dir.path(),
        "network(ip(127.0.0.1) port({port}) transport(tcp) flags(no-parse));",
    )
    .await;
    let address = format!("127.0.0.1:{}", server.port);
    let table = sink_table(&address, "tcp", "newline", "rfc3164", "");
    round_trip(&server, &table, 500).await;
}

#[tokio::test]
async fn tls_octet_counting_rfc3164_arrives_whole_once() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates(dir.path());
    let source = format!(
        "syslog(ip(127.0.0.1) port({{port}}) transport(tls) {} flags(no-parse));",
        tls_options(&certificates)
    );
    let server = SyslogNg::start(dir.path(), &source).await;
    let address = format!("localhost:{}", server.port);
    let extra = format!("[tls]\nca_file = \"{}\"", certificates.ca.display());
    let table = sink_table(&address, "tls", "octet-counting", "rfc3164", &extra);
    round_trip(&server, &table, 500).await;
}

#[tokio::test]
async fn tls_newline_rfc5424_arrives_whole_once() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates(dir.path());
    let source = format!(
        "network(ip(127.0.0.1) port({{port}}) transport(tls) {} flags(no-parse));",
        tls_options(&certificates)
    );
    let server = SyslogNg::start(dir.path(), &source).await;
    // The certificate names 127.0.0.1 too, and the name checked is the host
    // connected to.
    let address = format!("127.0.0.1:{}", server.port);
    let extra = format!("[tls]\nca_file = \"{}\"", certificates.ca.display());
    let table = sink_table(&address, "tls", "newline", "rfc5424", &extra);
    round_trip(&server, &table, 500).await;
}

#[tokio::test]
async fn tls_untrusted_server_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates(dir.path());
    let source = format!(
        "syslog(ip(127.0.0.1) port({{port}}) transport(tls) {} flags(no-parse));",
        tls_options(&certificates)
    );
    let server = SyslogNg::start(dir.path(), &source).await;
    let address = format!("localhost:{}", server.port);
    // No ca_file: the system roots do not include the test CA.
    let table = sink_table(&address, "tls", "octet-counting", "rfc5424", "");
    let running = start_sink(&table);
    running.send(&records(0)[..1]).await;

    while running.metrics.snapshot().retried < 3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(
        running.acks.0.load(Ordering::SeqCst),
        0,
        "acknowledged without a trusted server"
    );
    assert!(
        server.lines().is_empty(),
        "a message reached the untrusted server"
    );
    let Running { sender, handle, .. } = running;
    drop(sender);
    assert!(!handle.flush_and_close(Duration::from_millis(100)).await);
}

#[tokio::test]
async fn probe_checks_tls_trust() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates(dir.path());
    let source = format!(
        "syslog(ip(127.0.0.1) port({{port}}) transport(tls) {} flags(no-parse));",
        tls_options(&certificates)
    );
    let server = SyslogNg::start(dir.path(), &source).await;
    let address = format!("localhost:{}", server.port);
    let trusted: SyslogConfig = toml::from_str(&format!(
        "address = \"{address}\"\ntransport = \"tls\"\n[tls]\nca_file = \"{}\"",
        certificates.ca.display()
    ))
    .unwrap();
    let untrusted: SyslogConfig =
        toml::from_str(&format!("address = \"{address}\"\ntransport = \"tls\"")).unwrap();

    assert!(fim_sinks::syslog::probe(&trusted).await.is_ok());
    let err = fim_sinks::syslog::probe(&untrusted).await.unwrap_err();
    assert!(err.to_string().contains("certificate"), "{err}");
    assert!(server.lines().is_empty());
}

#[tokio::test]
async fn tls_wrong_server_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates(dir.path());
    let source = format!(
        "syslog(ip(127.0.0.1) port({{port}}) transport(tls) {} flags(no-parse));",
        tls_options(&certificates)
    );
    let server = SyslogNg::start(dir.path(), &source).await;
    let address = format!("127.0.0.1:{}", server.port);
    let extra = format!(
        "[tls]\nca_file = \"{}\"\nserver_name = \"siem.example.org\"",
        certificates.ca.display()
    );
    let table = sink_table(&address, "tls", "octet-counting", "rfc5424", &extra);
    let running = start_sink(&table);
    running.send(&records(0)[..1]).await;

    while running.metrics.snapshot().retried < 3 {
        tokio::task::yield_now().await;
    }
    assert_eq!(running.acks.0.load(Ordering::SeqCst), 0);
    assert!(server.lines().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receiver_stopped_30s_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = SyslogNg::start(
        dir.path(),
        "syslog(ip(127.0.0.1) port({port}) transport(tcp) flags(no-parse));",
    )
    .await;
    let address = format!("127.0.0.1:{}", server.port);
    let table = sink_table(&address, "tcp", "octet-counting", "rfc5424", "")
        .replace("[syslog]", "resend_window = \"10s\"\n[syslog]");
    let running = Arc::new(start_sink(&table));
    let all = records(600);
    let (before, after) = all.split_at(300);

    running.send(before).await;
    server.wait_for(&running.expected()).await;
    server.stop();

    // Records keep coming while the receiver is down, and wait in the sink.
    let feeder = {
        let running = running.clone();
        let after = after.to_vec();
        tokio::spawn(async move { running.send(&after).await })
    };
    tokio::time::sleep(Duration::from_secs(30)).await;
    server.launch().await;
    feeder.await.unwrap();

    let expected = running.expected();
    let lines = server.wait_for(&expected).await;
    let received = counts(&lines);
    for message in &expected {
        assert!(received.contains_key(message.as_str()), "lost: {message}");
    }
    let duplicates: usize = received.values().map(|count| count - 1).sum();
    // Only records written in the resend window before the stop may repeat.
    assert!(duplicates <= 300, "{duplicates} duplicates");
    assert_eq!(running.acks.0.load(Ordering::SeqCst), all.len());
}
