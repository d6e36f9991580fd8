//! Child processes the run starts, signalled and ended by their process id
//! only, and killed when dropped so a failed run leaves none behind.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// One running child process and the file its output goes to.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
}

impl Process {
    /// Starts `command` with stdin closed and stdout and stderr appended to
    /// `log`, so the output of every restart stays in one file.
    pub fn spawn(name: &str, command: &mut Command, log: &Path) -> anyhow::Result<Self> {
        let output = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("failed to open log file {}", log.display()))?;
        let errors = output
            .try_clone()
            .with_context(|| format!("failed to open log file {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(output)
            .stderr(errors)
            .spawn()
            .with_context(|| format!("failed to start {name} ({command:?})"))?;
        Ok(Self {
            name: name.to_owned(),
            child,
        })
    }

    /// Wraps a child the caller spawned itself (with piped output).
    pub fn from_child(name: &str, child: Child) -> Self {
        Self {
            name: name.to_owned(),
            child,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sends `signal` to this process only.
    pub fn signal(&self, signal: Signal) -> anyhow::Result<()> {
        let pid = i32::try_from(self.child.id()).context("process id out of range")?;
        kill(Pid::from_raw(pid), signal)
            .with_context(|| format!("failed to send {signal} to {} (pid {pid})", self.name))
    }

    /// Returns the exit status once the process has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends `signal` and waits up to `limit` for the exit; sends SIGKILL
    /// when the process is still running after that.
    pub fn stop(mut self, signal: Signal, limit: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        let _ = self.signal(signal);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if self.exited().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Returns a loopback port that was free a moment ago.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("failed to bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Waits until 127.0.0.1:`port` accepts connections; fails when `process`
/// exits first or after `limit`, naming `log` for the reason.
pub fn wait_for_port(
    process: &mut Process,
    port: u16,
    limit: Duration,
    log: &Path,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + limit;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = process.exited() {
            bail!(
                "{} exited with {status} before listening on 127.0.0.1:{port}; see {}",
                process.name(),
                log.display()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "{} did not listen on 127.0.0.1:{port} within {limit:?}; see {}",
                process.name(),
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// Returns the first of `candidates` that is a file, or an error naming
/// `what` and how to install it.
pub fn find_binary(what: &str, candidates: &[PathBuf], install: &str) -> anyhow::Result<PathBuf> {
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .with_context(|| format!("{what} not found in {candidates:?}: {install}"))
}

/// Returns the resident set size (`VmRSS`) of `pid` in KiB.
pub fn resident_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}
