//! The NATS sink against real `nats-server` processes that each test starts
//! on its own loopback port, with JetStream storing into a temporary
//! directory, so a test can stop and restart its server. `scripts/test.sh`
//! installs `nats-server` when it is missing.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashSet};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use fim_model::{Record, RecordKind, SharedRecord};
use fim_sinks::{
    Acknowledge, DeadLetter, Delivery, SinkContext, SinkHandle, SinkMetrics, SinkSpec, spawn,
};
use tokio::sync::{Notify, mpsc, watch};

/// Long enough for any retry in these tests; reaching it means the sink is
/// stuck, not slow.
const DEADLINE: Duration = Duration::from_secs(120);

/// A `nats-server` with JetStream on a free loopback port.
struct NatsServer {
    port: u16,
    store: tempfile::TempDir,
    extra_args: Vec<String>,
    child: Option<Child>,
}

impl NatsServer {
    fn start(extra_args: &[&str]) -> Self {
        let port = free_port();
        let mut server = Self {
            port,
            store: tempfile::tempdir().unwrap(),
            extra_args: extra_args.iter().map(|arg| (*arg).to_owned()).collect(),
            child: None,
        };
        server.resume();
        server
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the process again on the same port and store.
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
            .args(&self.extra_args)
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
        wait_for_port(self.port);
    }

    /// Stops the process; its store stays for [`NatsServer::resume`].
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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls until the server accepts connections; a server that never does
/// fails the test at the deadline.
fn wait_for_port(port: u16) {
    let start = std::time::Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "nats-server did not listen on 127.0.0.1:{port} within 20 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Counts acknowledgements and wakes waiters on each.
#[derive(Debug, Default)]
struct Acks {
    count: AtomicUsize,
    changed: Notify,
}

impl Acknowledge for Acks {
    fn ack(&self) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.changed.notify_waiters();
    }
}

impl Acks {
    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    async fn wait_for(&self, count: usize) {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let changed = self.changed.notified();
                if self.count() >= count {
                    return;
                }
                changed.await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("only {} of {count} records acknowledged", self.count()));
    }
}

fn event(id: &str) -> SharedRecord {
    Record::from_json(
        RecordKind::Event,
        &format!(r#"{{"id":"{id}","dateTime":"2024-05-01T10:00:00.000+0000","name":"C:\\secret.txt","action":"Content"}}"#),
    )
    .unwrap()
    .shared()
}

fn ids(prefix: &str, count: usize) -> Vec<String> {
    (0..count)
        .map(|index| format!("{prefix}-{index:05}"))
        .collect()
}

struct Running {
    sender: mpsc::Sender<Delivery>,
    handle: SinkHandle,
    metrics: Arc<SinkMetrics>,
    dead_letter: PathBuf,
    _dir: tempfile::TempDir,
}

/// Builds a sink from a `[[sinks]]` table as the forwarder does.
fn start_sink(options: &str, buffer: usize) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let text = format!("name = \"nats\"\ntype = \"nats\"\nencoding = \"json\"\n{options}");
    let spec = SinkSpec::from_table(0, toml::from_str(&text).unwrap()).unwrap();
    let dead_letter = dir.path().join("dead.ndjson");
    let metrics = Arc::new(SinkMetrics::default());
    let (_reopen_tx, reopen) = watch::channel(0);
    let context = SinkContext {
        name: spec.name.clone(),
        encoder: fim_sinks::spec::encoder(&spec).unwrap(),
        dead_letter: Arc::new(DeadLetter::new(&spec.name, &dead_letter)),
        metrics: metrics.clone(),
        reopen,
    };
    let sink = fim_sinks::build(&spec, context).unwrap();
    let (sender, handle) = spawn(spec.name.clone(), sink, metrics.clone(), buffer);
    Running {
        sender,
        handle,
        metrics,
        dead_letter,
        _dir: dir,
    }
}

fn jetstream_options(url: &str, stream: &str) -> String {
    format!(
        "servers = [\"{url}\"]\nsubject = \"qualys.fim.{{stream}}\"\nstream = \"{stream}\"\nack_timeout = \"2s\"\n"
    )
}

async fn send_all(sender: &mpsc::Sender<Delivery>, ids: &[String], acks: &Arc<Acks>) {
    for id in ids {
        let delivery = Delivery {
            record: event(id),
            ack: acks.clone(),
        };
        sender.send(delivery).await.unwrap();
    }
}

/// Reads every message of `stream`: `Nats-Msg-Id` to how often it is stored.
async fn stored_ids(url: &str, stream: &str) -> BTreeMap<String, usize> {
    let client = async_nats::connect(url).await.unwrap();
    let context = jetstream::new(client);
    let mut stream = context.get_stream(stream).await.unwrap();
    let state = stream.info().await.unwrap().state.clone();
    let mut counts = BTreeMap::new();
    for sequence in state.first_sequence..=state.last_sequence {
        if state.messages == 0 {
            break;
        }
        let message = stream.get_raw_message(sequence).await.unwrap();
        let id = message
            .headers
            .get("Nats-Msg-Id")
            .map(|value| value.to_string())
            .unwrap_or_default();
        assert_eq!(
            message
                .headers
                .get("Fim-Stream")
                .map(|value| value.to_string()),
            Some("events".to_owned())
        );
        assert_eq!(message.subject.as_str(), "qualys.fim.events");
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

fn assert_each_once(stored: &BTreeMap<String, usize>, expected: &[String]) {
    let expected_set: HashSet<&String> = expected.iter().collect();
    let missing: Vec<&&String> = expected_set
        .iter()
        .filter(|id| !stored.contains_key(id.as_str()))
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
    assert_eq!(stored.len(), expected.len());
}

#[tokio::test]
async fn jetstream_stores_every_id_once() {
    let server = NatsServer::start(&[]);
    let running = start_sink(&jetstream_options(&server.url(), "FIM_ONCE"), 100);
    let acks = Arc::new(Acks::default());
    let ids = ids("once", 1_000);

    send_all(&running.sender, &ids, &acks).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    assert_eq!(acks.count(), ids.len());
    assert_each_once(&stored_ids(&server.url(), "FIM_ONCE").await, &ids);
    let metrics = running.metrics.snapshot();
    assert_eq!(metrics.acknowledged, 1_000);
    assert_eq!(metrics.sent, 1_000);
    assert_eq!(metrics.in_flight, 0);
    assert_eq!(metrics.dead_lettered, 0);
    assert!(metrics.bytes > 0);
}

#[tokio::test]
async fn created_stream_has_duplicate_window() {
    let server = NatsServer::start(&[]);
    let options = format!(
        "{}duplicate_window = \"10m\"\n",
        jetstream_options(&server.url(), "FIM_WINDOW")
    );
    let running = start_sink(&options, 10);
    let acks = Arc::new(Acks::default());
    send_all(&running.sender, &ids("window", 1), &acks).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    let client = async_nats::connect(server.url()).await.unwrap();
    let mut stream = jetstream::new(client)
        .get_stream("FIM_WINDOW")
        .await
        .unwrap();
    let config = stream.info().await.unwrap().config.clone();
    assert_eq!(config.duplicate_window, Duration::from_secs(600));
    assert_eq!(config.subjects, vec!["qualys.fim.*".to_owned()]);
}

#[tokio::test]
async fn replay_after_restart_is_absorbed() {
    let server = NatsServer::start(&[]);
    let ids = ids("replay", 300);

    // The forwarder restarted from an older checkpoint sends the same
    // records again, as a second sink instance.
    for _run in 0..2 {
        let running = start_sink(&jetstream_options(&server.url(), "FIM_REPLAY"), 50);
        let acks = Arc::new(Acks::default());
        send_all(&running.sender, &ids, &acks).await;
        drop(running.sender);
        assert!(running.handle.flush_and_close(DEADLINE).await);
        assert_eq!(acks.count(), ids.len());
    }

    assert_each_once(&stored_ids(&server.url(), "FIM_REPLAY").await, &ids);
}

#[tokio::test]
async fn changed_incident_is_a_new_message() {
    let server = NatsServer::start(&[]);
    let running = start_sink(&jetstream_options(&server.url(), "FIM_INCIDENTS"), 10);
    let acks = Arc::new(Acks::default());
    for updated in ["1714557600000", "1714561200000"] {
        let incident = Record::from_json(
            RecordKind::Incident,
            &format!(r#"{{"id":"inc-1","lastUpdatedBy":{{"date":{updated}}}}}"#),
        )
        .unwrap()
        .shared();
        let delivery = Delivery {
            record: incident,
            ack: acks.clone(),
        };
        running.sender.send(delivery).await.unwrap();
    }
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    let client = async_nats::connect(server.url()).await.unwrap();
    let mut stream = jetstream::new(client)
        .get_stream("FIM_INCIDENTS")
        .await
        .unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 2);
}

#[tokio::test]
async fn server_outage_loses_nothing_within_buffers() {
    let mut server = NatsServer::start(&[]);
    let buffer = 100;
    let options = format!(
        "{}max_in_flight = 50\n",
        jetstream_options(&server.url(), "FIM_OUTAGE")
    );
    let running = start_sink(&options, buffer);
    let acks = Arc::new(Acks::default());
    let ids = ids("outage", 2_000);
    let (first, rest) = ids.split_at(500);

    send_all(&running.sender, first, &acks).await;
    acks.wait_for(first.len()).await;
    server.stop();

    // The sink takes at most one batch while the server is down, then its
    // channel fills and the sender waits: that wait is the backpressure
    // that pauses polling, so memory stays within the buffers.
    let producer = {
        let sender = running.sender.clone();
        let acks = acks.clone();
        let rest = rest.to_vec();
        tokio::spawn(async move { send_all(&sender, &rest, &acks).await })
    };
    let metrics = running.metrics.clone();
    tokio::time::timeout(DEADLINE, async {
        while running.sender.capacity() > 0 || metrics.snapshot().retried == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the channel never filled while the server was down");
    assert!(metrics.disconnected.load(Ordering::Relaxed));

    // The outage lasts 30 s; nothing above or below depends on its length.
    tokio::time::sleep(Duration::from_secs(30)).await;
    let during = metrics.snapshot();
    assert!(
        during.in_flight <= 50,
        "{} records in flight, more than max_in_flight",
        during.in_flight
    );
    assert_eq!(running.sender.capacity(), 0);
    assert!(acks.count() < ids.len());

    server.resume();
    producer.await.unwrap();
    acks.wait_for(ids.len()).await;
    assert!(!metrics.disconnected.load(Ordering::Relaxed));
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    assert_eq!(acks.count(), ids.len());
    assert_each_once(&stored_ids(&server.url(), "FIM_OUTAGE").await, &ids);
    let after = metrics.snapshot();
    assert_eq!(after.in_flight, 0);
    assert!(after.retried > 0);
}

#[tokio::test]
async fn oversized_record_is_dead_lettered() {
    let server = NatsServer::start(&[]);
    let client = async_nats::connect(server.url()).await.unwrap();
    jetstream::new(client)
        .create_stream(jetstream::stream::Config {
            name: "FIM_SMALL".to_owned(),
            subjects: vec!["qualys.fim.*".to_owned()],
            max_message_size: 2_048,
            ..Default::default()
        })
        .await
        .unwrap();
    let running = start_sink(&jetstream_options(&server.url(), "FIM_SMALL"), 10);
    let acks = Arc::new(Acks::default());

    let big = Record::from_json(
        RecordKind::Event,
        &format!(r#"{{"id":"big-1","content":"{}"}}"#, "x".repeat(10_000)),
    )
    .unwrap()
    .shared();
    running
        .sender
        .send(Delivery {
            record: big,
            ack: acks.clone(),
        })
        .await
        .unwrap();
    send_all(&running.sender, &ids("small", 20), &acks).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);

    assert_eq!(acks.count(), 21);
    let metrics = running.metrics.snapshot();
    assert_eq!(metrics.dead_lettered, 1);
    assert_eq!(metrics.in_flight, 0);
    let dead = std::fs::read_to_string(&running.dead_letter).unwrap();
    assert!(dead.contains("big-1"), "{dead}");
    assert_each_once(
        &stored_ids(&server.url(), "FIM_SMALL").await,
        &ids("small", 20),
    );
}

#[tokio::test]
async fn core_nats_is_at_most_once() {
    let server = NatsServer::start(&[]);
    let client = async_nats::connect(server.url()).await.unwrap();
    let mut subscriber = client.subscribe("core.fim.>").await.unwrap();
    client.flush().await.unwrap();
    let options = format!(
        "servers = [\"{}\"]\nsubject = \"core.fim.{{stream}}\"\njetstream = false\n",
        server.url()
    );
    let running = start_sink(&options, 20);
    let acks = Arc::new(Acks::default());

    // A listening subscriber gets every record.
    let heard = ids("heard", 50);
    send_all(&running.sender, &heard, &acks).await;
    acks.wait_for(heard.len()).await;
    let mut received = Vec::new();
    while received.len() < heard.len() {
        let message = tokio::time::timeout(DEADLINE, futures::StreamExt::next(&mut subscriber))
            .await
            .unwrap()
            .unwrap();
        received.push(message);
    }
    assert_eq!(received.len(), heard.len());

    // With no subscriber the records are acknowledged all the same, and
    // the server keeps none of them for a subscriber that comes later.
    subscriber.unsubscribe().await.unwrap();
    client.flush().await.unwrap();
    let unheard = ids("unheard", 50);
    send_all(&running.sender, &unheard, &acks).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);
    assert_eq!(acks.count(), heard.len() + unheard.len());

    let mut late = client.subscribe("core.fim.>").await.unwrap();
    client
        .publish("core.fim.marker", "end".into())
        .await
        .unwrap();
    let first = tokio::time::timeout(DEADLINE, futures::StreamExt::next(&mut late))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first.subject.as_str(), "core.fim.marker");
}

#[tokio::test]
async fn token_auth_connects() {
    let server = NatsServer::start(&["--auth", "s3cret-token"]);
    let options = format!(
        "{}[auth]\ntoken = \"s3cret-token\"\n",
        jetstream_options(&server.url(), "FIM_AUTH")
    );
    let running = start_sink(&options, 10);
    let acks = Arc::new(Acks::default());
    send_all(&running.sender, &ids("auth", 5), &acks).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);
    assert_eq!(acks.count(), 5);
}

#[tokio::test]
async fn server_down_at_start_reports_disconnected() {
    let port = free_port();
    let options = jetstream_options(&format!("nats://127.0.0.1:{port}"), "FIM_LATE");
    let running = start_sink(&options, 10);
    let acks = Arc::new(Acks::default());
    send_all(&running.sender, &ids("late", 5), &acks).await;
    let metrics = running.metrics.clone();
    tokio::time::timeout(DEADLINE, async {
        while !metrics.disconnected.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the sink never reported its server unreachable");
    assert_eq!(acks.count(), 0);

    let store = tempfile::tempdir().unwrap();
    let mut server = NatsServer {
        port,
        store,
        extra_args: Vec::new(),
        child: None,
    };
    server.resume();
    acks.wait_for(5).await;
    assert!(!running.metrics.disconnected.load(Ordering::Relaxed));
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);
}

#[tokio::test]
async fn tls_with_custom_ca_connects() {
    let dir = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fim-sinks nats test CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let mut server_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    server_params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let server_cert = server_params.signed_by(&server_key, &ca).unwrap();
    let ca_path = dir.path().join("ca.pem");
    let cert_path = dir.path().join("server.pem");
    let key_path = dir.path().join("server.key");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    std::fs::write(&cert_path, server_cert.pem()).unwrap();
    std::fs::write(&key_path, server_key.serialize_pem()).unwrap();

    let cert_arg = cert_path.display().to_string();
    let key_arg = key_path.display().to_string();
    let server = NatsServer::start(&["--tls", "--tlscert", &cert_arg, "--tlskey", &key_arg]);
    let options = format!(
        "{}[tls]\nca_file = \"{}\"\n",
        jetstream_options(&format!("tls://127.0.0.1:{}", server.port), "FIM_TLS"),
        ca_path.display()
    );
    let running = start_sink(&options, 10);
    let acks = Arc::new(Acks::default());
    send_all(&running.sender, &ids("tls", 5), &acks).await;
    acks.wait_for(5).await;
    drop(running.sender);
    assert!(running.handle.flush_and_close(DEADLINE).await);
    assert_eq!(acks.count(), 5);
}

#[tokio::test]
async fn rejected_token_is_not_logged() {
    let logs = capture_logs();
    let server = NatsServer::start(&["--auth", "right-token"]);
    let options = format!(
        "{}[auth]\ntoken = \"wrong-token-7f3a\"\n",
        jetstream_options(&server.url(), "FIM_SECRET")
    );
    let running = start_sink(&options, 10);
    let acks = Arc::new(Acks::default());
    send_all(&running.sender, &ids("secret", 1), &acks).await;

    tokio::time::timeout(DEADLINE, async {
        while !String::from_utf8_lossy(&logs.lock().unwrap()).contains("authorization") {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the authorization failure was never logged");
    let text = String::from_utf8_lossy(&logs.lock().unwrap()).into_owned();
    assert!(!text.contains("wrong-token-7f3a"), "{text}");
    assert_eq!(acks.count(), 0);
    assert!(running.metrics.disconnected.load(Ordering::Relaxed));
}

/// Sends every log line of this test binary to a buffer.
fn capture_logs() -> Arc<std::sync::Mutex<Vec<u8>>> {
    #[derive(Clone)]
    struct Buffer(Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let logs = Arc::new(std::sync::Mutex::new(Vec::new()));
    let buffer = Buffer(logs.clone());
    tracing_subscriber::fmt()
        .with_writer(move || buffer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .init();
    logs
}
