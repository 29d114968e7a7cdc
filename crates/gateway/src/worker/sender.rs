//! Sending one claimed message: reconcile a previous attempt whose answer was lost, pace per
//! sender, record the attempt, call Twilio once, and record the outcome (accepted, retry with
//! backoff, throttled — the sender held back, the attempt not counted —, permanent failure, or
//! dead-letter after the last attempt).

use std::sync::Arc;
use std::time::Instant;

use super::backoff::backoff_delay;
use super::pacing::Pacer;
use super::reconcile::{Lost, find_lost_attempt};
use crate::config::WorkerConfig;
use crate::domain::error_codes::{VALIDITY_EXPIRED, deferred_delay};
use crate::domain::{
    AttemptResult, Content, ErrorClass, MAX_VALIDITY_S, MessageId, MessageSid, MessageStatus, Origin, PhoneNumber, Senders, now_ms,
};
use crate::queue::{JobQueue, QueueError};
use crate::shared::SharedState;
use crate::store::{ApplyOutcome, AttemptRecord, Claim, MessageRecord, Store, StoreError};
use crate::telemetry::metrics;
use crate::twilio::{CreateMessage, SendError, TwilioClient, TwilioMessage};

/// What processing a message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Twilio accepted it (now or, after reconciliation, earlier).
    Accepted {
        /// Twilio's SID.
        sid: MessageSid,
    },
    /// It will be retried at this time.
    Retrying {
        /// When (ms).
        at: i64,
    },
    /// It failed for good.
    Failed {
        /// The error code kept.
        code: Option<i64>,
    },
    /// Nothing to do: the lease was lost before the attempt began.
    Skipped,
}

/// Why a message could not be processed: the database or the queue failed (Twilio's answers are
/// outcomes, not errors). The message's lease expires and another worker picks it up.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The store failed.
    #[error("the store failed")]
    Store(#[from] StoreError),
    /// The queue failed.
    #[error("the queue failed")]
    Queue(#[from] QueueError),
}

/// Sends messages through Twilio; shared by the worker pool and the API's immediate mode.
pub struct Sender {
    store: Store,
    queue: Arc<dyn JobQueue>,
    twilio: TwilioClient,
    senders: Senders,
    status_callback_url: String,
    config: WorkerConfig,
    pacer: Pacer,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("senders", &self.senders)
            .field("status_callback_url", &self.status_callback_url)
            .finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender from `senders`, asking Twilio to report to `status_callback_url`, pacing each
    /// sender through `shared` (so that all instances together keep to its rate).
    pub fn new(
        store: Store,
        queue: Arc<dyn JobQueue>,
        twilio: TwilioClient,
        senders: Senders,
        status_callback_url: String,
        config: WorkerConfig,
        shared: Arc<dyn SharedState>,
    ) -> Self {
        let pacer = Pacer::new(shared, config.sender_rate_per_sec, config.sender_rates.clone());
        Self { store, queue, twilio, senders, status_callback_url, config, pacer }
    }

    /// The worker settings.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// The sender number.
    pub fn senders(&self) -> &Senders {
        &self.senders
    }

    /// The pacer (each sender's rate, and whether it is held back now).
    pub fn pacer(&self) -> &Pacer {
        &self.pacer
    }

    /// The queue the sender reports finished messages to.
    pub fn twilio(&self) -> &TwilioClient {
        &self.twilio
    }

    /// The queue the sender takes its jobs from.
    pub fn queue(&self) -> &Arc<dyn JobQueue> {
        &self.queue
    }

    /// Sends the claimed message for `worker` (which holds its lease).
    pub async fn process(&self, claim: Claim, worker: &str) -> Result<SendOutcome, WorkerError> {
        let message = claim.message;
        let id = message.id;
        if let Some(previous) = claim.unresolved
            && let Some(done) = self.resolve(&message, &previous, worker).await?
        {
            return Ok(done);
        }
        // Pace before the attempt is recorded; the attempt renews the lease as it starts, so the
        // wait does not eat into the time this worker holds the message.
        self.pacer.wait(message.from.as_str()).await;
        let Some(attempt) = self.store.begin_attempt(id, worker, self.config.lease).await? else {
            return Ok(SendOutcome::Skipped);
        };
        metrics::sender_in_flight(message.from.as_str(), 1.0);
        let started = Instant::now();
        let answer = self.twilio.create_message(&self.create_request(&message)).await;
        metrics::twilio_request(started.elapsed());
        let outcome = match answer {
            Ok(created) => {
                self.pacer.relieved(message.from.as_str());
                self.accepted(id, worker, attempt, created).await
            }
            Err(error) => self.refused(&message, worker, attempt, error).await,
        };
        metrics::sender_in_flight(message.from.as_str(), -1.0);
        outcome
    }

    /// Settles an earlier attempt whose outcome is unknown; `Some` when nothing is left to send.
    async fn resolve(&self, message: &MessageRecord, previous: &AttemptRecord, worker: &str) -> Result<Option<SendOutcome>, WorkerError> {
        let id = message.id;
        match find_lost_attempt(&self.twilio, &self.store, message, previous).await {
            Ok(Lost::Found(found)) => {
                self.store.record_accepted(id, worker, previous.attempt, found.sid.clone(), true).await?;
                self.queue.complete(id).await?;
                tracing::info!(sid = %found.sid, attempt = previous.attempt, "an attempt whose answer was lost had reached Twilio; not sending again");
                metrics::send("reconciled");
                Ok(Some(SendOutcome::Accepted { sid: found.sid }))
            }
            Ok(Lost::NotFound) => {
                let result = AttemptResult {
                    error_message: Some("no answer was recorded and Twilio has no such message".into()),
                    ..Default::default()
                };
                // The store expires it here if its validity ran out while Twilio was asked.
                if let ApplyOutcome::Applied { current: MessageStatus::Expired, .. } =
                    self.store.record_lost(id, worker, previous.attempt, result.clone()).await?
                {
                    self.queue.complete(id).await?;
                    metrics::send(MessageStatus::Expired.as_str());
                    return Ok(Some(SendOutcome::Failed { code: Some(VALIDITY_EXPIRED) }));
                }
                let used = message.attempts - message.attempt_base;
                if used < i64::from(self.config.max_attempts) {
                    return Ok(None);
                }
                let detail =
                    format!("dead-lettered after {used} attempts; the last one's outcome was unknown and Twilio has no record of it");
                self.end(id, worker, None, MessageStatus::DeadLettered, result, detail).await?;
                Ok(Some(SendOutcome::Failed { code: None }))
            }
            Ok(Lost::Ambiguous { candidates, rivals }) => {
                // Guessing could give this message another's SID; its callbacks (which carry our
                // id) will say which is its own.
                tracing::info!(candidates, rivals, "an attempt whose answer was lost matches more than one message; asking again later");
                metrics::send("reconcile_ambiguous");
                self.ask_again_later(message, worker).await.map(Some)
            }
            Err(e) => {
                // Without knowing whether the earlier attempt went through, sending again could
                // send twice: wait and ask again later.
                tracing::warn!(error = %crate::telemetry::chain(&e), "cannot reconcile an attempt with an unknown outcome; will ask Twilio again");
                self.ask_again_later(message, worker).await.map(Some)
            }
        }
    }

    /// Ends the message as `status` (`failed`, `dead_lettered`, `expired`) and takes it off the
    /// queue; the send metric's outcome is the status's name.
    async fn end(
        &self,
        id: MessageId,
        worker: &str,
        attempt: Option<i64>,
        status: MessageStatus,
        result: AttemptResult,
        detail: String,
    ) -> Result<(), WorkerError> {
        self.store.record_end(id, worker, attempt, status, result, detail).await?;
        self.queue.complete(id).await?;
        metrics::send(status.as_str());
        Ok(())
    }

    /// Releases `message` to be asked about again after a short delay, sending nothing.
    async fn ask_again_later(&self, message: &MessageRecord, worker: &str) -> Result<SendOutcome, WorkerError> {
        let at = now_ms() + backoff_delay(1, self.config.retry_base, self.config.retry_max).as_millis() as i64;
        self.store.release(message.id, worker, Some(at)).await?;
        self.queue.reschedule(message.id, message.priority, at).await?;
        Ok(SendOutcome::Retrying { at })
    }

    fn create_request(&self, message: &MessageRecord) -> CreateMessage {
        let mut req = CreateMessage {
            to: message.to.whatsapp_address(),
            from: message.from.number().map(PhoneNumber::whatsapp_address),
            messaging_service_sid: match &message.from {
                Origin::Service(sid) => Some(sid.as_str().to_owned()),
                Origin::Number(_) => None,
            },
            status_callback: Some(format!("{}?mid={}", self.status_callback_url, message.id)),
            // What is left of its validity period (the claim expired it if nothing was).
            validity_period: message.expires_at.map(|expires| ((expires - now_ms() + 999) / 1000).clamp(1, MAX_VALIDITY_S)),
            ..Default::default()
        };
        match message.content() {
            Content::FreeForm { body, media_urls } => {
                req.body = body;
                req.media_urls = media_urls;
            }
            Content::Template { content_sid, content_variables } => {
                req.content_sid = Some(content_sid);
                req.content_variables = content_variables;
            }
        }
        req
    }

    async fn accepted(&self, id: MessageId, worker: &str, attempt: i64, created: TwilioMessage) -> Result<SendOutcome, WorkerError> {
        self.store.record_accepted(id, worker, attempt, created.sid.clone(), false).await?;
        self.queue.complete(id).await?;
        metrics::send("accepted");
        tracing::debug!(sid = %created.sid, attempt, "Twilio accepted the message");
        Ok(SendOutcome::Accepted { sid: created.sid })
    }

    async fn refused(&self, message: &MessageRecord, worker: &str, attempt: i64, error: SendError) -> Result<SendOutcome, WorkerError> {
        let id = message.id;
        let (http_status, code) = match &error {
            SendError::Api { status, code, .. } => (Some(i64::from(*status)), *code),
            _ => (None, None),
        };
        let result = AttemptResult { http_status, error_code: code, error_message: Some(error.to_string()) };
        // Without an answer (or with a gateway error in front of Twilio) the message may exist at
        // Twilio: the next claim asks Twilio before anything is sent again, even after the last
        // attempt (the dead-letter decision is then taken there).
        let unknown = match &error {
            SendError::NoAnswer(_) => true,
            SendError::Api { status, code, .. } => *status >= 500 && *status != 503 && *code != Some(20503),
            SendError::Unreachable(_) => false,
        };
        // Attempts used of the allowance (which a redrive renews).
        let used = attempt - message.attempt_base;
        let last_attempt = used >= i64::from(self.config.max_attempts) && !unknown;
        let class = match error.class() {
            // The message may exist at Twilio: ask first (the claim does), expire after.
            ErrorClass::Expired if unknown => ErrorClass::Retryable,
            // Meta delivers no marketing message to a US number: waiting cannot help.
            ErrorClass::Deferred if message.to.is_us() => ErrorClass::Permanent,
            class => class,
        };
        match class {
            ErrorClass::Expired => {
                self.end(id, worker, Some(attempt), MessageStatus::Expired, result, format!("expired: {error}")).await?;
                tracing::warn!(attempt, error = %error, "Twilio says the message's time ran out: expired");
                Ok(SendOutcome::Failed { code })
            }
            ErrorClass::Permanent => {
                self.end(id, worker, Some(attempt), MessageStatus::Failed, result, error.to_string()).await?;
                tracing::warn!(attempt, error = %error, "Twilio refused the message for good");
                Ok(SendOutcome::Failed { code })
            }
            ErrorClass::Throttled => {
                // Held back at most half a lease, so a message claimed meanwhile keeps its lease
                // while it waits for the sender.
                let cap = self.config.retry_max.min(self.config.lease / 2);
                let hold = self.pacer.throttled(message.from.as_str(), |n| backoff_delay(n, self.config.retry_base, cap)).await;
                let at = now_ms() + i64::try_from(hold.as_millis()).unwrap_or(i64::MAX / 4);
                self.store.record_throttled(id, worker, attempt, result, at).await?;
                self.queue.reschedule(id, message.priority, at).await?;
                metrics::send("throttled");
                metrics::sender_throttled(message.from.as_str());
                tracing::info!(attempt, error = %error, hold_ms = hold.as_millis() as u64, "Twilio is throttling the sender; holding it back");
                Ok(SendOutcome::Retrying { at })
            }
            ErrorClass::Deferred if last_attempt => {
                let detail = format!("dead-lettered after {used} attempts; Meta kept holding it back: {error}");
                self.end(id, worker, Some(attempt), MessageStatus::DeadLettered, result, detail).await?;
                tracing::warn!(attempt, error = %error, "Meta kept holding the marketing message back: dead-lettered");
                Ok(SendOutcome::Failed { code })
            }
            ErrorClass::Deferred => {
                let now = now_ms();
                let at = now + i64::try_from(deferred_delay(used as u32).as_millis()).unwrap_or(i64::MAX / 4);
                self.store.record_retry(id, worker, attempt, false, result, at).await?;
                self.queue.reschedule(id, message.priority, at).await?;
                metrics::send("deferred");
                tracing::info!(attempt, error = %error, retry_in_ms = at - now, "Meta held the marketing message back; trying again much later");
                Ok(SendOutcome::Retrying { at })
            }
            ErrorClass::Retryable if last_attempt => {
                let detail = format!("dead-lettered after {used} attempts; last error: {error}");
                self.end(id, worker, Some(attempt), MessageStatus::DeadLettered, result, detail).await?;
                tracing::error!(attempt, error = %error, "giving up on the message: dead-lettered");
                Ok(SendOutcome::Failed { code })
            }
            ErrorClass::Retryable => {
                let now = now_ms();
                let at = now + backoff_delay(used as u32, self.config.retry_base, self.config.retry_max).as_millis() as i64;
                self.store.record_retry(id, worker, attempt, unknown, result, at).await?;
                self.queue.reschedule(id, message.priority, at).await?;
                metrics::send("retrying");
                tracing::warn!(attempt, error = %error, retry_in_ms = at - now, "send failed; will retry");
                Ok(SendOutcome::Retrying { at })
            }
        }
    }
}
