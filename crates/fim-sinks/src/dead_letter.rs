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
                std::fs::create_dir_all(parent)?;
            }
            *slot = Some(
                OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
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
}
