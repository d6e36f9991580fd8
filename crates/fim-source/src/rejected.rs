//! The source's dead-letter file: one JSON line per record the API sent that
//! cannot be read (no `id`, not an object, invalid JSON), with the request
//! and the reason. The poller skips such a record so its stream goes on, and
//! this file keeps the record's raw text so nothing disappears without a
//! trace.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use fim_model::{RecordError, RecordKind, Timestamp};
use serde_json::json;

use crate::client::now_ms;

/// Appends unreadable records to a file, created with mode 0600 on the
/// first one.
#[derive(Debug)]
pub struct RejectedRecords {
    path: PathBuf,
    file: Mutex<Option<File>>,
}

impl RejectedRecords {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            file: Mutex::new(None),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes one line for the record `error` carries and flushes it to the
    /// disk.
    pub fn write(
        &self,
        kind: RecordKind,
        request: &str,
        error: &RecordError,
    ) -> std::io::Result<()> {
        let line = json!({
            "time": Timestamp::from_unix_ms(now_ms()).to_string(),
            "source": "qualys",
            "stream": kind.stream_name(),
            "request": request,
            "reason": error.to_string(),
            "raw": error.raw(),
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
                    .mode(0o600)
                    .open(&self.path)?,
            );
        }
        let Some(file) = slot.as_mut() else {
            return Err(std::io::Error::other("the dead-letter file is not open"));
        };
        file.write_all(text.as_bytes())?;
        file.sync_data()
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;
    use fim_model::{ApiVersion, Record};

    #[test]
    fn writes_request_reason_and_raw_text() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("dead-letter").join("source.ndjson");
        let rejected = RejectedRecords::new(&path);
        let page = Record::parse_page(
            RecordKind::Event,
            r#"[{"id":"a"},{"fullPath":"/etc/passwd"}]"#,
            Timestamp::from_unix_ms(0),
            ApiVersion::V1,
        )
        .unwrap();
        let error = page[1].as_ref().unwrap_err();

        rejected
            .write(RecordKind::Event, "GET /fim/v1/events", error)
            .unwrap();
        rejected
            .write(RecordKind::Event, "GET /fim/v1/events", error)
            .unwrap();

        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0]["stream"], "events");
        assert_eq!(lines[0]["request"], "GET /fim/v1/events");
        assert_eq!(lines[0]["raw"], r#"{"fullPath":"/etc/passwd"}"#);
        let reason = lines[0]["reason"].as_str().unwrap();
        assert!(reason.contains("no `id`"), "{reason}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
