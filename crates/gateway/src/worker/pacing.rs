//! Pacing per sender: at most `SENDER_RATE_PER_SEC` sends per second from one sender, across
//! every instance. Slots are reserved in blocks (about a tenth of a second's worth) from the
//! shared state, so pacing costs one shared round trip per block, not per message; the sends of a
//! block are spread one `spacing` apart, so no second ever holds more than the rate.
//!
//! When Twilio throttles a sender (429, 20429, 63018), every instance holds that sender's sends
//! back for a while ([`Pacer::throttled`]), longer for each throttle in a row, until a send goes
//! through again ([`Pacer::relieved`]).

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::shared::SharedState;

/// Slots this instance holds for one sender.
#[derive(Debug)]
struct Slots {
    next: Instant,
    left: u32,
    spacing: Duration,
}

/// A sender Twilio is throttling: how many holds in a row, and when the current one ends.
#[derive(Debug, Clone, Copy)]
struct Throttle {
    in_a_row: u32,
    until: Instant,
}

/// Paces sends per sender.
pub struct Pacer {
    shared: Arc<dyn SharedState>,
    spacing: Duration,
    block: u32,
    senders: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<Slots>>>>>,
    throttles: Mutex<HashMap<String, Throttle>>,
    /// Used only while the shared state is unreachable: this process alone keeps to the rate.
    fallback: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer").field("spacing", &self.spacing).field("block", &self.block).finish_non_exhaustive()
    }
}

impl Pacer {
    /// A pacer of `per_second` sends per sender, shared through `shared`.
    pub fn new(shared: Arc<dyn SharedState>, per_second: u32) -> Self {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let spacing = Duration::from_secs(1) / rate.get();
        let block = (rate.get() / 10).max(1);
        Self {
            shared,
            spacing,
            block,
            senders: Mutex::default(),
            throttles: Mutex::default(),
            fallback: RateLimiter::keyed(Quota::per_second(rate)),
        }
    }

    /// Twilio throttled a send from `sender`: no instance sends from it for a while —
    /// `backoff(n)` for the n-th hold in a row — and this instance gives up the slots it holds.
    /// Throttles answered while a hold is on (sends that left before it) share that hold. Returns
    /// how long the sender is held back from now.
    pub async fn throttled(&self, sender: &str, backoff: impl Fn(u32) -> Duration) -> Duration {
        let now = Instant::now();
        let hold = {
            let mut throttles = self.throttles.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let throttle = throttles.entry(sender.to_owned()).or_insert(Throttle { in_a_row: 0, until: now });
            if throttle.until > now {
                return throttle.until - now;
            }
            throttle.in_a_row = throttle.in_a_row.saturating_add(1);
            let hold = backoff(throttle.in_a_row);
            throttle.until = now + hold;
            hold
        };
        *self.slots(sender).lock().await = None;
        if let Err(e) = self.shared.hold(&format!("pace:{sender}"), hold).await {
            tracing::warn!(error = %crate::telemetry::chain(&e), "shared pacing unavailable; only this process holds the throttled sender back");
        }
        hold
    }

    /// A send from `sender` went through: the next throttle starts a new run of holds.
    pub fn relieved(&self, sender: &str) {
        let mut throttles = self.throttles.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if throttles.get(sender).is_some_and(|t| t.until <= Instant::now()) {
            throttles.remove(sender);
        }
    }

    fn slots(&self, sender: &str) -> Arc<tokio::sync::Mutex<Option<Slots>>> {
        let mut senders = self.senders.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        senders.entry(sender.to_owned()).or_default().clone()
    }

    /// Waits for `sender`'s next send slot.
    pub async fn wait(&self, sender: &str) {
        let slots = self.slots(sender);
        loop {
            let mut held = slots.lock().await;
            if let Some(s) = held.as_mut().filter(|s| s.left > 0) {
                let at = s.next.max(Instant::now());
                s.next = at + s.spacing;
                s.left -= 1;
                drop(held);
                tokio::time::sleep_until(at).await;
                return;
            }
            // Reserve the next block while holding the lock, so that this instance's tasks do
            // not all reserve at once.
            let ahead = self.spacing * self.block;
            match self.shared.reserve(&format!("pace:{sender}"), self.spacing, self.block, ahead).await {
                Ok(r) if r.granted > 0 => {
                    *held = Some(Slots { next: Instant::now() + r.start_in, left: r.granted, spacing: r.spacing });
                }
                Ok(r) => {
                    drop(held);
                    tokio::time::sleep(r.start_in.max(Duration::from_millis(1))).await;
                }
                Err(e) => {
                    drop(held);
                    tracing::warn!(error = %crate::telemetry::chain(&e), "shared pacing unavailable; pacing this process alone");
                    self.fallback.until_key_ready(&sender.to_owned()).await;
                    return;
                }
            }
        }
    }
}
