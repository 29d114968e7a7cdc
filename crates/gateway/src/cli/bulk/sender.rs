//! Sending one row: waits out rate limits (every row pauses while the gateway asks for it), repeats
//! a request that got no answer, a 503 or a 409 in flight a few times with backoff (safe: each row
//! carries its own idempotency key), and stops the run when the token is refused.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::time::Instant;

use super::results::{Outcome, RowResult};
use crate::client::{ClientError, GatewayClient, SendRequest};

/// Tries of a request whose failure may pass (no answer, 503, 409), before the row fails.
const TRANSIENT_TRIES: u32 = 6;

/// One data row, ready to send or already known to be bad.
#[derive(Debug)]
pub struct Item {
    /// The data row's number (1 is the first row after the header).
    pub row: u64,
    /// The `to` cell, as written.
    pub to: String,
    /// The request and its idempotency key, or why the row cannot be sent.
    pub request: Result<(SendRequest, String), String>,
}

/// Sends rows for one run, sharing its rate-limit pause and its counters between rows.
pub struct RowSender {
    client: GatewayClient,
    paused_until: Mutex<Option<Instant>>,
    stopped: OnceLock<String>,
    rate_limited: AtomicU64,
    retries: AtomicU64,
}

impl RowSender {
    /// A sender through `client`.
    pub fn new(client: GatewayClient) -> Self {
        Self {
            client,
            paused_until: Mutex::new(None),
            stopped: OnceLock::new(),
            rate_limited: AtomicU64::new(0),
            retries: AtomicU64::new(0),
        }
    }

    /// Why the run stopped early, if it did.
    pub fn stopped(&self) -> Option<&str> {
        self.stopped.get().map(String::as_str)
    }

    /// 429 answers waited out, and requests repeated, so far.
    pub fn counters(&self) -> (u64, u64) {
        (self.rate_limited.load(Ordering::Relaxed), self.retries.load(Ordering::Relaxed))
    }

    /// Sends one row and says how it ended.
    pub async fn send(&self, item: Item) -> RowResult {
        let (row, to) = (item.row, item.to);
        let (request, key) = match item.request {
            Ok(ready) => ready,
            Err(problem) => return RowResult::failed(row, to, "invalid-row", problem),
        };
        let mut transient = 0;
        loop {
            self.wait_out_pause().await;
            if let Some(reason) = self.stopped() {
                return RowResult::skipped(row, to, reason);
            }
            let e = match self.client.send(&request, Some(&key)).await {
                Ok(answer) => {
                    let outcome = if answer.replayed { Outcome::Replayed } else { Outcome::Accepted };
                    let (message_id, status) = (Some(answer.body.id.to_string()), Some(answer.body.status.to_string()));
                    return RowResult { row, to, outcome, message_id, status, problem_type: None, problem: None };
                }
                Err(e) => e,
            };
            if e.status() == Some(429) {
                self.rate_limited.fetch_add(1, Ordering::Relaxed);
                self.pause(e.retry_after().unwrap_or(Duration::from_secs(1)));
            } else if e.is_transient() && transient + 1 < TRANSIENT_TRIES {
                transient += 1;
                self.retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(backoff(transient).max(e.retry_after().unwrap_or_default())).await;
            } else {
                self.stop_if_refused(&e);
                return RowResult::failed(row, to, e.kind(), e.one_line());
            }
        }
    }

    /// A refused token (401) or a caller not allowed to send (403) would fail every row alike.
    fn stop_if_refused(&self, e: &ClientError) {
        if matches!(e.status(), Some(401 | 403)) {
            let _ = self.stopped.set(format!("the gateway refused the token: {}", e.one_line()));
        }
    }

    fn pause(&self, wait: Duration) {
        let until = Instant::now() + wait;
        let mut paused = self.paused_until.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *paused = Some(paused.map_or(until, |current| current.max(until)));
    }

    async fn wait_out_pause(&self) {
        loop {
            let until = *self.paused_until.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            match until {
                Some(until) if until > Instant::now() => tokio::time::sleep_until(until).await,
                _ => return,
            }
        }
    }
}

/// 0.5 s, 1 s, 2 s… (at most 8 s), each with up to a quarter more at random.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(500 * (1u64 << attempt.saturating_sub(1).min(4)));
    base + base.mul_f64(fastrand::f64() / 4.0)
}
