//! Security checks of the binary: TLS verification is on by default for the
//! Qualys API and every TLS sink, secrets stay out of every output, the
//! metrics endpoint binds to loopback, and state files are private.
//!
//! TLS servers are loopback listeners presenting a certificate from a CA
//! generated per test, which no system or bundled root store trusts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::{Running, forwarder, sim_config, start_sim, wait_until, write_config};
use nix::sys::signal::Signal;

const EVENTS: &str = "[\"events\"]";

/// A CA made for one test, and a server certificate it signed for
/// `localhost` and 127.0.0.1.
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
        .push(rcgen::DnType::CommonName, "fim-forwarder security test CA");
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

/// A TLS listener on 127.0.0.1 that relays each connection to `backend`,
/// or keeps it open and discards its input when there is none.
struct TlsFront {
    address: SocketAddr,
    /// Handshakes that completed.
    handshakes: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl TlsFront {
    fn start(certificates: &Certificates, backend: Option<SocketAddr>) -> Self {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let cert = CertificateDer::from_pem_file(&certificates.server_cert).unwrap();
        let key = PrivateKeyDer::from_pem_file(&certificates.server_key).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .unwrap();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let address = listener.local_addr().unwrap();
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counter = handshakes.clone();
        runtime.spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(socket).await else {
                        return;
                    };
                    counter.fetch_add(1, Ordering::SeqCst);
                    match backend {
                        Some(backend) => {
                            if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                            }
                        }
                        None => {
                            let _ = tokio::io::copy(&mut tls, &mut tokio::io::sink()).await;
                        }
                    }
                });
            }
        });
        Self {
            address,
            handshakes,
            _runtime: runtime,
        }
    }
}

/// Waits up to `limit` for `needle` in the forwarder's log; on a timeout
/// the failure shows the end of the log.
fn wait_for_log(running: &Running, needle: &str, limit: Duration) {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let logs = running.stderr();
        if logs.contains(needle) {
            return;
        }
        if std::time::Instant::now() > deadline {
            let start = logs.len().saturating_sub(4_000);
            let tail = logs.get(start..).unwrap_or(&logs);
            panic!("no {needle:?} in the log after {limit:?}; it ends with:\n{tail}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Output of a finished command: exit success and stdout plus stderr.
fn run_to_end(command: &mut Command) -> (bool, String) {
    let output = command.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn check(config: &Path) -> (bool, String) {
    run_to_end(forwarder().args(["check", "--config"]).arg(config))
}

/// Rewrites the generated configuration's `[source]` for an HTTPS gateway.
fn point_source_at(config: &Path, url: &str, source_extra: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("base_url = \"").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    let text = format!(
        "{}base_url = \"{url}\"\n{source_extra}{}",
        &text[..start],
        &text[end..]
    );
    std::fs::write(config, text).unwrap();
}

fn file_sink(dir: &Path) -> String {
    common::json_sink("out", &dir.join("events.out"))
}

#[test]
fn qualys_untrusted_certificate_rejected() {
    let sim = start_sim(sim_config(20));
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates(dir.path());
    let front = TlsFront::start(&certificates, Some(sim.handle.addr()));
    let url = format!("https://127.0.0.1:{}", front.address.port());
    let config = write_config(dir.path(), &sim.handle, EVENTS, "", &file_sink(dir.path()));

    point_source_at(&config, &url, "");
    let (ok, output) = check(&config);
    assert!(!ok, "check trusted an unknown CA:\n{output}");
    assert!(
        output.contains("certificate"),
        "no certificate error:\n{output}"
    );
    assert!(
        output.contains("source.ca_file"),
        "no hint at the fix:\n{output}"
    );
    assert_eq!(front.handshakes.load(Ordering::SeqCst), 0);

    let ca_line = format!("ca_file = \"{}\"\n", certificates.ca.display());
    point_source_at(&config, &url, &ca_line);
    let (ok, output) = check(&config);
    assert!(ok, "check failed with the CA configured:\n{output}");
    assert!(front.handshakes.load(Ordering::SeqCst) > 0);

    point_source_at(&config, &url, "danger_accept_invalid_certs = true\n");
    let (ok, output) = check(&config);
    assert!(ok, "check failed with verification switched off:\n{output}");
}

#[test]
fn run_stops_on_untrusted_gateway() {
    let sim = start_sim(sim_config(20));
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates(dir.path());
    let front = TlsFront::start(&certificates, Some(sim.handle.addr()));
    let config = write_config(dir.path(), &sim.handle, EVENTS, "", &file_sink(dir.path()));
    point_source_at(
        &config,
        &format!("https://127.0.0.1:{}", front.address.port()),
        "",
    );

    let running = Running::start(&config, dir.path().join("stderr.log"));
    wait_for_log(&running, "source.ca_file", Duration::from_secs(30));
    assert!(common::lines(&dir.path().join("events.out")).is_empty());
    assert_eq!(front.handshakes.load(Ordering::SeqCst), 0);
}

/// A plain HTTP collector behind the TLS front: counts requests and returns 200.
struct Collector {
    address: SocketAddr,
    requests: Arc<AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

fn start_collector() -> Collector {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let requests = Arc::new(AtomicUsize::new(0));
    let counter = requests.clone();
    let app = axum::Router::new().route(
        "/ingest",
        axum::routing::post(move || {
            counter.fetch_add(1, Ordering::SeqCst);
            async { "{}" }
        }),
    );
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let address = listener.local_addr().unwrap();
    runtime.spawn(async move { axum::serve(listener, app).await });
    Collector {
        address,
        requests,
        _runtime: runtime,
    }
}

fn http_sink(url: &str, tls: &str) -> String {
    format!(
        "[[sinks]]\nname = \"collector\"\ntype = \"http\"\nurl = \"{url}\"\nencoding = \"json\"\n\
         [sinks.batch]\nmax_events = 50\ntimeout = \"100ms\"\n[sinks.retry]\nmax_backoff = \"200ms\"\n{tls}"
    )
}

#[test]
fn http_sink_rejects_untrusted_certificate() {
    let sim = start_sim(sim_config(100));
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates(dir.path());
    let collector = start_collector();
    let front = TlsFront::start(&certificates, Some(collector.address));
    let url = format!("https://127.0.0.1:{}/ingest", front.address.port());

    let config = write_config(dir.path(), &sim.handle, EVENTS, "", &http_sink(&url, ""));
    let running = Running::start(&config, dir.path().join("untrusted.log"));
    wait_for_log(&running, "UnknownIssuer", Duration::from_secs(30));
    drop(running);
    assert_eq!(collector.requests.load(Ordering::SeqCst), 0);
    assert_eq!(front.handshakes.load(Ordering::SeqCst), 0);

    let tls = format!("[sinks.tls]\nca_file = \"{}\"\n", certificates.ca.display());
    let trusted_dir = dir.path().join("trusted");
    std::fs::create_dir(&trusted_dir).unwrap();
    let config = write_config(
        &trusted_dir,
        &sim.handle,
        EVENTS,
        "",
        &http_sink(&url, &tls),
    );
    let _running = Running::start(&config, dir.path().join("trusted.log"));
    wait_until(Duration::from_secs(30), "a delivered batch", || {
        collector.requests.load(Ordering::SeqCst) > 0
    });
}

fn syslog_sink(address: SocketAddr, tls: &str) -> String {
    format!(
        "[[sinks]]\nname = \"siem\"\ntype = \"syslog\"\nencoding = \"syslog_rfc3164\"\n\
         address = \"{address}\"\ntransport = \"tls\"\n{tls}"
    )
}

#[test]
fn syslog_sink_rejects_untrusted_certificate() {
    let sim = start_sim(sim_config(20));
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates(dir.path());
    let front = TlsFront::start(&certificates, None);

    let config = write_config(
        dir.path(),
        &sim.handle,
        EVENTS,
        "",
        &syslog_sink(front.address, ""),
    );
    let (ok, output) = check(&config);
    assert!(!ok, "check trusted an unknown CA:\n{output}");
    assert!(
        output.contains("certificate"),
        "no certificate error:\n{output}"
    );
    assert_eq!(front.handshakes.load(Ordering::SeqCst), 0);

    let tls = format!("[sinks.tls]\nca_file = \"{}\"\n", certificates.ca.display());
    let config = write_config(
        dir.path(),
        &sim.handle,
        EVENTS,
        "",
        &syslog_sink(front.address, &tls),
    );
    let (ok, output) = check(&config);
    assert!(ok, "check failed with the CA configured:\n{output}");
    assert!(front.handshakes.load(Ordering::SeqCst) > 0);
}

#[test]
fn kafka_ssl_rejects_untrusted_certificate() {
    let sim = start_sim(sim_config(20));
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates(dir.path());
    let front = TlsFront::start(&certificates, None);
    let sink = format!(
        "[[sinks]]\nname = \"kafka\"\ntype = \"kafka\"\nencoding = \"json\"\n\
         brokers = [\"{}\"]\ntopic = \"qualys.fim.{{stream}}\"\n\
         [sinks.librdkafka]\n\"security.protocol\" = \"ssl\"\n",
        front.address
    );
    let config = write_config(dir.path(), &sim.handle, EVENTS, "", &sink);
    let running = Running::start(&config, dir.path().join("stderr.log"));
    wait_for_log(
        &running,
        "certificate verify failed",
        Duration::from_secs(60),
    );
    assert_eq!(front.handshakes.load(Ordering::SeqCst), 0);
}

/// A `nats-server` with TLS on a free loopback port.
struct TlsNatsServer {
    port: u16,
    child: Child,
    _store: tempfile::TempDir,
}

impl TlsNatsServer {
    fn start(dir: &Path, certificates: &Certificates) -> Self {
        let port = free_port();
        let store = tempfile::tempdir().unwrap();
        let config = dir.join("nats-server.conf");
        std::fs::write(
            &config,
            format!(
                "listen: \"127.0.0.1:{port}\"\njetstream {{ store_dir: \"{}\" }}\n\
                 tls {{ cert_file: \"{}\"\n key_file: \"{}\" }}\n",
                store.path().display(),
                certificates.server_cert.display(),
                certificates.server_key.display()
            ),
        )
        .unwrap();
        let child = Command::new(nats_server_binary())
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until(Duration::from_secs(20), "nats-server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        Self {
            port,
            child,
            _store: store,
        }
    }
}

impl Drop for TlsNatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

fn nats_sink(port: u16, tls: &str) -> String {
    format!(
        "[[sinks]]\nname = \"nats\"\ntype = \"nats\"\nencoding = \"json\"\n\
         servers = [\"tls://127.0.0.1:{port}\"]\nsubject = \"qualys.fim.{{stream}}\"\n\
         stream = \"SECURITY_TEST\"\nack_timeout = \"2s\"\nconnect_timeout = \"2s\"\n{tls}"
    )
}

/// Ids acknowledged at the committed position of the events stream, read
/// from the checkpoint file; they appear only after a sink acknowledged.
fn acknowledged_ids(state: &Path) -> usize {
    let Ok(text) = std::fs::read_to_string(state.join("checkpoint.json")) else {
        return 0;
    };
    let value: serde_json::Value = serde_json::from_str(&text).unwrap();
    value["streams"]["events"]["lanes"]["processedTime"]["ids"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn nats_sink_rejects_untrusted_certificate() {
    let sim = start_sim(sim_config(50));
    let dir = tempfile::tempdir().unwrap();
    let certificates = certificates(dir.path());
    let server = TlsNatsServer::start(dir.path(), &certificates);

    let config = write_config(
        dir.path(),
        &sim.handle,
        EVENTS,
        "",
        &nats_sink(server.port, ""),
    );
    let running = Running::start(&config, dir.path().join("untrusted.log"));
    // NOTE: async-nats (0.52) reports a rejected certificate only as
    // "nats: IO error", so the log cannot name the certificate here.
    wait_for_log(
        &running,
        "failed to find or create the jetstream stream",
        Duration::from_secs(30),
    );
    drop(running);
    let logs = std::fs::read_to_string(dir.path().join("untrusted.log")).unwrap();
    assert!(!logs.contains("connected to the nats server"), "{logs}");
    assert_eq!(acknowledged_ids(&dir.path().join("state")), 0);

    let trusted_dir = dir.path().join("trusted");
    std::fs::create_dir(&trusted_dir).unwrap();
    let tls = format!("[sinks.tls]\nca_file = \"{}\"\n", certificates.ca.display());
    let config = write_config(
        &trusted_dir,
        &sim.handle,
        EVENTS,
        "",
        &nats_sink(server.port, &tls),
    );
    let running = Running::start(&config, trusted_dir.join("stderr.log"));
    wait_for_log(
        &running,
        "connected to the nats server",
        Duration::from_secs(30),
    );
    wait_until(Duration::from_secs(60), "acknowledged records", || {
        acknowledged_ids(&trusted_dir.join("state")) > 0
    });
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

const HEC_TOKEN: &str = "Hec-Token-5150-secret";
const NATS_TOKEN: &str = "Nats-Token-8086-secret";
const KAFKA_PASSWORD: &str = "Kafka-Sasl-6502-secret";

/// Secrets of the source and of every sink type that takes one, as
/// environment variables the configuration refers to.
fn with_secrets(command: &mut Command) -> &mut Command {
    command
        .env("SEC_HEC_TOKEN", HEC_TOKEN)
        .env("SEC_NATS_TOKEN", NATS_TOKEN)
        .env("SEC_KAFKA_PASSWORD", KAFKA_PASSWORD)
}

fn assert_no_secret(what: &str, text: &str) {
    for secret in [common::PASSWORD, HEC_TOKEN, NATS_TOKEN, KAFKA_PASSWORD] {
        assert!(
            !text.contains(secret),
            "{secret:?} appears in {what}:\n{text}"
        );
    }
    assert!(!text.contains("eyJ"), "a JWT appears in {what}");
}

/// Sinks that contain every kind of secret and fail to deliver, so their
/// errors and retries are logged: nothing listens on the ports.
fn secret_sinks(dir: &Path) -> String {
    let closed = free_port();
    format!(
        "{file}\
         [[sinks]]\nname = \"hec\"\ntype = \"http\"\nmode = \"splunk_hec\"\n\
         url = \"http://127.0.0.1:{closed}/services/collector/event\"\ntoken = \"${{SEC_HEC_TOKEN}}\"\n\
         encoding = \"json\"\n[sinks.retry]\nmax_backoff = \"200ms\"\n\
         [[sinks]]\nname = \"nats\"\ntype = \"nats\"\nencoding = \"json\"\n\
         servers = [\"nats://127.0.0.1:{closed}\"]\nsubject = \"s.{{stream}}\"\nstream = \"S\"\n\
         connect_timeout = \"1s\"\n[sinks.auth]\ntoken = \"${{SEC_NATS_TOKEN}}\"\n\
         [[sinks]]\nname = \"kafka\"\ntype = \"kafka\"\nencoding = \"json\"\n\
         brokers = [\"127.0.0.1:{closed}\"]\ntopic = \"t\"\n[sinks.librdkafka]\n\
         \"security.protocol\" = \"sasl_plaintext\"\n\"sasl.mechanisms\" = \"PLAIN\"\n\
         \"sasl.username\" = \"fim\"\n\"sasl.password\" = \"${{SEC_KAFKA_PASSWORD}}\"\n",
        file = file_sink(dir)
    )
}

fn secrets_stay_out_of_logs(format: &str) {
    let sim = start_sim(sim_config(200));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &sim.handle,
        EVENTS,
        "",
        &secret_sinks(dir.path()),
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("format = \"json\"", &format!("format = \"{format}\""))
        .replace("level = \"info\"", "level = \"trace\"");
    std::fs::write(&config, text).unwrap();

    let stderr_path = dir.path().join("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let child = with_secrets(&mut forwarder())
        .args(["run", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut running = Running { child, stderr_path };
    // Each failing sink has logged a retry, and the source has logged in.
    for sink in ["hec", "nats", "kafka"] {
        let field = match format {
            "json" => format!("\"sink\":\"{sink}\""),
            _ => format!("sink={sink}"),
        };
        wait_for_log(&running, &field, Duration::from_secs(60));
    }
    wait_for_log(&running, "logged in", Duration::from_secs(60));
    running.signal(Signal::SIGTERM);
    let _ = running.wait_exit(Duration::from_secs(30));
    assert_no_secret(&format!("{format} logs at trace level"), &running.stderr());

    let (_, output) = run_to_end(
        with_secrets(&mut forwarder())
            .args(["check", "--config"])
            .arg(&config),
    );
    assert_no_secret("check output", &output);
}

#[test]
fn secrets_stay_out_of_json_trace_logs() {
    secrets_stay_out_of_logs("json");
}

#[test]
fn secrets_stay_out_of_text_trace_logs() {
    secrets_stay_out_of_logs("text");
}

#[test]
fn help_output_shows_no_secret() {
    let subcommands = ["run", "demo", "validate", "check", "backfill", "count"];
    let mut outputs = vec![run_to_end(with_secrets(&mut forwarder()).arg("--help"))];
    for subcommand in subcommands {
        outputs.push(run_to_end(
            with_secrets(&mut forwarder())
                .env("QUALYS_PASSWORD", common::PASSWORD)
                .args([subcommand, "--help"]),
        ));
    }
    for ((ok, output), name) in outputs.iter().zip(std::iter::once("").chain(subcommands)) {
        assert!(ok, "{name} --help failed:\n{output}");
        assert!(
            output.contains("Usage"),
            "{name} --help shows no usage:\n{output}"
        );
        assert_no_secret(&format!("{name} --help"), output);
    }
}

#[test]
fn metrics_listen_on_loopback_by_default() {
    let sim = start_sim(sim_config(20));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.handle, EVENTS, "", &file_sink(dir.path()));
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(
            "[metrics]\nenabled = false\n",
            "[metrics]\nenabled = true\n",
        )
        .replace("level = \"info\"", "level = \"debug\"");
    std::fs::write(&config, text).unwrap();

    let mut running = Running::start(&config, dir.path().join("stderr.log"));
    // Either the forwarder listens on 127.0.0.1:9598, or another process
    // listens on that port and the bind error names the address. Both show the
    // default.
    let listening = || listens_on_loopback(running.child.id(), 9598);
    wait_until(Duration::from_secs(30), "the metrics listener", || {
        listening() || running.stderr().contains("127.0.0.1:9598")
    });
    if !listening() {
        assert!(
            running.stderr().contains("127.0.0.1:9598"),
            "{}",
            running.stderr()
        );
        return;
    }
    assert!(
        !listens_on_any_other_address(running.child.id(), 9598),
        "metrics also listen beyond loopback"
    );
    running.signal(Signal::SIGTERM);
    assert_eq!(running.wait_exit(Duration::from_secs(20)), Some(0));
}

/// Local addresses (hex `ADDR:PORT` as in /proc/net/tcp) of the sockets
/// `pid` listens on, IPv4 and IPv6.
fn listening_addresses(pid: u32, port: u16) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|entry| std::fs::read_link(entry.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    target
                        .strip_prefix("socket:[")
                        .and_then(|rest| rest.strip_suffix(']'))
                        .map(str::to_owned)
                })
                .collect()
        })
        .unwrap_or_default();
    let mut found = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (Some(local), Some(state), Some(inode)) =
                (fields.get(1), fields.get(3), fields.get(9))
            else {
                continue;
            };
            let listening = *state == "0A";
            let on_port = local.ends_with(&format!(":{port:04X}"));
            if listening && on_port && inodes.iter().any(|owned| owned == inode) {
                found.push((*local).to_owned());
            }
        }
    }
    found
}

fn listens_on_loopback(pid: u32, port: u16) -> bool {
    listening_addresses(pid, port)
        .iter()
        .any(|address| address.starts_with("0100007F:"))
}

fn listens_on_any_other_address(pid: u32, port: u16) -> bool {
    listening_addresses(pid, port)
        .iter()
        .any(|address| !address.starts_with("0100007F:"))
}

#[cfg(unix)]
#[test]
fn state_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let mode_of = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;

    let sim = start_sim(sim_config(50));
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &sim.handle, EVENTS, "", &file_sink(dir.path()));
    let state = dir.path().join("state");
    assert!(!state.exists());

    let mut running = Running::start(&config, dir.path().join("stderr.log"));
    wait_until(Duration::from_secs(30), "a checkpoint", || {
        acknowledged_ids(&state) > 0
    });
    running.signal(Signal::SIGTERM);
    assert_eq!(running.wait_exit(Duration::from_secs(20)), Some(0));

    assert_eq!(mode_of(&state), 0o700, "state directory");
    for entry in std::fs::read_dir(&state).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_eq!(mode_of(&path), 0o600, "{}", path.display());
        }
    }
    assert_eq!(mode_of(&state.join("checkpoint.json")), 0o600);
}
