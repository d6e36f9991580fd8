//! The forwarder's state directory on a small tmpfs, so the run can fill
//! the file system and make checkpoint writes fail with ENOSPC.
//!
//! Mounting needs root (or CAP_SYS_ADMIN). When the mount fails, the run
//! stops with an error. It does not fall back to a simulated write error,
//! because only a real full file system tests the forwarder's own error
//! handling.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// A mounted tmpfs; unmounted when dropped.
#[derive(Debug)]
pub struct Tmpfs {
    dir: PathBuf,
    filler: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_mib` MiB on `dir` (created when missing).
    pub fn mount(dir: &Path, size_mib: u64) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        let output = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_mib}m,mode=0700"))
            .arg("tmpfs")
            .arg(dir)
            .output()
            .context("failed to run mount")?;
        if !output.status.success() {
            bail!(
                "failed to mount a tmpfs on {} ({}): the disk-full fault needs root or \
                 CAP_SYS_ADMIN; run scripts/chaos.sh as root",
                dir.display(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(Self {
            dir: dir.to_owned(),
            filler: dir.join("chaos-filler"),
        })
    }

    /// Writes a file until the file system is full; returns its size.
    pub fn fill(&self) -> anyhow::Result<u64> {
        let mut file = std::fs::File::create(&self.filler)
            .with_context(|| format!("failed to create {}", self.filler.display()))?;
        let block = vec![0u8; 64 * 1024];
        let mut written = 0u64;
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(count) => written += count as u64,
                Err(err) if err.raw_os_error() == Some(nix::libc::ENOSPC) => break,
                Err(err) => {
                    return Err(err)
                        .with_context(|| format!("failed to write {}", self.filler.display()));
                }
            }
        }
        Ok(written)
    }

    /// Deletes the filler file, freeing the space again.
    pub fn free(&self) -> anyhow::Result<()> {
        match std::fs::remove_file(&self.filler) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => {
                Err(err).with_context(|| format!("failed to delete {}", self.filler.display()))
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = self.free();
        match Command::new("umount").arg(&self.dir).status() {
            Ok(status) if status.success() => {}
            _ => eprintln!(
                "fim-chaos: failed to unmount {}; run: umount {}",
                self.dir.display(),
                self.dir.display()
            ),
        }
    }
}
