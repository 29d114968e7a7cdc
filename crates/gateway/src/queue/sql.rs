//! The messages table as the queue: a claim reserves the most urgent due rows in one statement
//! (with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so competing instances never wait on each
//! other), and a message's status and `next_attempt_at` are its job. Nothing is written per
//! message besides the message itself. Enqueues in this process wake idle workers at once; an
//! idle worker otherwise sleeps until the earliest due time (or the poll interval, for work
//! another instance stored).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Notify;

use super::job::{Job, JobQueue, QueueError};
use crate::domain::{MessageId, Priority, UnixMillis, now_ms};
use crate::store::{Claim, Store};

/// The queue in the gateway's own database.
#[derive(Debug, Clone)]
pub struct SqlQueue {
    store: Store,
    notify: Arc<Notify>,
}

impl SqlQueue {
    /// The queue of `store`'s messages.
    pub fn new(store: Store) -> Self {
        Self { store, notify: Arc::new(Notify::new()) }
    }

    fn wake_if_due(&self, run_at: UnixMillis) {
        if run_at <= now_ms() {
            self.notify.notify_waiters();
        }
    }
}

#[async_trait]
impl JobQueue for SqlQueue {
    async fn enqueue(&self, job: Job) -> Result<(), QueueError> {
        self.wake_if_due(job.run_at);
        Ok(())
    }

    async fn claim(&self, worker: &str, limit: usize, lease: Duration) -> Result<Vec<Claim>, QueueError> {
        Ok(self.store.claim_next(worker, limit, lease).await?)
    }

    async fn complete(&self, _message_id: MessageId) -> Result<(), QueueError> {
        Ok(())
    }

    async fn reschedule(&self, _message_id: MessageId, _priority: Priority, run_at: UnixMillis) -> Result<(), QueueError> {
        self.wake_if_due(run_at);
        Ok(())
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let notified = self.notify.notified();
        let now = now_ms();
        let until_due = match self.store.next_due_at(now).await {
            Ok(Some(at)) => Duration::from_millis(u64::try_from(at - now).unwrap_or(0)),
            Ok(None) | Err(_) => timeout,
        };
        // Due rows that a claim did not get are locked by another instance for a moment.
        let wait = timeout.min(until_due).max(Duration::from_millis(5));
        let _ = tokio::time::timeout(wait, notified).await;
    }

    async fn ping(&self) -> Result<(), QueueError> {
        Ok(self.store.ping().await?)
    }
}
