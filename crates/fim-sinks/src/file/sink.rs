use std::future::Future;
use std::path::Path;
use std::pin::Pin;

use tokio::fs::{File, OpenOptions};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::FileConfig;
use crate::lines::{Batch, encode_batch};
use crate::retry::Backoff;
use crate::{Delivery, Sink, SinkContext, SinkMetrics};

/// Appends records to a file.
#[derive(Debug)]
pub struct FileSink {
    config: FileConfig,
    context: SinkContext,
}

impl FileSink {
    pub fn new(config: FileConfig, context: SinkContext) -> Self {
        Self { config, context }
    }
}

impl Sink for FileSink {
    fn run(
        self: Box<Self>,
        mut input: mpsc::Receiver<Delivery>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let FileSink {
                config,
                mut context,
            } = *self;
            let mut file: Option<File> = None;
            let mut batch = Batch::default();

            loop {
                tokio::select! {
                    // Checked first, so a rotation signalled before a record
                    // arrived takes effect before that record is written.
                    biased;
                    // A rotation reopens the file before the next write.
                    changed = context.reopen.changed() => {
                        if changed.is_ok() {
                            tracing::info!(sink = %context.name, path = %config.path.display(), "reopening the file");
                            file = None;
                        }
                        continue;
                    }
                    more = batch.fill(&mut input) => {
                        if !more {
                            break;
                        }
                    }
                }
                encode_batch(&context, &mut batch);
                if batch.bytes.is_empty() {
                    continue;
                }

                let mut backoff = Backoff::default();
                loop {
                    match write(&mut file, &config.path, &batch.bytes, config.fsync).await {
                        Ok(()) => break,
                        Err(err) => {
                            // The file is reopened on the next attempt: a
                            // rotated or deleted file is recreated.
                            file = None;
                            SinkMetrics::add(&context.metrics.retried, batch.pending.len() as u64);
                            let wait = backoff.next_wait();
                            tracing::warn!(
                                sink = %context.name,
                                path = %config.path.display(),
                                cause = %err,
                                attempt = backoff.failures(),
                                wait_ms = wait.as_millis() as u64,
                                "failed to write the file, retrying"
                            );
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
                batch.acknowledge(&context);
            }

            if let Some(mut file) = file
                && let Err(err) = file.flush().await
            {
                tracing::warn!(sink = %context.name, cause = %err, "failed to flush the file at close");
            }
        })
    }
}

async fn write(
    file: &mut Option<File>,
    path: &Path,
    bytes: &[u8],
    fsync: bool,
) -> std::io::Result<()> {
    if file.is_none() {
        *file = Some(open(path).await?);
    }
    let Some(open) = file.as_mut() else {
        return Err(std::io::Error::other("file is not open"));
    };
    open.write_all(bytes).await?;
    open.flush().await?;
    if fsync {
        open.sync_data().await?;
    }
    Ok(())
}

async fn open(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path
        .parent()
        .filter(|parent| !parent.as_os_str().is_empty())
    {
        tokio::fs::create_dir_all(parent).await?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .await
}
