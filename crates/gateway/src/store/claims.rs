//! Reserving messages for workers, and what the queue side needs to know about sendable
//! messages (the sweeper, the gauges, draining).

use std::time::Duration;

use super::db::{Store, on_pool};
use super::error::StoreError;
use super::messages::unexpected;
use super::write::command::{ApplyOutcome, Claim, ClaimResult, Command, Finish, Pick, Reply};
use crate::domain::{MessageId, Priority, UnixMillis, now_ms};

/// What the sendable messages look like right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, sqlx::FromRow)]
pub struct Backlog {
    /// Sendable messages (pending or retrying), due or not.
    pub sendable: i64,
    /// Of those, the ones due now and not held by a worker.
    pub due: i64,
    /// Held by a worker right now.
    pub leased: i64,
    /// The oldest due time among the due ones (ms).
    pub oldest_due_at: Option<UnixMillis>,
}

impl Store {
    /// Reserves up to `limit` of the most urgent due messages for `worker` for `lease`
    /// (the messages table is the queue). Recipients who opted out are failed on the way.
    pub async fn claim_next(&self, worker: &str, limit: usize, lease: Duration) -> Result<Vec<Claim>, StoreError> {
        let results = self.claim(Pick::Next(limit), worker, lease).await?;
        Ok(results.into_iter().filter_map(|r| if let ClaimResult::Claimed(c) = r { Some(*c) } else { None }).collect())
    }

    /// Reserves the messages `ids` (named by an external queue) for `worker`, each only if it is
    /// sendable, due and not held by another live worker; says for each what it found.
    pub async fn claim_ids(&self, ids: Vec<MessageId>, worker: &str, lease: Duration) -> Result<Vec<ClaimResult>, StoreError> {
        self.claim(Pick::Ids(ids), worker, lease).await
    }

    /// Reserves message `id` for `worker` whether it is due or not, unless another live worker
    /// holds it (the API's immediate mode).
    pub async fn claim_now(&self, id: MessageId, worker: &str, lease: Duration) -> Result<Option<Claim>, StoreError> {
        let results = self.claim(Pick::Now(id), worker, lease).await?;
        Ok(results.into_iter().find_map(|r| if let ClaimResult::Claimed(c) = r { Some(*c) } else { None }))
    }

    async fn claim(&self, pick: Pick, worker: &str, lease: Duration) -> Result<Vec<ClaimResult>, StoreError> {
        match self.submit(Command::Claim { pick, worker: worker.to_owned(), lease, window_check: self.window_check() }).await? {
            Reply::Claimed(results) => Ok(results),
            other => Err(unexpected(&other)),
        }
    }

    /// Gives a claimed message back without an attempt (e.g. on shutdown before sending), due
    /// again at `not_before` (or as it was).
    pub async fn release(&self, id: MessageId, worker: &str, not_before: Option<UnixMillis>) -> Result<ApplyOutcome, StoreError> {
        self.finish(id, worker, Finish::Release { not_before }).await
    }

    pub(super) async fn finish(&self, id: MessageId, worker: &str, outcome: Finish) -> Result<ApplyOutcome, StoreError> {
        match self.submit(Command::Finish { id, worker: worker.to_owned(), outcome, at: now_ms() }).await? {
            Reply::Applied(outcome) => Ok(outcome),
            other => Err(unexpected(&other)),
        }
    }

    /// Sendable messages that are due and not leased, oldest due first, for the sweeper to
    /// (re-)queue into an external queue.
    pub async fn due_messages(&self, now: UnixMillis, limit: i64) -> Result<Vec<(MessageId, Priority, UnixMillis)>, StoreError> {
        #[derive(sqlx::FromRow)]
        struct Due {
            id: MessageId,
            priority: Priority,
            next_attempt_at: UnixMillis,
        }
        let rows: Vec<Due> = on_pool!(self, pool => sqlx::query_as(
            "SELECT id, priority, next_attempt_at FROM messages WHERE status IN ('pending', 'retrying') \
             AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(pool)
        .await?);
        Ok(rows.into_iter().map(|d| (d.id, d.priority, d.next_attempt_at)).collect())
    }

    /// When the next sendable message can be claimed: the earliest due time among those no
    /// worker holds, or the earliest lease expiry (to sleep until).
    pub async fn next_due_at(&self, now: UnixMillis) -> Result<Option<UnixMillis>, StoreError> {
        let (free, held): (Option<UnixMillis>, Option<UnixMillis>) = on_pool!(self, pool => (
            sqlx::query_scalar(
                "SELECT next_attempt_at FROM messages WHERE status IN ('pending', 'retrying') \
                 AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_attempt_at LIMIT 1",
            )
            .bind(now)
            .fetch_optional(pool)
            .await?
            .flatten(),
            sqlx::query_scalar("SELECT MIN(lease_until) FROM messages WHERE status IN ('pending', 'retrying') AND lease_until >= $1")
                .bind(now)
                .fetch_one(pool)
                .await?,
        ));
        Ok(match (free, held) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }

    /// Counts of sendable messages (for the gauges, readiness and draining).
    pub async fn backlog(&self, now: UnixMillis) -> Result<Backlog, StoreError> {
        Ok(on_pool!(self, pool => sqlx::query_as(
            "SELECT COUNT(*) AS sendable, \
             COALESCE(SUM(CASE WHEN next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) THEN 1 ELSE 0 END), 0) AS due, \
             COALESCE(SUM(CASE WHEN lease_until >= $1 THEN 1 ELSE 0 END), 0) AS leased, \
             MIN(CASE WHEN next_attempt_at <= $1 THEN next_attempt_at END) AS oldest_due_at \
             FROM messages WHERE status IN ('pending', 'retrying')",
        )
        .bind(now)
        .fetch_one(pool)
        .await?))
    }
}
