//! The programs of a run, each on a fixed loopback port so it can be
//! stopped and started again at the same address: `fim-sim`,
//! `fim-forwarder`, nats-server with JetStream, tansu (Kafka protocol) and
//! syslog-ng with a TLS source.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{Context, bail};
use nix::sys::signal::Signal;

use crate::process::{Process, find_binary, free_port, wait_for_port};

pub const SIM_USERNAME: &str = "chaos";
/// Password of the simulator's API user; passed through the environment
/// only, so it appears in no command line and no configuration file.
pub const SIM_PASSWORD: &str = "chaos-Password-4242";
/// How long a server may take to listen after it starts.
const START_LIMIT: Duration = Duration::from_secs(60);
/// How long a stopped server may take to exit before SIGKILL.
const STOP_LIMIT: Duration = Duration::from_secs(15);

/// The release `fim-sim`.
#[derive(Debug)]
pub struct Sim {
    _process: Process,
    /// `http://127.0.0.1:PORT`, from the first line the simulator prints.
    pub url: String,
}

impl Sim {
    pub fn start(binary: &Path, args: &[String], log: &Path) -> anyhow::Result<Self> {
        let stderr = std::fs::File::create(log)
            .with_context(|| format!("failed to create {}", log.display()))?;
        let mut child = Command::new(binary)
            .args(["--listen", "127.0.0.1:0", "--username", SIM_USERNAME])
            .args(args)
            .env("FIM_SIM_PASSWORD", SIM_PASSWORD)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;

        // The first stdout line is `listening on http://IP:PORT`. A thread
        // reads the rest, so the simulator does not block on a full pipe.
        let stdout = child.stdout.take().context("fim-sim stdout is not piped")?;
        let process = Process::from_child("fim-sim", child);
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(first)) = lines.next() {
                let _ = sender.send(first);
            }
            for _ in lines {}
        });
        let first = receiver
            .recv_timeout(START_LIMIT)
            .map_err(|_| anyhow::anyhow!("fim-sim printed no address; see {}", log.display()))?;
        let url = first
            .strip_prefix("listening on ")
            .with_context(|| format!("unexpected first line from fim-sim: {first}"))?
            .trim()
            .to_owned();
        Ok(Self {
            _process: process,
            url,
        })
    }
}

/// `fim-forwarder run`, started again with the same configuration after
/// each SIGKILL.
#[derive(Debug)]
pub struct Forwarder {
    binary: PathBuf,
    config: PathBuf,
    log: PathBuf,
    process: Option<Process>,
}

impl Forwarder {
    pub fn new(binary: &Path, config: &Path, log: &Path) -> Self {
        Self {
            binary: binary.to_owned(),
            config: config.to_owned(),
            log: log.to_owned(),
            process: None,
        }
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(&self.binary);
        command
            .args(["run", "--config"])
            .arg(&self.config)
            .env("FIM_CHAOS_PASSWORD", SIM_PASSWORD)
            .env_remove("RUST_LOG");
        self.process = Some(Process::spawn("fim-forwarder", &mut command, &self.log)?);
        Ok(())
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(Process::pid)
    }

    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        match &self.process {
            Some(process) => process.signal(signal),
            None => bail!("fim-forwarder is not running"),
        }
    }

    /// Kills the forwarder with SIGKILL, as a crash or an OOM kill would.
    pub fn kill(&mut self) {
        if let Some(process) = self.process.take() {
            process.stop(Signal::SIGKILL, STOP_LIMIT);
        }
    }

    /// Stops the forwarder with SIGTERM, which drains and flushes every sink
    /// and commits the checkpoint; returns the exit code.
    pub fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let process = self.process.take()?;
        process
            .stop(Signal::SIGTERM, limit)
            .and_then(|status| status.code())
    }

    /// Returns the exit status when the forwarder exited on its own.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.process.as_mut()?.exited()?;
        self.process = None;
        Some(status)
    }
}

/// A server that can be stopped and started again on the same port.
#[derive(Debug)]
pub struct Server {
    name: &'static str,
    binary: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    pub port: u16,
    process: Option<Process>,
}

impl Server {
    fn new(name: &'static str, binary: PathBuf, args: Vec<String>, port: u16, log: &Path) -> Self {
        Self {
            name,
            binary,
            args,
            log: log.to_owned(),
            port,
            process: None,
        }
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(&self.binary);
        command.args(&self.args);
        let mut process = Process::spawn(self.name, &mut command, &self.log)?;
        wait_for_port(&mut process, self.port, START_LIMIT, &self.log)?;
        self.process = Some(process);
        Ok(())
    }

    /// Stops the server with SIGTERM, as an operator's restart would.
    pub fn stop(&mut self) {
        if let Some(process) = self.process.take() {
            process.stop(Signal::SIGTERM, STOP_LIMIT);
        }
    }
}

/// nats-server with JetStream, storing streams in `dir/jetstream` so they
/// survive a restart.
pub fn nats_server(dir: &Path) -> anyhow::Result<Server> {
    let binary = find_binary(
        "nats-server",
        &[
            PathBuf::from("/usr/sbin/nats-server"),
            PathBuf::from("/usr/bin/nats-server"),
            PathBuf::from("/usr/local/bin/nats-server"),
        ],
        "run scripts/test.sh, which installs the Debian package nats-server",
    )?;
    let port = free_port()?;
    let store = dir.join("jetstream");
    std::fs::create_dir_all(&store)
        .with_context(|| format!("failed to create {}", store.display()))?;
    let args = vec![
        "-a".to_owned(),
        "127.0.0.1".to_owned(),
        "-p".to_owned(),
        port.to_string(),
        "-js".to_owned(),
        "-sd".to_owned(),
        store.display().to_string(),
    ];
    Ok(Server::new(
        "nats-server",
        binary,
        args,
        port,
        &dir.join("nats-server.log"),
    ))
}

/// tansu with in-memory storage: the only storage engine of the tansu 0.6
/// build `scripts/test.sh` installs besides S3, so a restart starts with
/// no topics and no messages (see `kafka.rs` for how the run accounts for
/// that).
pub fn tansu(dir: &Path) -> anyhow::Result<Server> {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let mut candidates: Vec<PathBuf> = std::env::var_os("TANSU")
        .map(PathBuf::from)
        .into_iter()
        .collect();
    candidates.push(home.join(".cargo/bin/tansu"));
    candidates.push(PathBuf::from("/usr/local/bin/tansu"));
    let binary = find_binary(
        "tansu",
        &candidates,
        "set TANSU or run scripts/test.sh, which installs it",
    )?;
    let port = free_port()?;
    let url = format!("tcp://127.0.0.1:{port}");
    let args = vec![
        "broker".to_owned(),
        "--listener-url".to_owned(),
        url.clone(),
        "--advertised-listener-url".to_owned(),
        url,
        "--storage-engine".to_owned(),
        "memory://tansu/".to_owned(),
    ];
    Ok(Server::new(
        "tansu",
        binary,
        args,
        port,
        &dir.join("tansu.log"),
    ))
}

/// Files of the syslog-ng receiver.
#[derive(Debug)]
pub struct SyslogFiles {
    /// One line per message: the MSG part, which is the record's JSON.
    pub output: PathBuf,
    /// CA certificate the forwarder trusts.
    pub ca: PathBuf,
}

/// syslog-ng with an RFC 5424 TLS source, writing each message's MSG to a
/// file. Its certificates are generated for `localhost` and 127.0.0.1.
pub fn syslog_ng(dir: &Path) -> anyhow::Result<(Server, SyslogFiles)> {
    let binary = find_binary(
        "syslog-ng",
        &[
            PathBuf::from("/usr/sbin/syslog-ng"),
            PathBuf::from("/usr/bin/syslog-ng"),
        ],
        "run scripts/test.sh, which installs the Debian package syslog-ng-core",
    )?;
    let certificates = write_certificates(dir)?;
    let port = free_port()?;
    let output = dir.join("syslog-received.log");
    let config = format!(
        "@version: 3.38\n\
         options {{ log-msg-size(262144); keep-timestamp(no); }};\n\
         source s_chaos {{ syslog(ip(127.0.0.1) port({port}) transport(tls) \
         tls(key-file(\"{key}\") cert-file(\"{cert}\") peer-verify(optional-untrusted))); }};\n\
         destination d_chaos {{ file(\"{output}\" template(\"$MSG\\n\") flush-lines(1)); }};\n\
         log {{ source(s_chaos); destination(d_chaos); }};\n",
        key = certificates.key.display(),
        cert = certificates.cert.display(),
        output = output.display(),
    );
    let config_path = dir.join("syslog-ng.conf");
    std::fs::write(&config_path, config)
        .with_context(|| format!("failed to write {}", config_path.display()))?;
    let args = vec![
        "-F".to_owned(),
        "--no-caps".to_owned(),
        "-f".to_owned(),
        config_path.display().to_string(),
        "-p".to_owned(),
        dir.join("syslog-ng.pid").display().to_string(),
        "-c".to_owned(),
        dir.join("syslog-ng.ctl").display().to_string(),
        "-R".to_owned(),
        dir.join("syslog-ng.persist").display().to_string(),
    ];
    let server = Server::new("syslog-ng", binary, args, port, &dir.join("syslog-ng.log"));
    Ok((
        server,
        SyslogFiles {
            output,
            ca: certificates.ca,
        },
    ))
}

struct Certificates {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn write_certificates(dir: &Path) -> anyhow::Result<Certificates> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "fim-chaos CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;

    let server_key = rcgen::KeyPair::generate()?;
    let mut server_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?;
    server_params
        .subject_alt_names
        .push(rcgen::SanType::IpAddress([127, 0, 0, 1].into()));
    let server_cert = server_params.signed_by(&server_key, &ca)?;

    let paths = Certificates {
        ca: dir.join("ca.pem"),
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
    };
    std::fs::write(&paths.ca, ca.pem())?;
    std::fs::write(&paths.cert, server_cert.pem())?;
    std::fs::write(&paths.key, server_key.serialize_pem())?;
    Ok(paths)
}
