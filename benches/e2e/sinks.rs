//! The destinations of the backlog run: the `[[sinks]]` tables of the
//! forwarder's configuration, and the local servers some of them need.
//!
//! - `file`: JSON lines in the run directory.
//! - `nats`: JetStream on `--nats-url` (default the nats-server
//!   `scripts/test.sh` starts on 127.0.0.1:4222), stream `FIM_BENCH`,
//!   subjects `fimbench.*`.
//! - `kafka`: the broker at `--kafka-broker` (default the tansu
//!   `scripts/test.sh` starts on 127.0.0.1:9092), topic `fimbench.events`,
//!   which must exist before the run.
//! - `syslog`: syslog over TLS with octet counting, RFC 5424 carrying CEF, to
//!   a syslog-ng this harness starts on a free port with a CA and server
//!   certificate made for the run.
//! - `http`: Splunk HEC batches of 500 JSON envelopes to a receiver in this
//!   process that returns HEC success for every request.
//! - `all`: every one of the above at once.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::free_port;

/// Every sink name `--sink` takes; `all` stands for the others together.
pub const NAMES: [&str; 5] = ["file", "nats", "kafka", "syslog", "http"];

/// The sink tables of one run and the servers they write to, stopped when
/// dropped.
pub struct Destinations {
    /// `[[sinks]]` tables for the forwarder's configuration.
    pub tables: String,
    /// Number of sinks the tables declare. Each event is acknowledged once
    /// per sink.
    pub count: usize,
    _syslog_ng: Option<SyslogNg>,
    _http: Option<HecReceiver>,
}

impl Destinations {
    /// Prepares the sinks `name` stands for (one of [`NAMES`] or `all`),
    /// starting the servers they need.
    pub fn start(name: &str, dir: &Path, brokers: &Brokers) -> Result<Self, String> {
        let names: Vec<&str> = match name {
            "all" => NAMES.to_vec(),
            one if NAMES.contains(&one) => vec![one],
            other => {
                return Err(format!(
                    "unknown --sink '{other}': use {} or all",
                    NAMES.join(", ")
                ));
            }
        };

        let mut destinations = Self {
            tables: String::new(),
            count: names.len(),
            _syslog_ng: None,
            _http: None,
        };
        for name in names {
            let table = match name {
                "file" => file_sink(&dir.join("events.ndjson")),
                "nats" => nats_sink(&brokers.nats_url),
                "kafka" => kafka_sink(&brokers.kafka_broker),
                "syslog" => {
                    let server = SyslogNg::start(&dir.join("syslog-ng"))?;
                    let table = syslog_sink(server.port, &server.ca_file);
                    destinations._syslog_ng = Some(server);
                    table
                }
                _ => {
                    let receiver = HecReceiver::start()?;
                    let table = http_sink(receiver.port);
                    destinations._http = Some(receiver);
                    table
                }
            };
            destinations.tables.push_str(&table);
            destinations.tables.push('\n');
        }
        Ok(destinations)
    }
}

/// Returns the `[[sinks]]` table of a file sink writing JSON lines to `path`.
pub fn file_sink(path: &Path) -> String {
    format!(
        "[[sinks]]\nname = \"file\"\ntype = \"file\"\nencoding = \"json\"\npath = \"{}\"\n",
        path.display()
    )
}

/// Addresses of the brokers the NATS and Kafka sinks publish to.
pub struct Brokers {
    pub nats_url: String,
    pub kafka_broker: String,
}

fn nats_sink(url: &str) -> String {
    format!(
        r#"[[sinks]]
name = "nats"
type = "nats"
encoding = "ecs"
servers = ["{url}"]
subject = "fimbench.{{stream}}"
jetstream = true
stream = "FIM_BENCH"
"#
    )
}

// NOTE: tansu 0.6 creates no topic on produce, so `fimbench.events` must
// exist before a Kafka run or every batch is retried.
fn kafka_sink(broker: &str) -> String {
    format!(
        r#"[[sinks]]
name = "kafka"
type = "kafka"
encoding = "ecs"
brokers = ["{broker}"]
topic = "fimbench.{{stream}}"
key = "id"
"#
    )
}

fn syslog_sink(port: u16, ca_file: &Path) -> String {
    format!(
        r#"[[sinks]]
name = "syslog"
type = "syslog"
encoding = "cef"
address = "127.0.0.1:{port}"
transport = "tls"
framing = "octet-counting"
format = "rfc5424"
[sinks.syslog]
pen = 99999
[sinks.tls]
ca_file = "{}"
"#,
        ca_file.display()
    )
}

fn http_sink(port: u16) -> String {
    format!(
        r#"[[sinks]]
name = "http"
type = "http"
mode = "splunk_hec"
url = "http://127.0.0.1:{port}/services/collector/event"
token = "bench-token"
encoding = "json"
[sinks.batch]
max_events = 500
"#
    )
}

/// A syslog-ng child process receiving syslog over TLS into a file.
struct SyslogNg {
    child: Child,
    port: u16,
    ca_file: PathBuf,
}

impl SyslogNg {
    fn start(dir: &Path) -> Result<Self, String> {
        std::fs::create_dir_all(dir)
            .map_err(|err| format!("cannot create {}: {err}", dir.display()))?;
        let binary = [
            "/usr/sbin/syslog-ng",
            "/usr/bin/syslog-ng",
            "/sbin/syslog-ng",
        ]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
        .ok_or("syslog-ng is not installed: run scripts/test.sh, which installs it")?;
        let certificates = Certificates::write(dir)?;
        let port = free_port()?;

        // Flow control makes syslog-ng stop reading instead of dropping
        // messages when its file destination falls behind.
        let config = format!(
            "@version: 3.38\n\
             options {{ log-msg-size(262144); keep-timestamp(no); }};\n\
             source s_bench {{ syslog(ip(127.0.0.1) port({port}) transport(tls) \
             tls(key-file(\"{key}\") cert-file(\"{cert}\") peer-verify(optional-untrusted)) \
             flags(no-parse)); }};\n\
             destination d_bench {{ file(\"{output}\" template(\"$MSG\\n\")); }};\n\
             log {{ source(s_bench); destination(d_bench); flags(flow-control); }};\n",
            key = certificates.server_key.display(),
            cert = certificates.server_cert.display(),
            output = dir.join("messages.log").display(),
        );
        let config_path = dir.join("syslog-ng.conf");
        std::fs::write(&config_path, config)
            .map_err(|err| format!("cannot write {}: {err}", config_path.display()))?;
        let stderr_path = dir.join("syslog-ng.stderr");
        let stderr = std::fs::File::create(&stderr_path)
            .map_err(|err| format!("cannot create {}: {err}", stderr_path.display()))?;
        let mut child = Command::new(&binary)
            .arg("-F")
            .arg("--no-caps")
            .arg("-f")
            .arg(&config_path)
            .arg("-p")
            .arg(dir.join("syslog-ng.pid"))
            .arg("-c")
            .arg(dir.join("syslog-ng.ctl"))
            .arg("-R")
            .arg(dir.join("syslog-ng.persist"))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|err| format!("cannot start {}: {err}", binary.display()))?;

        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let exited = child.try_wait().ok().flatten();
            if exited.is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                return Err(format!("syslog-ng did not listen on port {port}: {log}"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(Self {
            child,
            port,
            ca_file: certificates.ca,
        })
    }
}

impl Drop for SyslogNg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// PEM files of a CA made for one run and of a server certificate for
/// 127.0.0.1 signed by it.
struct Certificates {
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

impl Certificates {
    fn write(dir: &Path) -> Result<Self, String> {
        let failed = |err: rcgen::Error| format!("cannot make the syslog certificates: {err}");
        let ca_key = rcgen::KeyPair::generate().map_err(failed)?;
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "fim-forwarder bench CA");
        let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key).map_err(failed)?;

        let server_key = rcgen::KeyPair::generate().map_err(failed)?;
        let mut server_params =
            rcgen::CertificateParams::new(Vec::<String>::new()).map_err(failed)?;
        server_params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(
                std::net::Ipv4Addr::LOCALHOST.into(),
            ));
        let server_cert = server_params.signed_by(&server_key, &ca).map_err(failed)?;

        let paths = Self {
            ca: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        };
        for (path, text) in [
            (&paths.ca, ca.pem()),
            (&paths.server_cert, server_cert.pem()),
            (&paths.server_key, server_key.serialize_pem()),
        ] {
            std::fs::write(path, text)
                .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        }
        Ok(paths)
    }
}

/// An HTTP receiver on a free loopback port, on its own runtime thread. It
/// reads every request body and responds as Splunk HEC does on success,
/// `{"text":"Success","code":0}`.
struct HecReceiver {
    port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HecReceiver {
    fn start() -> Result<Self, String> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .map_err(|err| format!("cannot bind the HEC receiver: {err}"))?;
        listener
            .set_nonblocking(true)
            .map_err(|err| format!("cannot set up the HEC receiver: {err}"))?;
        let port = listener
            .local_addr()
            .map_err(|err| format!("cannot read the HEC receiver's port: {err}"))?
            .port();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| format!("cannot start the HEC receiver's runtime: {err}"))?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();

        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                async fn accept(_body: axum::body::Bytes) -> &'static str {
                    r#"{"text":"Success","code":0}"#
                }
                let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
                    return;
                };
                let app = axum::Router::new().fallback(accept);
                let _ = axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = stopped.await;
                    })
                    .await;
            });
        });
        Ok(Self {
            port,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }
}

impl Drop for HecReceiver {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
