//! Recovering missed status callbacks: Twilio neither promises a callback nor retries one that
//! failed (the gateway was down, the database restarting), so a message can stay `sent` for good
//! although the recipient read it. The poller asks Twilio (`GET …/Messages/{Sid}.json`) about
//! messages that have had no news for `POLL_AFTER_MS`, then again as long as they stay silent —
//! each wait as long as the silence so far, at most `POLL_MAX_INTERVAL_MS`, until
//! `POLL_MAX_AGE_MS` — and applies what it learns through the same state machine as a callback
//! (`source = poll`). Every instance polls messages of its own (the claim reserves them by setting
//! their next poll time), and all of them together ask at most `POLL_RATE_PER_SEC` times a
//! second (paced through the shared state, as sends are).

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::pacing::Pacer;
use crate::config::PollConfig;
use crate::domain::{MessageStatus, StatusEvent, StatusSource, now_ms};
use crate::shared::SharedState;
use crate::store::{ApplyOutcome, PollPick, PollTarget, StatusReport, Store};
use crate::telemetry::metrics;
use crate::twilio::TwilioClient;

/// The pacing key of the poller's requests (sender keys are phone numbers, so it cannot clash).
const PACE_KEY: &str = "_poll";

/// How many requests to Twilio the poller has in flight at most.
const IN_FLIGHT: usize = 8;

/// Asks Twilio about messages whose callbacks stopped coming.
pub struct Poller {
    store: Store,
    twilio: TwilioClient,
    config: PollConfig,
    pacer: Pacer,
}

impl std::fmt::Debug for Poller {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Poller").field("config", &self.config).finish_non_exhaustive()
    }
}

/// What one message's poll came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Polled {
    /// Twilio knew a status no callback had brought; it was applied.
    Recovered(MessageStatus),
    /// Nothing new.
    Unchanged,
    /// Twilio has no such message.
    NotFound,
}

impl Poller {
    /// A poller asking through `twilio`, paced through `shared`.
    pub fn new(store: Store, twilio: TwilioClient, shared: Arc<dyn SharedState>, config: PollConfig) -> Self {
        let pacer = Pacer::new(shared, config.rate_per_sec, Default::default());
        Self { store, twilio, config, pacer }
    }

    fn pick(&self) -> PollPick {
        PollPick {
            // About two seconds' worth at the rate: claims stay small, and few go stale.
            limit: usize::try_from(self.config.rate_per_sec.saturating_mul(2)).unwrap_or(usize::MAX).clamp(1, 512),
            after: self.config.after,
            max_interval: self.config.max_interval,
            max_age: self.config.max_age,
        }
    }

    /// How long to wait when nothing is due: a tenth of `POLL_AFTER_MS`, between 100 ms and 30 s.
    fn idle(&self) -> Duration {
        (self.config.after / 10).clamp(Duration::from_millis(100), Duration::from_secs(30))
    }

    /// One pass: claims the messages due, asks Twilio about each (paced) and applies the
    /// answers. Returns how many were asked about.
    pub async fn poll_once(&self) -> Result<usize, crate::store::StoreError> {
        let targets = self.store.claim_polls(self.pick()).await?;
        let count = targets.len();
        let mut asks = JoinSet::new();
        for target in targets {
            while asks.len() >= IN_FLIGHT {
                asks.join_next().await;
            }
            self.pacer.wait(PACE_KEY).await;
            let (store, twilio) = (self.store.clone(), self.twilio.clone());
            asks.spawn(async move {
                let result = match ask(&store, &twilio, &target).await {
                    Ok(Polled::Recovered(status)) => {
                        metrics::poll_recovered(status.as_str());
                        tracing::info!(message_id = %target.id, sid = %target.sid, from = %target.status, to = %status, "recovered a status no callback brought");
                        "recovered"
                    }
                    Ok(Polled::Unchanged) => "unchanged",
                    Ok(Polled::NotFound) => "not_found",
                    Err(e) => {
                        // Asked again at its next poll time.
                        tracing::warn!(message_id = %target.id, error = %e, "cannot poll a message at Twilio");
                        "error"
                    }
                };
                metrics::poll(result);
            });
        }
        while asks.join_next().await.is_some() {}
        Ok(count)
    }

    /// Polls until `shutdown` is cancelled.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        loop {
            let full = match self.poll_once().await {
                Ok(n) => n >= self.pick().limit,
                Err(e) => {
                    tracing::warn!(error = %crate::telemetry::chain(&e), "poller pass failed");
                    false
                }
            };
            if full {
                // More are due: the pacing alone sets the rate.
                if shutdown.is_cancelled() {
                    break;
                }
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.idle()) => {}
            }
        }
    }
}

/// Asks Twilio about `target` and applies the answer.
async fn ask(store: &Store, twilio: &TwilioClient, target: &PollTarget) -> Result<Polled, Box<dyn std::error::Error + Send + Sync>> {
    let Some(found) = twilio.fetch_message(&target.sid).await? else {
        return Ok(Polled::NotFound);
    };
    let Some(status) = MessageStatus::from_twilio_report(&found.status, found.error_code) else {
        return Ok(Polled::Unchanged);
    };
    // The time of the change as Twilio has it (a delivery recovered late is not a slow one), in
    // whole seconds: never before the status the message had (nor after this clock's now).
    let at = found.updated_at_ms().map_or_else(now_ms, |at| at.min(now_ms())).max(target.last_status_at);
    let report = StatusReport {
        id: Some(target.id),
        sid: target.sid.clone(),
        event: StatusEvent { status, at, error_code: found.error_code },
        source: StatusSource::Poll,
        error_message: found.error_message,
    };
    Ok(match store.apply_status(report).await? {
        ApplyOutcome::Applied { current, .. } => Polled::Recovered(current),
        _ => Polled::Unchanged,
    })
}
