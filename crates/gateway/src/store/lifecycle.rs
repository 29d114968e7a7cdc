//! The writes that move a message through its life: claims and send attempts (worker side), and
//! status reports (worker and callbacks), each applied in one transaction together with its
//! status-log entry and its metrics.

use sqlx::AssertSqlSafe;
use sqlx::any::AnyRow;

use super::messages::{MESSAGE_COLUMNS, log_status, message_from_row};
use super::metrics::record_counts;
use super::rows::{int, opt_int, opt_text, text};
use super::{MessageRecord, Store, StoreError};
use crate::domain::status::{StatusEvent, UnixMillis};
use crate::domain::{MessageId, MessageStatus};

/// Who reported a status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusSource {
    /// The worker, from Twilio's answer to a send.
    Worker,
    /// A Twilio status callback.
    Callback,
    /// The worker, after asking Twilio what became of an attempt whose answer was lost.
    Reconcile,
}

impl StatusSource {
    fn as_str(self) -> &'static str {
        match self {
            Self::Worker => "worker",
            Self::Callback => "callback",
            Self::Reconcile => "reconcile",
        }
    }
}

/// What a send attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The request is (or was, when the worker died) on its way to Twilio.
    InFlight,
    /// Twilio accepted the message.
    Accepted,
    /// Twilio refused it for now (429, 5xx) or it never reached Twilio; retry.
    Retryable,
    /// The request may have reached Twilio but no answer came back; reconcile before resending.
    Unknown,
    /// Twilio refused it for good.
    Permanent,
    /// An attempt whose answer was lost, found at Twilio afterwards.
    Reconciled,
    /// An attempt whose answer was lost and that Twilio has no record of.
    Lost,
}

impl AttemptOutcome {
    fn as_str(self) -> &'static str {
        match self {
            Self::InFlight => "in_flight",
            Self::Accepted => "accepted",
            Self::Retryable => "retryable",
            Self::Unknown => "unknown",
            Self::Permanent => "permanent",
            Self::Reconciled => "reconciled",
            Self::Lost => "lost",
        }
    }
}

/// One recorded send attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptRecord {
    /// 1 for the first attempt.
    pub attempt: i64,
    /// The worker that made it.
    pub worker: String,
    /// When the request was about to leave.
    pub started_at: UnixMillis,
    /// When its outcome was recorded.
    pub finished_at: Option<UnixMillis>,
    /// Outcome name (see [`AttemptOutcome`]).
    pub outcome: String,
    /// Twilio's HTTP status, when an answer came.
    pub http_status: Option<i64>,
    /// Twilio's error code.
    pub error_code: Option<i64>,
    /// Twilio's error message, or the network error.
    pub error_message: Option<String>,
    /// The SID Twilio gave.
    pub message_sid: Option<String>,
}

/// A message reserved for one worker.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The message as claimed.
    pub message: MessageRecord,
    /// An earlier attempt whose outcome is unknown (its worker died or its answer was lost): the
    /// worker must ask Twilio about it before sending again.
    pub unresolved: Option<AttemptRecord>,
}

/// Which message a status report is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRef {
    /// Our id, when the callback URL carried it.
    pub id: Option<MessageId>,
    /// Twilio's SID.
    pub sid: String,
}

/// What applying a status report did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// The status moved forward.
    Applied {
        /// Status before.
        previous: MessageStatus,
        /// Status after.
        current: MessageStatus,
    },
    /// The report was a duplicate or stale: logged, current status kept.
    Ignored {
        /// The status kept.
        current: MessageStatus,
    },
    /// No message has this SID yet: the report is kept and applied when the SID is recorded.
    Unmatched,
}

fn attempt_from_row(row: &AnyRow) -> Result<AttemptRecord, StoreError> {
    Ok(AttemptRecord {
        attempt: int(row, "attempt")?,
        worker: text(row, "worker")?,
        started_at: int(row, "started_at")?,
        finished_at: opt_int(row, "finished_at")?,
        outcome: text(row, "outcome")?,
        http_status: opt_int(row, "http_status")?,
        error_code: opt_int(row, "error_code")?,
        error_message: opt_text(row, "error_message")?,
        message_sid: opt_text(row, "message_sid")?,
    })
}

const ATTEMPT_COLUMNS: &str = "attempt, worker, started_at, finished_at, outcome, http_status, error_code, error_message, message_sid";

/// The result of one send attempt, as the worker records it.
#[derive(Debug, Clone, Default)]
pub struct AttemptResult {
    /// HTTP status of Twilio's answer.
    pub http_status: Option<i64>,
    /// Twilio's (or a local) error code.
    pub error_code: Option<i64>,
    /// Error text.
    pub error_message: Option<String>,
}

impl Store {
    /// Reserves a sendable message for `worker` until `lease_until`. `None` if it is not due, not
    /// sendable any more, or held by another live worker: a duplicate job is harmless.
    pub async fn claim_message(
        &self,
        id: MessageId,
        worker: &str,
        now: UnixMillis,
        lease_until: UnixMillis,
    ) -> Result<Option<Claim>, StoreError> {
        let row = sqlx::query(AssertSqlSafe(format!(
            "UPDATE messages SET lease_owner = $1, lease_until = $2 \
             WHERE id = $3 AND status IN ('pending', 'retrying') AND (lease_until IS NULL OR lease_until < $4) \
             AND (next_attempt_at IS NULL OR next_attempt_at <= $4) RETURNING {MESSAGE_COLUMNS}"
        )))
        .bind(worker.to_owned())
        .bind(lease_until)
        .bind(id.to_string())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else { return Ok(None) };
        let message = message_from_row(&row)?;
        let unresolved = sqlx::query(AssertSqlSafe(format!(
            "SELECT {ATTEMPT_COLUMNS} FROM send_attempts WHERE message_id = $1 AND outcome IN ('in_flight', 'unknown') \
             ORDER BY attempt DESC LIMIT 1"
        )))
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?;
        Ok(Some(Claim { message, unresolved: unresolved.as_ref().map(attempt_from_row).transpose()? }))
    }

    /// Records that attempt N+1 is about to leave for Twilio, renewing the lease until
    /// `lease_until`; `None` if the lease was lost or has expired (another worker may hold it).
    pub async fn begin_attempt(
        &self,
        id: MessageId,
        worker: &str,
        now: UnixMillis,
        lease_until: UnixMillis,
    ) -> Result<Option<i64>, StoreError> {
        let mut tx = self.begin().await?;
        let attempt: Option<i64> = sqlx::query_scalar(
            "UPDATE messages SET attempts = attempts + 1, lease_until = $3 \
             WHERE id = $1 AND lease_owner = $2 AND lease_until > $4 AND status IN ('pending', 'retrying') RETURNING attempts",
        )
        .bind(id.to_string())
        .bind(worker.to_owned())
        .bind(lease_until)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(attempt) = attempt else { return Ok(None) };
        sqlx::query("INSERT INTO send_attempts (message_id, attempt, worker, started_at, outcome) VALUES ($1, $2, $3, $4, 'in_flight')")
            .bind(id.to_string())
            .bind(attempt)
            .bind(worker.to_owned())
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(attempt))
    }

    /// Records the outcome of an attempt that changes nothing else (e.g. a lost attempt).
    pub async fn finish_attempt(
        &self,
        id: MessageId,
        attempt: i64,
        outcome: AttemptOutcome,
        result: &AttemptResult,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        finish_attempt(&mut *self.pool.acquire().await?, id, attempt, outcome, result, None, now).await
    }

    /// Twilio accepted attempt `attempt` and named it `sid`: records the SID, releases the lease,
    /// moves the message to `queued`, and applies any callbacks that raced ahead of this answer.
    pub async fn record_accepted(
        &self,
        id: MessageId,
        attempt: i64,
        outcome: AttemptOutcome,
        sid: &str,
        source: StatusSource,
        now: UnixMillis,
    ) -> Result<ApplyOutcome, StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE messages SET message_sid = COALESCE(message_sid, $1), lease_owner = NULL, lease_until = NULL, \
             next_attempt_at = NULL, \
             error_code = CASE WHEN status IN ('pending', 'retrying') THEN NULL ELSE error_code END, \
             error_message = CASE WHEN status IN ('pending', 'retrying') THEN NULL ELSE error_message END WHERE id = $2",
        )
        .bind(sid.to_owned())
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        finish_attempt(&mut tx, id, attempt, outcome, &AttemptResult { http_status: Some(201), ..Default::default() }, Some(sid), now)
            .await?;
        let message = lock_message(&mut tx, self.for_update(), "id", &id.to_string())
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("message {id} vanished")))?;
        let event = StatusEvent { status: MessageStatus::Queued, at: now, error_code: None };
        let outcome = apply_locked(&mut tx, &message, &event, source, None, None).await?;
        let early = sqlx::query("DELETE FROM unmatched_callbacks WHERE message_sid = $1 RETURNING status, error_code, received_at")
            .bind(sid.to_owned())
            .fetch_all(&mut *tx)
            .await?;
        let mut outcome = outcome;
        for row in early {
            let Some(status) = MessageStatus::from_twilio(&text(&row, "status")?) else { continue };
            let event = StatusEvent { status, at: int(&row, "received_at")?, error_code: opt_int(&row, "error_code")? };
            let current = lock_message(&mut tx, self.for_update(), "id", &id.to_string())
                .await?
                .ok_or_else(|| StoreError::Corrupt(format!("message {id} vanished")))?;
            outcome =
                apply_locked(&mut tx, &current, &event, StatusSource::Callback, Some("arrived before the SID was recorded".into()), None)
                    .await?;
        }
        tx.commit().await?;
        Ok(outcome)
    }

    /// A retryable failure: the message waits until `next_attempt_at`.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_retry(
        &self,
        id: MessageId,
        worker: &str,
        attempt: i64,
        outcome: AttemptOutcome,
        result: &AttemptResult,
        next_attempt_at: UnixMillis,
        now: UnixMillis,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        let previous: Option<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT status FROM messages WHERE id = $1 AND lease_owner = $2 AND status IN ('pending', 'retrying'){}",
            self.for_update()
        )))
        .bind(id.to_string())
        .bind(worker.to_owned())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(previous) = previous else {
            // A status callback has already shown that this attempt reached Twilio.
            let sid: Option<String> =
                sqlx::query_scalar("SELECT message_sid FROM messages WHERE id = $1").bind(id.to_string()).fetch_one(&mut *tx).await?;
            finish_attempt(&mut tx, id, attempt, AttemptOutcome::Reconciled, result, sid.as_deref(), now).await?;
            sqlx::query("UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
                .bind(id.to_string())
                .bind(worker.to_owned())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(());
        };
        finish_attempt(&mut tx, id, attempt, outcome, result, None, now).await?;
        {
            sqlx::query(
                "UPDATE messages SET status = 'retrying', next_attempt_at = $1, lease_owner = NULL, lease_until = NULL, \
                 error_code = $2, error_message = $3, last_status_at = $4 WHERE id = $5",
            )
            .bind(next_attempt_at)
            .bind(result.error_code)
            .bind(result.error_message.clone())
            .bind(now)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
            let previous = previous.parse().map_err(|_| StoreError::Corrupt(format!("status {previous:?}")))?;
            let detail = format!("attempt {attempt}: {}", result.error_message.as_deref().unwrap_or("no answer"));
            log_status(&mut tx, id, Some(previous), MessageStatus::Retrying, true, result.error_code, "worker", Some(detail), now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// A failure that will not be retried (a permanent Twilio error, an opted-out recipient, or
    /// the last attempt used up): the message becomes `failed` with its code kept.
    pub async fn record_failure(
        &self,
        id: MessageId,
        attempt: Option<i64>,
        result: &AttemptResult,
        detail: Option<String>,
        now: UnixMillis,
    ) -> Result<ApplyOutcome, StoreError> {
        let mut tx = self.begin().await?;
        let message = lock_message(&mut tx, self.for_update(), "id", &id.to_string())
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("message {id} vanished")))?;
        if !message.status().is_sendable() {
            // A callback has already shown that Twilio has the message: it did not fail to send.
            if let Some(attempt) = attempt {
                finish_attempt(&mut tx, id, attempt, AttemptOutcome::Reconciled, result, message.message_sid.as_deref(), now).await?;
            }
            sqlx::query("UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(ApplyOutcome::Ignored { current: message.status() });
        }
        if let Some(attempt) = attempt {
            finish_attempt(&mut tx, id, attempt, AttemptOutcome::Permanent, result, None, now).await?;
        }
        sqlx::query("UPDATE messages SET lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL, error_message = $1 WHERE id = $2")
            .bind(result.error_message.clone())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let message = lock_message(&mut tx, self.for_update(), "id", &id.to_string())
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("message {id} vanished")))?;
        let event = StatusEvent { status: MessageStatus::Failed, at: now, error_code: result.error_code };
        let outcome = apply_locked(&mut tx, &message, &event, StatusSource::Worker, detail, result.error_message.clone()).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Gives a claimed message back without an attempt (e.g. on shutdown before sending).
    pub async fn release(&self, id: MessageId, worker: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE messages SET lease_owner = NULL, lease_until = NULL WHERE id = $1 AND lease_owner = $2")
            .bind(id.to_string())
            .bind(worker.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Applies a status report (usually a Twilio callback) to the message it names.
    pub async fn apply_status(
        &self,
        target: &MessageRef,
        event: &StatusEvent,
        source: StatusSource,
        error_message: Option<String>,
    ) -> Result<ApplyOutcome, StoreError> {
        let mut tx = self.begin().await?;
        let mut message = match target.id {
            Some(id) => lock_message(&mut tx, self.for_update(), "id", &id.to_string()).await?,
            None => None,
        };
        if message.as_ref().is_some_and(|m| m.message_sid.as_deref().is_some_and(|sid| sid != target.sid)) {
            message = None;
        }
        if message.is_none() {
            message = lock_message(&mut tx, self.for_update(), "message_sid", &target.sid).await?;
        }
        let Some(message) = message else {
            sqlx::query("INSERT INTO unmatched_callbacks (message_sid, status, error_code, received_at) VALUES ($1, $2, $3, $4)")
                .bind(target.sid.clone())
                .bind(event.status.as_str().to_owned())
                .bind(event.error_code)
                .bind(event.at)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            return Ok(ApplyOutcome::Unmatched);
        };
        if message.message_sid.is_none() {
            sqlx::query("UPDATE messages SET message_sid = $1 WHERE id = $2")
                .bind(target.sid.clone())
                .bind(message.id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let outcome = apply_locked(&mut tx, &message, event, source, None, error_message).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    /// Sendable messages that are due and not leased, for the sweeper to (re-)queue.
    pub async fn due_messages(&self, now: UnixMillis, limit: i64) -> Result<Vec<(MessageId, i64, UnixMillis)>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, priority, next_attempt_at FROM messages WHERE status IN ('pending', 'retrying') \
             AND next_attempt_at <= $1 AND (lease_until IS NULL OR lease_until < $1) ORDER BY next_attempt_at LIMIT $2",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let id = text(row, "id")?;
                Ok((id.parse().map_err(|_| StoreError::Corrupt(id))?, int(row, "priority")?, int(row, "next_attempt_at")?))
            })
            .collect()
    }

    /// Every send attempt of a message, oldest first.
    pub async fn attempts(&self, id: MessageId) -> Result<Vec<AttemptRecord>, StoreError> {
        let rows =
            sqlx::query(AssertSqlSafe(format!("SELECT {ATTEMPT_COLUMNS} FROM send_attempts WHERE message_id = $1 ORDER BY attempt")))
                .bind(id.to_string())
                .fetch_all(&self.pool)
                .await?;
        rows.iter().map(attempt_from_row).collect()
    }
}

async fn finish_attempt(
    conn: &mut sqlx::AnyConnection,
    id: MessageId,
    attempt: i64,
    outcome: AttemptOutcome,
    result: &AttemptResult,
    sid: Option<&str>,
    now: UnixMillis,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE send_attempts SET outcome = $1, finished_at = $2, http_status = $3, error_code = $4, error_message = $5, \
         message_sid = $6 WHERE message_id = $7 AND attempt = $8",
    )
    .bind(outcome.as_str().to_owned())
    .bind(now)
    .bind(result.http_status)
    .bind(result.error_code)
    .bind(result.error_message.clone())
    .bind(sid.map(str::to_owned))
    .bind(id.to_string())
    .bind(attempt)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn lock_message(
    conn: &mut sqlx::AnyConnection,
    for_update: &str,
    column: &str,
    value: &str,
) -> Result<Option<MessageRecord>, StoreError> {
    let row = sqlx::query(AssertSqlSafe(format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE {column} = $1{for_update}")))
        .bind(value.to_owned())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(message_from_row).transpose()
}

/// Applies `event` to a message already read (and locked) in this transaction: the status
/// machine, the row update, the status-log entry and the metrics rollups.
async fn apply_locked(
    conn: &mut sqlx::AnyConnection,
    message: &MessageRecord,
    event: &StatusEvent,
    source: StatusSource,
    detail: Option<String>,
    error_message: Option<String>,
) -> Result<ApplyOutcome, StoreError> {
    let transition = message.lifecycle.apply(event);
    let next = &transition.next;
    let counted = super::metrics::counted_flags(next) | message.counted;
    if transition.changed || counted != message.counted {
        let error_message = if transition.status_changed && next.status.is_terminal() {
            error_message.or_else(|| next.error_code.map(|code| crate::twilio::errors::describe(code).to_owned()))
        } else {
            message.error_message.clone()
        };
        sqlx::query(
            "UPDATE messages SET status = $1, queued_at = $2, sent_at = $3, delivered_at = $4, read_at = $5, failed_at = $6, \
             error_code = $7, error_message = $8, last_status_at = $9, counted = $10 WHERE id = $11",
        )
        .bind(next.status.as_str().to_owned())
        .bind(next.queued_at)
        .bind(next.sent_at)
        .bind(next.delivered_at)
        .bind(next.read_at)
        .bind(next.failed_at)
        .bind(next.error_code)
        .bind(error_message.clone())
        .bind(next.last_status_at)
        .bind(counted)
        .bind(message.id.to_string())
        .execute(&mut *conn)
        .await?;
        record_counts(conn, message, next, counted & !message.counted, error_message.as_deref()).await?;
    }
    let detail = detail.or_else(|| (!transition.status_changed).then(|| format!("kept {}: not a step forward", message.status())));
    log_status(
        conn,
        message.id,
        Some(message.status()),
        event.status,
        transition.status_changed,
        event.error_code,
        source.as_str(),
        detail,
        event.at,
    )
    .await?;
    Ok(if transition.status_changed {
        ApplyOutcome::Applied { previous: message.status(), current: next.status }
    } else {
        ApplyOutcome::Ignored { current: next.status }
    })
}
