//! The embedded queue: a `queue_jobs` table in the gateway's own database. Claims take a lease in
//! one `UPDATE … RETURNING` (with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so competing workers
//! never wait on each other). Enqueues in this process wake idle workers at once.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::AssertSqlSafe;
use tokio::sync::Notify;

use super::{Job, JobQueue, QueueError};
use crate::domain::MessageId;
use crate::domain::status::UnixMillis;
use crate::store::{Backend, Store, now_ms};

/// Jobs in the database.
#[derive(Debug, Clone)]
pub struct SqlQueue {
    store: Store,
    notify: Arc<Notify>,
}

impl SqlQueue {
    /// A queue in `store`'s database.
    pub fn new(store: Store) -> Self {
        Self { store, notify: Arc::new(Notify::new()) }
    }
}

#[async_trait]
impl JobQueue for SqlQueue {
    async fn enqueue(&self, job: Job) -> Result<(), QueueError> {
        sqlx::query(
            "INSERT INTO queue_jobs (message_id, priority, run_at, created_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (message_id) DO UPDATE SET run_at = CASE WHEN excluded.run_at < queue_jobs.run_at \
             THEN excluded.run_at ELSE queue_jobs.run_at END, priority = excluded.priority",
        )
        .bind(job.message_id.to_string())
        .bind(job.priority)
        .bind(job.run_at)
        .bind(now_ms())
        .execute(self.store.pool())
        .await?;
        self.notify.notify_waiters();
        Ok(())
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>, QueueError> {
        let now = now_ms();
        let skip_locked = match self.store.backend() {
            Backend::Sqlite => "",
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        };
        let row: Option<(String, i64, i64)> = sqlx::query_as(AssertSqlSafe(format!(
            "UPDATE queue_jobs SET lease_owner = $1, lease_until = $2 WHERE message_id IN ( \
             SELECT message_id FROM queue_jobs WHERE run_at <= $3 AND (lease_until IS NULL OR lease_until < $3) \
             ORDER BY priority, run_at LIMIT 1{skip_locked}) AND (lease_until IS NULL OR lease_until < $3) \
             RETURNING message_id, priority, run_at"
        )))
        .bind(worker.to_owned())
        .bind(now + lease.as_millis() as i64)
        .bind(now)
        .fetch_optional(self.store.pool())
        .await?;
        row.map(|(id, priority, run_at)| {
            Ok(Job { message_id: id.parse().map_err(|_| QueueError(format!("bad message id {id:?} in queue")))?, priority, run_at })
        })
        .transpose()
    }

    async fn complete(&self, message_id: MessageId) -> Result<(), QueueError> {
        sqlx::query("DELETE FROM queue_jobs WHERE message_id = $1").bind(message_id.to_string()).execute(self.store.pool()).await?;
        Ok(())
    }

    async fn reschedule(&self, message_id: MessageId, run_at: UnixMillis) -> Result<(), QueueError> {
        sqlx::query("UPDATE queue_jobs SET run_at = $1, lease_owner = NULL, lease_until = NULL WHERE message_id = $2")
            .bind(run_at)
            .bind(message_id.to_string())
            .execute(self.store.pool())
            .await?;
        Ok(())
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout, self.notify.notified()).await;
    }

    async fn depth(&self) -> Result<i64, QueueError> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM queue_jobs").fetch_one(self.store.pool()).await?)
    }
}
