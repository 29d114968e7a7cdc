//! The job queue. A job only says "look at message X at or after `run_at`, with this priority";
//! the database row stays the source of truth, and the worker claims the message itself before
//! sending, so a duplicate or stale job is harmless (invariants 1 and 2 in DESIGN.md).
//!
//! The embedded default keeps jobs in the database ([`SqlQueue`]).

mod redis;
mod sql;

use std::time::Duration;

use async_trait::async_trait;

pub use self::redis::RedisQueue;
pub use sql::SqlQueue;

use crate::domain::MessageId;
use crate::domain::status::UnixMillis;

/// A unit of work: send (or re-examine) one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// The message to look at.
    pub message_id: MessageId,
    /// 1 (highest) … 10.
    pub priority: i64,
    /// Not before this time.
    pub run_at: UnixMillis,
}

/// Errors from a queue backend.
#[derive(Debug, thiserror::Error)]
#[error("queue error: {0}")]
pub struct QueueError(pub String);

impl From<sqlx::Error> for QueueError {
    fn from(e: sqlx::Error) -> Self {
        Self(e.to_string())
    }
}

/// A durable queue of jobs with priorities, delays and leases.
#[async_trait]
pub trait JobQueue: Send + Sync + 'static {
    /// Adds a job, or if the message already has one, moves it earlier (never later).
    async fn enqueue(&self, job: Job) -> Result<(), QueueError>;
    /// Takes the most urgent due job for `lease`; a job whose lease expires becomes due again.
    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>, QueueError>;
    /// Removes a finished job.
    async fn complete(&self, message_id: MessageId) -> Result<(), QueueError>;
    /// Puts a claimed job back to run at `run_at`.
    async fn reschedule(&self, message_id: MessageId, run_at: UnixMillis) -> Result<(), QueueError>;
    /// Waits until a job may have become available (or `timeout` passes).
    async fn wait_for_work(&self, timeout: Duration);
    /// Number of jobs held (due or not).
    async fn depth(&self) -> Result<i64, QueueError>;
}
