//! Sending one message: claim it, reconcile a previous attempt whose answer was lost, pace per
//! sender, call Twilio once, and record the outcome (accepted, retry with backoff, permanent
//! failure, or dead-letter after the last attempt).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use time::OffsetDateTime;

use super::backoff_delay;
use crate::config::WorkerConfig;
use crate::domain::{Content, MessageId, PhoneNumber};
use crate::queue::JobQueue;
use crate::shared::{RateLimit, SharedState};
use crate::store::{AttemptOutcome, AttemptRecord, AttemptResult, MessageRecord, StatusSource, Store, now_ms};
use crate::twilio::{CreateMessage, ErrorClass, SendError, TwilioClient, TwilioMessage};

/// What processing a message came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// Twilio accepted it (now or, after reconciliation, earlier).
    Accepted {
        /// Twilio's SID.
        sid: String,
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
    /// Nothing to do: not due, already done, or held by another worker.
    Skipped,
}

/// Sends messages through Twilio; shared by the worker pool and the API's immediate mode.
pub struct Sender {
    store: Store,
    queue: Arc<dyn JobQueue>,
    twilio: TwilioClient,
    from: PhoneNumber,
    status_callback_url: String,
    config: WorkerConfig,
    shared: Arc<dyn SharedState>,
    /// Used only while the shared state is unreachable.
    local_pacer: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender").field("from", &self.from).field("status_callback_url", &self.status_callback_url).finish_non_exhaustive()
    }
}

impl Sender {
    /// A sender from `from`, asking Twilio to report to `status_callback_url`, pacing each sender
    /// number through `shared` (so that all instances together keep to the rate).
    pub fn new(
        store: Store,
        queue: Arc<dyn JobQueue>,
        twilio: TwilioClient,
        from: PhoneNumber,
        status_callback_url: String,
        config: WorkerConfig,
        shared: Arc<dyn SharedState>,
    ) -> Self {
        let rate = NonZeroU32::new(config.sender_rate_per_sec).unwrap_or(NonZeroU32::MIN);
        let local_pacer = RateLimiter::keyed(Quota::per_second(rate));
        Self { store, queue, twilio, from, status_callback_url, config, shared, local_pacer }
    }

    /// Waits until `sender` may send one more message: `SENDER_RATE_PER_SEC` per sender number,
    /// counted across every instance sharing the state (GCRA, a burst of one second's worth).
    async fn pace(&self, sender: &str) {
        let rate = self.config.sender_rate_per_sec;
        let limit = RateLimit { per_period: rate, period: Duration::from_secs(1), burst: rate };
        let key = format!("pace:{sender}");
        loop {
            match self.shared.rate_limit(&key, limit).await {
                Ok(decision) if decision.allowed => return,
                Ok(decision) => tokio::time::sleep(decision.retry_after.max(Duration::from_millis(1))).await,
                Err(e) => {
                    tracing::warn!(error = %e, "shared pacing unavailable; pacing this process alone");
                    self.local_pacer.until_key_ready(&sender.to_owned()).await;
                    return;
                }
            }
        }
    }

    /// The worker settings.
    pub fn config(&self) -> &WorkerConfig {
        &self.config
    }

    /// The sender number.
    pub fn from(&self) -> &PhoneNumber {
        &self.from
    }

    /// Processes one message for `worker`. Errors are infrastructure errors (database, queue);
    /// Twilio's answers are outcomes.
    pub async fn process(&self, id: MessageId, worker: &str) -> anyhow::Result<SendOutcome> {
        let now = now_ms();
        let Some(claim) = self.store.claim_message(id, worker, now, now + self.config.lease.as_millis() as i64).await? else {
            return self.not_claimed(id, now).await;
        };
        let message = claim.message;
        if let Some(previous) = claim.unresolved {
            match self.reconcile(&message, &previous).await {
                Ok(Some(found)) => {
                    self.store
                        .record_accepted(id, previous.attempt, AttemptOutcome::Reconciled, &found.sid, StatusSource::Reconcile, now_ms())
                        .await?;
                    self.queue.complete(id).await?;
                    tracing::info!(sid = %found.sid, attempt = previous.attempt, "an attempt whose answer was lost had reached Twilio; not sending again");
                    metrics::counter!("gateway_sends_total", "outcome" => "reconciled").increment(1);
                    return Ok(SendOutcome::Accepted { sid: found.sid });
                }
                Ok(None) => {
                    let result = AttemptResult {
                        error_message: Some("no answer was recorded and Twilio has no such message".into()),
                        ..Default::default()
                    };
                    self.store.finish_attempt(id, previous.attempt, AttemptOutcome::Lost, &result, now_ms()).await?;
                    if message.attempts >= i64::from(self.config.max_attempts) {
                        let detail = format!(
                            "dead-lettered after {} attempts; the last one's outcome was unknown and Twilio has no record of it",
                            message.attempts
                        );
                        self.store.record_failure(id, None, &result, Some(detail), now_ms()).await?;
                        self.queue.complete(id).await?;
                        metrics::counter!("gateway_sends_total", "outcome" => "dead_lettered").increment(1);
                        return Ok(SendOutcome::Failed { code: None });
                    }
                }
                Err(e) => {
                    // Without knowing whether the earlier attempt went through, sending again
                    // could send twice: wait and ask again later.
                    let at = now_ms() + backoff_delay(1, self.config.retry_base, self.config.retry_max).as_millis() as i64;
                    tracing::warn!(error = %e, "cannot reconcile an attempt with an unknown outcome; will ask Twilio again");
                    self.store.release(id, worker).await?;
                    self.queue.reschedule(id, at).await?;
                    return Ok(SendOutcome::Retrying { at });
                }
            }
        }
        if self.store.contact(&message.to).await?.is_some_and(|c| c.opted_out) {
            let result = AttemptResult {
                error_code: Some(21610),
                error_message: Some("The recipient has unsubscribed (replied STOP)".into()),
                ..Default::default()
            };
            self.store.record_failure(id, None, &result, Some("not sent: the recipient opted out".into()), now_ms()).await?;
            self.queue.complete(id).await?;
            metrics::counter!("gateway_sends_total", "outcome" => "opted_out").increment(1);
            return Ok(SendOutcome::Failed { code: Some(21610) });
        }
        // Pace before the attempt is recorded, and renew the lease as it starts: the wait must not
        // eat into the time this worker holds the message.
        self.pace(&message.from).await;
        let now = now_ms();
        let Some(attempt) = self.store.begin_attempt(id, worker, now, now + self.config.lease.as_millis() as i64).await? else {
            return Ok(SendOutcome::Skipped);
        };
        let started = Instant::now();
        let answer = self.twilio.create_message(&self.create_request(&message)).await;
        metrics::histogram!("gateway_twilio_request_seconds").record(started.elapsed().as_secs_f64());
        match answer {
            Ok(created) => self.accepted(id, attempt, created).await,
            Err(error) => self.refused(id, worker, attempt, error).await,
        }
    }

    async fn not_claimed(&self, id: MessageId, now: i64) -> anyhow::Result<SendOutcome> {
        match self.store.message(id).await? {
            Some(m) if m.status().is_sendable() => {
                // Not due yet, or leased by another worker: look again later.
                let at = m.next_attempt_at.unwrap_or(now).max(now + 1_000);
                self.queue.reschedule(id, at).await?;
            }
            _ => self.queue.complete(id).await?,
        }
        Ok(SendOutcome::Skipped)
    }

    fn create_request(&self, message: &MessageRecord) -> CreateMessage {
        let mut req = CreateMessage {
            to: format!("whatsapp:{}", message.to),
            from: format!("whatsapp:{}", message.from),
            status_callback: Some(format!("{}?mid={}", self.status_callback_url, message.id)),
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

    async fn accepted(&self, id: MessageId, attempt: i64, created: TwilioMessage) -> anyhow::Result<SendOutcome> {
        self.store.record_accepted(id, attempt, AttemptOutcome::Accepted, &created.sid, StatusSource::Worker, now_ms()).await?;
        self.queue.complete(id).await?;
        metrics::counter!("gateway_sends_total", "outcome" => "accepted").increment(1);
        tracing::info!(sid = %created.sid, attempt, "Twilio accepted the message");
        Ok(SendOutcome::Accepted { sid: created.sid })
    }

    async fn refused(&self, id: MessageId, worker: &str, attempt: i64, error: SendError) -> anyhow::Result<SendOutcome> {
        let (http_status, code) = match &error {
            SendError::Api { status, code, .. } => (Some(i64::from(*status)), *code),
            _ => (None, None),
        };
        let result = AttemptResult { http_status, error_code: code, error_message: Some(error.to_string()) };
        let now = now_ms();
        // Without an answer (or with a gateway error in front of Twilio) the message may exist at
        // Twilio: the next claim asks Twilio before anything is sent again, even after the last
        // attempt (the dead-letter decision is then taken there).
        let unknown = match &error {
            SendError::NoAnswer(_) => true,
            SendError::Api { status, code, .. } => *status >= 500 && *status != 503 && *code != Some(20503),
            SendError::Unreachable(_) => false,
        };
        let last_attempt = attempt >= i64::from(self.config.max_attempts) && !unknown;
        match error.class() {
            ErrorClass::Permanent => {
                self.store.record_failure(id, Some(attempt), &result, Some(error.to_string()), now).await?;
                self.queue.complete(id).await?;
                metrics::counter!("gateway_sends_total", "outcome" => "failed").increment(1);
                tracing::warn!(attempt, error = %error, "Twilio refused the message for good");
                Ok(SendOutcome::Failed { code })
            }
            ErrorClass::Retryable if last_attempt => {
                let detail = format!("dead-lettered after {attempt} attempts; last error: {error}");
                self.store.record_failure(id, Some(attempt), &result, Some(detail), now).await?;
                self.queue.complete(id).await?;
                metrics::counter!("gateway_sends_total", "outcome" => "dead_lettered").increment(1);
                tracing::error!(attempt, error = %error, "giving up on the message: dead-lettered");
                Ok(SendOutcome::Failed { code })
            }
            ErrorClass::Retryable => {
                let at = now + backoff_delay(attempt as u32, self.config.retry_base, self.config.retry_max).as_millis() as i64;
                let outcome = if unknown { AttemptOutcome::Unknown } else { AttemptOutcome::Retryable };
                self.store.record_retry(id, worker, attempt, outcome, &result, at, now).await?;
                self.queue.reschedule(id, at).await?;
                metrics::counter!("gateway_sends_total", "outcome" => "retrying").increment(1);
                tracing::warn!(attempt, error = %error, retry_in_ms = at - now, "send failed; will retry");
                Ok(SendOutcome::Retrying { at })
            }
        }
    }

    /// Asks Twilio whether an attempt whose answer was lost created the message.
    async fn reconcile(&self, message: &MessageRecord, previous: &AttemptRecord) -> anyhow::Result<Option<TwilioMessage>> {
        let to = format!("whatsapp:{}", message.to);
        let from = format!("whatsapp:{}", message.from);
        // Newest first; DateSent is not used because a message still queued at Twilio has none.
        let candidates = self.twilio.list_messages(&to, &from).await?;
        let earliest = previous.started_at - 5 * 60_000;
        for candidate in candidates {
            let created = candidate
                .date_created
                .as_deref()
                .and_then(|d| OffsetDateTime::parse(d, &time::format_description::well_known::Rfc2822).ok())
                .map(|d| (d.unix_timestamp_nanos() / 1_000_000) as i64);
            let same_content = message.body.is_none() || candidate.body == message.body;
            if created.is_some_and(|c| c >= earliest) && same_content && self.store.message_by_sid(&candidate.sid).await?.is_none() {
                return Ok(Some(candidate));
            }
        }
        Ok(None)
    }
}
