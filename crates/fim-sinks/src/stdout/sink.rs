use std::future::Future;
use std::pin::Pin;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

use super::StdoutConfig;
use crate::lines::{Batch, encode_batch};
use crate::retry::Backoff;
use crate::{Delivery, Sink, SinkContext, SinkMetrics};

/// Writes records to standard output.
#[derive(Debug)]
pub struct StdoutSink {
    context: SinkContext,
}

impl StdoutSink {
    pub fn new(_config: StdoutConfig, context: SinkContext) -> Self {
        Self { context }
    }
}

impl Sink for StdoutSink {
    fn run(
        self: Box<Self>,
        mut input: mpsc::Receiver<Delivery>,
    ) -> Pin<Box<dyn Future<Output = ()> + Send>> {
        Box::pin(async move {
            let context = self.context;
            let mut stdout = tokio::io::stdout();
            let mut batch = Batch::default();
            while batch.fill(&mut input).await {
                encode_batch(&context, &mut batch);
                let mut backoff = Backoff::default();
                loop {
                    let written = async {
                        stdout.write_all(&batch.bytes).await?;
                        stdout.flush().await
                    }
                    .await;
                    match written {
                        Ok(()) => break,
                        Err(err) => {
                            SinkMetrics::add(&context.metrics.retried, batch.pending.len() as u64);
                            let wait = backoff.next_wait();
                            tracing::warn!(sink = %context.name, cause = %err, wait_ms = wait.as_millis() as u64, "failed to write to stdout, retrying");
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
                batch.acknowledge(&context);
            }
        })
    }
}
