//! What a queue holds and does: a [`Job`] per message to look at, and the [`JobQueue`] trait.

use std::time::Duration;

use async_trait::async_trait;

use crate::domain::{MessageId, Priority, UnixMillis};
use crate::shared::RedisCallError;
use crate::store::{Claim, StoreError};

/// A unit of work: send (or look again at) one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The message to look at.
    pub message_id: MessageId,
    /// 1 (highest) … 10.
    pub priority: Priority,
    /// Not before this time.
    pub run_at: UnixMillis,
}

/// Errors from a queue.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis could not be reached or answered with an error.
    #[error("the queue is unavailable")]
    Redis(#[from] RedisCallError),
    /// The claim in the database failed.
    #[error("the claim failed")]
    Store(#[from] StoreError),
    /// Redis holds a value this code cannot read.
    #[error("the queue holds an unreadable entry: {0}")]
    Corrupt(String),
}

/// A queue of sendable messages with priorities, delays and leases.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Says that a stored message is due at `run_at`: a new message, or one released. Adds the
    /// job, or moves an existing one earlier (never later).
    async fn enqueue(&self, job: Job) -> Result<(), QueueError>;
    /// Reserves up to `limit` sendable due messages for `worker` for `lease`.
    async fn claim(&self, worker: &str, limit: usize, lease: Duration) -> Result<Vec<Claim>, QueueError>;
    /// Says that a claimed message needs no more sending (accepted, or failed for good).
    async fn complete(&self, message_id: MessageId) -> Result<(), QueueError>;
    /// Says that a claimed message is to be tried again at `run_at` (later or earlier).
    async fn reschedule(&self, message_id: MessageId, priority: Priority, run_at: UnixMillis) -> Result<(), QueueError>;
    /// Waits until work may be available (an enqueue here or elsewhere, or a due time), at most
    /// `timeout`.
    async fn wait_for_work(&self, timeout: Duration);
    /// Checks that the queue answers.
    async fn ping(&self) -> Result<(), QueueError>;
}
