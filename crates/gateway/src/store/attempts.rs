//! Send attempts, as the worker records them: one begins just before the request leaves, and
//! ends accepted, to retry, failed, or lost.

use std::time::Duration;

use super::db::Store;
use super::error::StoreError;
use super::messages::unexpected;
use super::write::command::{ApplyOutcome, Command, Finish, OperatorOutcome, Reply};
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
        self.finish(id, worker, Finish::Retry { attempt, outcome, result, next_at, throttled: false }).await
    }

    /// Twilio throttled `attempt`'s sender: the message waits until `next_at`, and the attempt
    /// does not count against its allowance (so throttling alone never dead-letters it).
    pub async fn record_throttled(
        &self,
        id: MessageId,
        worker: &str,
        attempt: i64,
        result: AttemptResult,
        next_at: UnixMillis,
    ) -> Result<ApplyOutcome, StoreError> {
        let finish = Finish::Retry { attempt, outcome: AttemptOutcome::Retryable, result, next_at, throttled: true };
        self.finish(id, worker, finish).await
    }

    /// Ends the message as `status`, never retried: `failed` (a permanent Twilio error, its code
    /// kept), `dead_lettered` (the last attempt allowed used up, until an operator redrives it:
    /// [`Store::redrive`]) or `expired` (Twilio's 30036 / 21611 / 30001).
    pub async fn record_end(
        &self,
        id: MessageId,
        worker: &str,
        attempt: Option<i64>,
        status: MessageStatus,
        result: AttemptResult,
        detail: String,
    ) -> Result<ApplyOutcome, StoreError> {
        self.finish(id, worker, Finish::Fail { attempt, status, result, detail }).await
    }

    /// Sends a dead-lettered message again: `pending` and due now, with a fresh allowance of
    /// attempts, logged in its history.
    pub async fn redrive(&self, id: MessageId) -> Result<OperatorOutcome, StoreError> {
        self.operate(Command::Redrive { id, at: now_ms() }).await
    }

    /// Withdraws a message Twilio does not have yet (pending, scheduled, retrying): `canceled`.
    pub async fn cancel(&self, id: MessageId) -> Result<OperatorOutcome, StoreError> {
        self.operate(Command::Cancel { id, at: now_ms() }).await
    }

    async fn operate(&self, command: Command) -> Result<OperatorOutcome, StoreError> {
        match self.submit(command).await? {
            Reply::Operated(outcome) => Ok(outcome),
            other => Err(unexpected(&other)),
        }
    }

    /// An earlier attempt whose answer was lost and that Twilio has no record of; if the
    /// message's validity has run out meanwhile, it ends `expired` ([`ApplyOutcome::Applied`]).
    pub async fn record_lost(&self, id: MessageId, worker: &str, attempt: i64, result: AttemptResult) -> Result<ApplyOutcome, StoreError> {
        self.finish(id, worker, Finish::Lost { attempt, result }).await
    }
}
