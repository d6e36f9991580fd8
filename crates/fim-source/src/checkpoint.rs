//! Checkpoints: where each stream's lanes stand, plus the dedup cache, so a
//! restart resumes after the last acknowledged record and does not resend.
//!
//! [`FileCheckpointStore`] writes `checkpoint.json` in the state directory
//! by atomic replace: a temporary file is written and fsynced, renamed over
//! the old one, and the directory is fsynced, so a crash leaves either the
//! old or the new checkpoint, never a torn one.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::dedup::DedupKey;

/// Version of the checkpoint format this build writes and reads.
pub const CHECKPOINT_VERSION: u32 = 1;

const FILE_NAME: &str = "checkpoint.json";

/// Everything a restart needs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceState {
    pub version: u32,
    /// By stream name (`events`, `incidents`...).
    pub streams: BTreeMap<String, StreamState>,
}

/// One stream's position and recently delivered keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamState {
    /// By lane name (`processedTime`, `createdBy.date`...).
    pub lanes: BTreeMap<String, Cursor>,
    /// Acknowledged dedup keys with the time (epoch ms) they were seen.
    #[serde(default)]
    pub dedup: Vec<(DedupKey, i64)>,
}

/// A position in a lane, built from record data: every record before
/// `time_ms` and the records at `time_ms` whose ids are listed have been
/// acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cursor {
    pub time_ms: i64,
    #[serde(default)]
    pub ids: Vec<String>,
}

impl Cursor {
    pub fn at(time_ms: i64) -> Self {
        Self {
            time_ms,
            ids: Vec::new(),
        }
    }

    /// Moves past the record `id` at `time_ms`; records arrive in order, so
    /// a later time starts a new list of ids.
    pub fn advance(&mut self, time_ms: i64, id: &str) {
        if time_ms > self.time_ms {
            self.time_ms = time_ms;
            self.ids.clear();
        }
        if time_ms == self.time_ms && !self.ids.iter().any(|known| known == id) {
            self.ids.push(id.to_owned());
        }
    }
}

/// Storage of checkpoints.
pub trait CheckpointStore: Send + Sync + std::fmt::Debug {
    /// Returns the saved state, or `None` on a first run.
    fn load(&self) -> Result<Option<SourceState>, CheckpointError>;
    /// Replaces the saved state.
    fn save(&self, state: &SourceState) -> Result<(), CheckpointError>;
}

/// Checkpoint store errors; each names the file and what to do.
/// The I/O errors are part of each message, not a separate source, so a
/// report that prints the whole error chain names them once.
#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("failed to read checkpoint {path}: {cause}")]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error(
        "checkpoint {path} is corrupt ({reason}); move it away to start from source.start_from \
         (records since then are sent again), or restore a backup"
    )]
    Corrupt { path: PathBuf, reason: String },
    #[error(
        "checkpoint {path} has version {found}, this build reads version {CHECKPOINT_VERSION}; \
         run the fim-forwarder release that wrote it, or move the file away to start over"
    )]
    UnknownVersion { path: PathBuf, found: u64 },
    #[error(
        "failed to write checkpoint {path}: {cause}; check free space and permissions of the state directory"
    )]
    Write {
        path: PathBuf,
        cause: std::io::Error,
    },
}

/// Stores the checkpoint as `checkpoint.json` in a state directory.
#[derive(Debug, Clone)]
pub struct FileCheckpointStore {
    dir: PathBuf,
}

impl FileCheckpointStore {
    /// Uses `dir`, creating it when missing.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, CheckpointError> {
        let dir = dir.into();
        create_private_dir(&dir).map_err(|cause| CheckpointError::Write {
            path: dir.clone(),
            cause,
        })?;
        Ok(Self { dir })
    }

    pub fn path(&self) -> PathBuf {
        self.dir.join(FILE_NAME)
    }
}

impl CheckpointStore for FileCheckpointStore {
    fn load(&self) -> Result<Option<SourceState>, CheckpointError> {
        let path = self.path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(cause) => return Err(CheckpointError::Read { path, cause }),
        };
        parse_state(&path, &text).map(Some)
    }

    fn save(&self, state: &SourceState) -> Result<(), CheckpointError> {
        let path = self.path();
        let temporary = self.dir.join(format!("{FILE_NAME}.tmp"));
        let write_error = |cause| CheckpointError::Write {
            path: path.clone(),
            cause,
        };

        // Written straight to the file: the text of a full dedup cache is
        // several MiB, which would otherwise be held in memory at once.
        let file = create_private_file(&temporary).map_err(write_error)?;
        let mut writer = BufWriter::with_capacity(64 * 1024, file);
        serde_json::to_writer(&mut writer, state)
            .map_err(|err| write_error(std::io::Error::other(err)))?;
        let file = writer
            .into_inner()
            .map_err(|err| write_error(err.into_error()))?;
        file.sync_all().map_err(write_error)?;
        drop(file);
        fs::rename(&temporary, &path).map_err(write_error)?;
        sync_dir(&self.dir).map_err(write_error)?;
        Ok(())
    }
}

fn parse_state(path: &Path, text: &str) -> Result<SourceState, CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    // The version is read first, so a file of another version gets its own
    // error. The full parse then builds the state directly, without a
    // `serde_json::Value` of every cached key in between.
    #[derive(Deserialize)]
    struct Versioned {
        version: Option<serde_json::Value>,
    }
    serde_json::from_str::<serde::de::IgnoredAny>(text)
        .map_err(|err| corrupt(format!("not JSON: {err}")))?;
    if !text.trim_start().starts_with('{') {
        return Err(corrupt("not a JSON object".to_owned()));
    }
    let versioned: Versioned =
        serde_json::from_str(text).map_err(|err| corrupt(err.to_string()))?;
    let version = versioned
        .version
        .as_ref()
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| corrupt("no version field".to_owned()))?;
    if version != u64::from(CHECKPOINT_VERSION) {
        return Err(CheckpointError::UnknownVersion {
            path: path.to_owned(),
            found: version,
        });
    }
    serde_json::from_str(text).map_err(|err| corrupt(err.to_string()))
}

/// Creates `dir` and its missing parents with mode 0700, because the state
/// contains event ids and file paths of the monitored hosts. An existing
/// directory keeps its mode.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// Creates or truncates `path` for writing with mode 0600. The mode is also
/// set on a file left over from an earlier run, which `open` would keep.
fn create_private_file(path: &Path) -> std::io::Result<File> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(file)
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> SourceState {
        let mut streams = BTreeMap::new();
        let mut lanes = BTreeMap::new();
        lanes.insert(
            "processedTime".to_owned(),
            Cursor {
                time_ms: 1_714_558_601_502,
                ids: vec!["a".to_owned(), "b".to_owned()],
            },
        );
        streams.insert(
            "events".to_owned(),
            StreamState {
                lanes,
                dedup: vec![("a".into(), 1)],
            },
        );
        SourceState {
            version: CHECKPOINT_VERSION,
            streams,
        }
    }

    #[test]
    fn saved_state_loads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        store.save(&sample()).unwrap();
        assert_eq!(store.load().unwrap(), Some(sample()));
    }

    #[test]
    fn missing_file_is_first_run() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path().join("new")).unwrap();
        assert_eq!(store.load().unwrap(), None);
    }

    #[test]
    fn corrupt_file_names_path_and_fix() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        fs::write(store.path(), "{\"version\":1,\"streams\":").unwrap();
        let err = store.load().unwrap_err().to_string();
        assert!(err.contains("checkpoint.json"), "{err}");
        assert!(err.contains("move it away"), "{err}");
    }

    /// The forwarder prints an error with its whole source chain, so a
    /// checkpoint error must have no source that repeats its message.
    #[test]
    fn source_error_chain_has_one_message() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();

        fs::write(store.path(), "{").unwrap();
        let corrupt = crate::SourceError::from(store.load().unwrap_err());
        assert!(std::error::Error::source(&corrupt).is_none(), "{corrupt}");
        assert!(corrupt.to_string().contains("is corrupt"), "{corrupt}");

        // A directory in the file's place fails the read itself.
        fs::remove_file(store.path()).unwrap();
        fs::create_dir(store.path()).unwrap();
        let unreadable = crate::SourceError::from(store.load().unwrap_err());
        assert!(
            std::error::Error::source(&unreadable).is_none(),
            "{unreadable}"
        );
        assert!(
            unreadable.to_string().contains("failed to read checkpoint"),
            "{unreadable}"
        );
    }

    #[test]
    fn json_that_is_not_an_object_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        for text in ["42", "null", "[7]", "[1,{}]", "{\"streams\":{}}"] {
            fs::write(store.path(), text).unwrap();
            let err = store.load().unwrap_err();
            assert!(
                matches!(err, CheckpointError::Corrupt { .. }),
                "{text}: {err}"
            );
            let message = err.to_string();
            assert!(
                message.contains("not a JSON object") || message.contains("no version field"),
                "{text}: {message}"
            );
        }
    }

    /// A checkpoint as the release before shared dedup keys wrote it.
    #[test]
    fn earlier_checkpoint_text_loads() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        let text = r#"{"version":1,"streams":{"events":{"lanes":{"processedTime":{"time_ms":5,"ids":["a"]}},"dedup":[["a",1],["b@7",2]]}}}"#;
        fs::write(store.path(), text).unwrap();
        let state = store.load().unwrap().unwrap();
        let dedup = &state.streams["events"].dedup;
        assert_eq!(dedup, &vec![("a".into(), 1), ("b@7".into(), 2)]);
        store.save(&state).unwrap();
        assert_eq!(fs::read_to_string(store.path()).unwrap(), text);
    }

    #[test]
    fn unknown_version_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        fs::write(store.path(), "{\"version\":7,\"streams\":{}}").unwrap();
        let err = store.load().unwrap_err();
        assert!(
            matches!(err, CheckpointError::UnknownVersion { found: 7, .. }),
            "{err}"
        );
    }

    #[cfg(unix)]
    fn mode_of(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn state_dir_and_checkpoint_are_private() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("var").join("state");
        let store = FileCheckpointStore::new(&state).unwrap();
        store.save(&sample()).unwrap();
        assert_eq!(mode_of(&state), 0o700, "state directory");
        assert_eq!(mode_of(&dir.path().join("var")), 0o700, "created parent");
        assert_eq!(mode_of(&store.path()), 0o600, "checkpoint file");
    }

    #[cfg(unix)]
    #[test]
    fn stale_temporary_file_becomes_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        let temporary = dir.path().join(format!("{FILE_NAME}.tmp"));
        fs::write(&temporary, b"left by a crash").unwrap();
        fs::set_permissions(&temporary, fs::Permissions::from_mode(0o644)).unwrap();
        store.save(&sample()).unwrap();
        assert_eq!(mode_of(&store.path()), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn save_makes_a_readable_checkpoint_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        fs::write(store.path(), b"{}").unwrap();
        fs::set_permissions(store.path(), fs::Permissions::from_mode(0o644)).unwrap();
        store.save(&sample()).unwrap();
        assert_eq!(mode_of(&store.path()), 0o600);
    }

    #[test]
    fn save_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileCheckpointStore::new(dir.path()).unwrap();
        store.save(&sample()).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names, vec!["checkpoint.json"]);
    }

    #[test]
    fn cursor_restarts_id_list_at_later_time() {
        let mut cursor = Cursor::at(10);
        cursor.advance(10, "a");
        cursor.advance(10, "b");
        cursor.advance(11, "c");
        assert_eq!(
            cursor,
            Cursor {
                time_ms: 11,
                ids: vec!["c".to_owned()]
            }
        );
    }
}
