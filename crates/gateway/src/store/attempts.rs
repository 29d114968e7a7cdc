//! Send attempts, as the worker records them: one begins just before the request leaves, and
//! ends accepted, to retry, failed, or lost.

use std::time::Duration;

use super::db::Store;
use super::error::StoreError;
use super::messages::unexpected;
use super::write::command::{ApplyOutcome, CancelOutcome, Command, Finish, Reply};
use crate::domain::{AttemptOutcome, AttemptResult, MessageId, MessageSid, MessageStatus, StatusSource, UnixMillis, now_ms};

impl Store {
    /// Records that attempt N+1 is about to leave for Twilio, renewing the lease for `lease`;
    /// `None` if `worker` lost the lease or it expired (another worker may hold it).
    pub async fn begin_attempt(&self, id: MessageId, worker: &str, lease: Duration) -> Result<Option<i64>, StoreError> {
        match self.submit(Command::BeginAttempt { id, worker: worker.to_owned(), lease, at: now_ms() }).await? {
            Reply::Began(attempt) => Ok(attempt),
            other => Err(unexpected(&other)),
        }
    }

    /// Twilio accepted `attempt` and named it `sid`: the message becomes `queued`, its lease is
    /// released, and any callbacks that raced ahead of this answer are applied.
    pub async fn record_accepted(
        &self,
        id: MessageId,
        worker: &str,
        attempt: i64,
        sid: MessageSid,
        reconciled: bool,
    ) -> Result<ApplyOutcome, StoreError> {
        let (outcome, source) = if reconciled {
            (AttemptOutcome::Reconciled, StatusSource::Reconcile)
        } else {
            (AttemptOutcome::Accepted, StatusSource::Worker)
        };
        self.finish(id, worker, Finish::Accepted { attempt, sid, outcome, source }).await
    }

    /// A retryable failure of `attempt`: the message waits until `next_at`. `unknown`: the
    /// request may have reached Twilio, so the next claim asks Twilio before sending again.
    pub async fn record_retry(
        &self,
        id: MessageId,
        worker: &str,
        attempt: i64,
        unknown: bool,
        result: AttemptResult,
        next_at: UnixMillis,
    ) -> Result<ApplyOutcome, StoreError> {
        let outcome = if unknown { AttemptOutcome::Unknown } else { AttemptOutcome::Retryable };
        self.finish(id, worker, Finish::Retry { attempt, outcome, result, next_at }).await
    }

    /// A failure that will not be retried (a permanent Twilio error): the message becomes
    /// `failed` with its code kept.
    pub async fn record_failure(
        &self,
        id: MessageId,
        worker: &str,
        attempt: Option<i64>,
        result: AttemptResult,
        detail: String,
    ) -> Result<ApplyOutcome, StoreError> {
        self.finish(id, worker, Finish::Fail { attempt, status: MessageStatus::Failed, result, detail }).await
    }

    /// Its time ran out (Twilio's 30036 / 21611 / 30001 answer): the message becomes `expired`,
    /// never retried.
    pub async fn record_expiry(
        &self,
        id: MessageId,
        worker: &str,
        attempt: Option<i64>,
        result: AttemptResult,
        detail: String,
    ) -> Result<ApplyOutcome, StoreError> {
        self.finish(id, worker, Finish::Fail { attempt, status: MessageStatus::Expired, result, detail }).await
    }

    /// The last attempt allowed is used up: the message becomes `dead_lettered`, with its last
    /// error kept, until an operator redrives it ([`Store::redrive`]).
    pub async fn record_dead_letter(
        &self,
        id: MessageId,
        worker: &str,
        attempt: Option<i64>,
        result: AttemptResult,
        detail: String,
    ) -> Result<ApplyOutcome, StoreError> {
        self.finish(id, worker, Finish::Fail { attempt, status: MessageStatus::DeadLettered, result, detail }).await
    }

    /// Sends a dead-lettered message again: `pending` and due now, with a fresh allowance of
    /// attempts, logged in its history. Any other status is left alone
    /// ([`ApplyOutcome::Ignored`] names it; [`ApplyOutcome::Skipped`]: no such message).
    pub async fn redrive(&self, id: MessageId) -> Result<ApplyOutcome, StoreError> {
        match self.submit(Command::Redrive { id, at: now_ms() }).await? {
            Reply::Applied(outcome) => Ok(outcome),
            other => Err(unexpected(&other)),
        }
    }

    /// Withdraws a message Twilio does not have yet (pending, scheduled, retrying): `canceled`.
    pub async fn cancel(&self, id: MessageId) -> Result<CancelOutcome, StoreError> {
        match self.submit(Command::Cancel { id, at: now_ms() }).await? {
            Reply::Canceled(outcome) => Ok(outcome),
            other => Err(unexpected(&other)),
        }
    }

    /// An earlier attempt whose answer was lost and that Twilio has no record of.
    pub async fn record_lost(&self, id: MessageId, worker: &str, attempt: i64, result: AttemptResult) -> Result<(), StoreError> {
        self.finish(id, worker, Finish::Lost { attempt, result }).await.map(drop)
    }
}
