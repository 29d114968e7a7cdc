//! The worker pool: one dispatcher per process claims as many messages as it has free send slots
//! (`WORKER_CONCURRENCY`) in one call to the queue, and sends each on its own task through
//! [`Sender`]; plus the sweeper, which re-queues due messages an external queue does not hold,
//! the [`Poller`], which asks Twilio about messages whose callbacks stopped coming, and the
//! gauges of the backlog. Shutdown is a `CancellationToken`: the dispatcher stops
//! claiming and the sends in hand finish.

mod backoff;
mod pacing;
mod poller;
mod reconcile;
mod sender;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub use backoff::backoff_delay;
pub use poller::{Polled, Poller};
pub use sender::{SendOutcome, Sender, WorkerError};

use crate::domain::now_ms;
use crate::queue::{Job, JobQueue};
use crate::store::Store;
use crate::telemetry::metrics;

/// Which background loops a process runs.
#[derive(Debug, Clone)]
pub struct Loops {
    /// The sweeper: only useful with an external queue, which can lose jobs.
    pub sweeper: bool,
    /// The poller, unless it is turned off (`POLL_RATE_PER_SEC=0`).
    pub poller: Option<Arc<Poller>>,
}

/// Starts the dispatcher, the sweeper and the poller (when asked) and the gauges; they run until
/// `shutdown` is cancelled.
pub fn spawn_pool(sender: Arc<Sender>, store: Store, loops: Loops, shutdown: CancellationToken) -> JoinSet<()> {
    let config = sender.config().clone();
    let mut set = JoinSet::new();
    let worker_id = uuid::Uuid::new_v4().simple().to_string()[..12].to_owned();
    set.spawn(dispatch(sender.clone(), worker_id, shutdown.clone()));
    if loops.sweeper {
        set.spawn(sweep_loop(store.clone(), sender.queue().clone(), config.sweep_interval, shutdown.clone()));
    }
    if let Some(poller) = loops.poller {
        set.spawn(poller.run(shutdown.clone()));
    }
    set.spawn(gauge_loop(store, shutdown));
    set
}

/// Claims work for free slots, and sends each claimed message on a task of its own.
async fn dispatch(sender: Arc<Sender>, worker_id: String, shutdown: CancellationToken) {
    let config = sender.config().clone();
    let slots = Arc::new(Semaphore::new(config.concurrency));
    let mut sends = JoinSet::new();
    loop {
        let first = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
        };
        let mut permits = vec![first];
        while let Ok(permit) = slots.clone().try_acquire_owned() {
            permits.push(permit);
        }
        match sender.queue().claim(&worker_id, permits.len(), config.lease).await {
            Ok(claims) if !claims.is_empty() => {
                for (claim, permit) in claims.into_iter().zip(permits.drain(..)) {
                    let (sender, worker_id) = (sender.clone(), worker_id.clone());
                    let span = tracing::info_span!("send", message_id = %claim.message.id);
                    sends.spawn(
                        async move {
                            if let Err(e) = sender.process(claim, &worker_id).await {
                                tracing::error!(error = %crate::telemetry::chain(&e), "send failed; the message is retried when its lease expires");
                            }
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
            }
            Ok(_) => {
                drop(permits);
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = sender.queue().wait_for_work(config.poll_interval) => {}
                }
            }
            Err(e) => {
                drop(permits);
                tracing::warn!(error = %crate::telemetry::chain(&e), "cannot claim work; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
        }
        // Reap finished sends so the set does not grow.
        while sends.try_join_next().is_some() {}
    }
    while sends.join_next().await.is_some() {}
}

/// Re-queues sendable messages that are due and not leased: with an external queue this
/// recovers from the queue losing its data (and from a crash between storing a message and
/// queueing it).
async fn sweep_loop(store: Store, queue: Arc<dyn JobQueue>, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        match sweep_once(&store, queue.as_ref()).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(requeued = n, "sweeper re-queued due messages"),
            Err(e) => tracing::warn!(error = %crate::telemetry::chain(e.as_ref()), "sweeper pass failed"),
        }
    }
}

/// One sweeper pass; returns how many jobs it (re-)enqueued.
pub async fn sweep_once(store: &Store, queue: &dyn JobQueue) -> Result<usize, Box<dyn std::error::Error + Send + Sync>> {
    let due = store.due_messages(now_ms(), 1000).await?;
    for (message_id, priority, run_at) in &due {
        queue.enqueue(Job { message_id: *message_id, priority: *priority, run_at: *run_at }).await?;
    }
    Ok(due.len())
}

/// Keeps the backlog gauges current.
async fn gauge_loop(store: Store, shutdown: CancellationToken) {
    loop {
        let now = now_ms();
        if let Ok(b) = store.backlog(now).await {
            let waited = b.oldest_due_at.map_or(0, |at| (now - at).max(0));
            metrics::backlog(b.sendable, b.due, Duration::from_millis(u64::try_from(waited).unwrap_or(0)));
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
