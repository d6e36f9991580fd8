//! The per-sink dead-letter file: one JSON line per record the destination
//! rejected for good, with the sink, the reason and the time, so nothing is
//! dropped without a trace.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use fim_model::Record;
use serde_json::json;

/// Appends rejected records to a file.
#[derive(Debug)]
pub struct DeadLetter {
    sink: String,
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl DeadLetter {
    /// Uses `path`, created on the first rejected record.
    pub fn new(sink: &str, path: impl Into<PathBuf>) -> Self {
        Self {
            sink: sink.to_owned(),
            path: path.into(),
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one line for `record` and flushes it to the disk. The line
    /// holds the record as received, so it can be replayed later.
    pub fn write(&self, record: &Record, reason: &str) -> std::io::Result<()> {
        let line = json!({
            "time": fim_model::Timestamp::from_unix_ms(now_ms()).to_string(),
            "sink": self.sink,
            "stream": record.kind().stream_name(),
            "id": record.id(),
            "reason": reason,
            "record": record.source(),
        });
        let mut text = line.to_string();
        text.push('\n');

        let mut slot = self.file.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            if let Some(parent) = self
                .path
                .parent()
                .filter(|parent| !parent.as_os_str().is_empty())
            {
                create_private_dir(parent)?;
            }
            *slot = Some(open_private_append(&self.path)?);
        }
        let Some(file) = slot.as_mut() else {
            return Err(std::io::Error::other("dead-letter file is not open"));
        };
        file.write_all(text.as_bytes())?;
        file.sync_data()?;
        tracing::warn!(
            sink = %self.sink,
            stream = record.kind().stream_name(),
            event_id = record.id(),
            reason,
            path = %self.path.display(),
            "record dead-lettered"
        );
        Ok(())
    }
}

/// Creates `dir` and its missing parents with mode 0700, because dead
/// letters hold whole records. An existing directory keeps its mode.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Opens `path` for appending. A new file gets mode 0600; an existing one
/// keeps its mode.
fn open_private_append(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

fn now_ms() -> i64 {
    fim_model::Timestamp::now().unix_ms()
}

#[cfg(test)]
mod tests {
    use fim_model::RecordKind;

    use super::*;

    #[test]
    fn writes_one_line_per_record_with_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/dead.ndjson");
        let dead = DeadLetter::new("archive", &path);
        let record = Record::from_json(RecordKind::Event, r#"{"id":"e1","name":"a\nb"}"#).unwrap();
        dead.write(&record, "too large").unwrap();
        dead.write(&record, "again").unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["sink"], "archive");
        assert_eq!(lines[0]["reason"], "too large");
        assert_eq!(lines[0]["record"]["name"], "a\nb");
    }

    #[cfg(unix)]
    #[test]
    fn new_file_and_directory_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let mode_of = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead-letter/archive.ndjson");
        let dead = DeadLetter::new("archive", &path);
        let record = Record::from_json(RecordKind::Event, r#"{"id":"e1"}"#).unwrap();
        dead.write(&record, "too large").unwrap();
        assert_eq!(mode_of(&path), 0o600, "dead-letter file");
        assert_eq!(
            mode_of(&dir.path().join("dead-letter")),
            0o700,
            "dead-letter directory"
        );
    }
}
