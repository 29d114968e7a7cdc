//! The worker pool: N loops that claim a job, send its message through [`Sender`], and go back
//! for more; plus the sweeper that re-queues due messages the queue does not hold. Shutdown is a
//! `CancellationToken`: loops stop claiming and finish the send in hand.

mod backoff;
mod sender;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use backoff::backoff_delay;
pub use sender::{SendOutcome, Sender};

use crate::queue::{Job, JobQueue};
use crate::store::{Store, now_ms};

/// Starts `concurrency` worker loops and the sweeper; they run until `shutdown` is cancelled.
pub fn spawn_pool(sender: Arc<Sender>, queue: Arc<dyn JobQueue>, store: Store, shutdown: CancellationToken) -> JoinSet<()> {
    let config = sender.config().clone();
    let mut set = JoinSet::new();
    let instance = uuid::Uuid::new_v4().simple().to_string();
    for n in 0..config.concurrency {
        let worker_id = format!("{}-{n}", &instance[..12]);
        set.spawn(work_loop(sender.clone(), queue.clone(), worker_id, config.lease, config.poll_interval, shutdown.clone()));
    }
    set.spawn(sweep_loop(store, queue, config.sweep_interval, shutdown));
    set
}

async fn work_loop(
    sender: Arc<Sender>,
    queue: Arc<dyn JobQueue>,
    worker_id: String,
    lease: Duration,
    poll: Duration,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        match queue.claim(&worker_id, lease).await {
            Ok(Some(job)) => {
                let span = tracing::info_span!("send", message_id = %job.message_id, worker = %worker_id);
                if let Err(e) = sender.process(job.message_id, &worker_id).instrument(span).await {
                    tracing::error!(message_id = %job.message_id, error = %e, "send failed; the job will be retried when its lease expires");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            Ok(None) => {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = queue.wait_for_work(poll) => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim from the queue; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
    }
}

/// Re-queues sendable messages that are due and not leased. With the embedded queue this only
/// matters after a crash between storing a message and queueing it; with an external queue it
/// also recovers from the queue losing its data.
async fn sweep_loop(store: Store, queue: Arc<dyn JobQueue>, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        match sweep_once(&store, queue.as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(requeued = n, "sweeper re-queued due messages"),
            Err(e) => tracing::warn!(error = %e, "sweeper pass failed"),
        }
    }
}

/// One sweeper pass; returns how many jobs it (re-)enqueued.
pub async fn sweep_once(store: &Store, queue: &dyn JobQueue) -> anyhow::Result<usize> {
    let due = store.due_messages(now_ms(), 1000).await?;
    for (message_id, priority, run_at) in &due {
        queue.enqueue(Job { message_id: *message_id, priority: *priority, run_at: *run_at }).await?;
    }
    Ok(due.len())
}
