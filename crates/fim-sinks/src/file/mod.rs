//! The file sink: one encoded record per line, appended to a file that is
//! reopened on SIGHUP (log rotation); a record is acknowledged once its line
//! is written and flushed, and fsynced first when `fsync = true`.

mod config;
mod sink;
#[cfg(test)]
mod tests;

pub use config::FileConfig;
pub use sink::FileSink;
