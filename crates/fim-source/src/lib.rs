//! `fim-source`: the Qualys FIM API client and the incremental poller that
//! turns the API into ordered streams of records whose positions can be
//! checkpointed.
//!
//! - [`client`]: auth with token renewal, the shared rate limiter and the
//!   retry rules of each answer.
//! - [`poller`]: one task per stream (events, ignored events, incidents,
//!   incident events), windowed on record times and paged without gaps or
//!   repeats; every record carries an [`AckToken`].
//! - [`tracker`], [`dedup`], [`checkpoint`]: acknowledgements move a
//!   cursor built from record data, and the cursor plus recently delivered
//!   ids are saved so a restart neither loses nor resends records.

pub mod checkpoint;
pub mod client;
pub mod config;
pub mod dedup;
pub mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod poller;
pub mod query;
pub mod rejected;
pub mod secret;
pub mod tracker;

pub use checkpoint::{CheckpointError, CheckpointStore, Cursor, FileCheckpointStore, SourceState};
pub use client::{ApiObserver, FimClient, NoObserver};
pub use config::{SourceConfig, StartFrom};
pub use error::SourceError;
pub use poller::{
    PAGING_WINDOW, Polled, SourceHandle, SourceMonitor, SourceOptions, StreamStatus, start,
};
pub use rejected::RejectedRecords;
pub use secret::Secret;
pub use tracker::{AckToken, StreamTracker};
