use std::path::PathBuf;

use serde::Deserialize;

/// Options of the file sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// File the lines are appended to; created with its directories.
    pub path: PathBuf,
    /// Call fsync before acknowledging, so an acknowledged record survives a
    /// power loss (slower: one fsync per batch).
    #[serde(default)]
    pub fsync: bool,
}
