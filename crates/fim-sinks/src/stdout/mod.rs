//! The stdout sink: one encoded record per line on standard output,
//! acknowledged once the line is flushed.

mod config;
mod sink;

pub use config::StdoutConfig;
pub use sink::StdoutSink;
