//! Pacing per sender: at most `SENDER_RATE_PER_SEC` sends per second from one sender (or its
//! own rate from `SENDER_RATES`), across every instance. Slots are reserved in blocks (about a tenth of a second's worth) from the
//! shared state, so pacing costs one shared round trip per block, not per message; the sends of a
//! block are spread one `spacing` apart, so no second ever holds more than the rate.
//!
//! When Twilio throttles a sender (429, 20429, 63018), every instance holds that sender's sends
//! back for a while ([`Pacer::throttled`]), longer for each throttle in a row, until a send goes
//! through again ([`Pacer::relieved`]).

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::time::Instant;

use crate::shared::SharedState;

/// A rate of N per second is paced as N per 1.02 s: sends leave exactly one spacing apart, but
/// reach Twilio up to a few milliseconds late or early (scheduling, the network), and the margin
/// keeps any second at Twilio within the rate however they bunch.
const PACED_SECOND: Duration = Duration::from_millis(1_020);

/// Slots are reserved for the sends waiting, but never fewer than this much time's worth: below a
/// few slots per 10 ms (80/s is one per 12.75 ms) unused ones would slow other instances down;
/// above, they cost nothing, and reserving one at a time would cost a round trip per send.
const MIN_RESERVE: Duration = Duration::from_millis(10);

/// Slots this instance holds for one sender.
#[derive(Debug)]
struct Slots {
    next: Instant,
    left: u32,
    spacing: Duration,
}

/// One sender's slots in this instance, and how many of its sends wait for one.
#[derive(Debug, Default)]
struct SenderSlots {
    slots: tokio::sync::Mutex<Option<Slots>>,
    waiting: std::sync::atomic::AtomicU32,
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
    default: Rate,
    /// Senders with a rate of their own.
    rates: HashMap<String, Rate>,
    senders: Mutex<HashMap<String, Arc<SenderSlots>>>,
    throttles: Mutex<HashMap<String, Throttle>>,
    /// Used only while the shared state is unreachable: this process alone keeps to the rate.
    fallback: DefaultKeyedRateLimiter<String>,
}

/// One sender's rate: sends one `spacing` apart, reserved `block` at a time.
#[derive(Debug)]
struct Rate {
    per_second: u32,
    spacing: Duration,
    block: u32,
    /// The fewest slots worth reserving: `MIN_RESERVE` of them.
    min_reserve: u32,
    /// This rate alone, while the shared state is unreachable (the default rate's senders share
    /// the keyed fallback).
    fallback: Option<DefaultDirectRateLimiter>,
}

impl Rate {
    fn new(per_second: u32, own_fallback: bool) -> Self {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        Self {
            per_second: rate.get(),
            spacing: PACED_SECOND / rate.get(),
            min_reserve: u32::try_from(MIN_RESERVE.as_nanos() / (PACED_SECOND / rate.get()).as_nanos().max(1)).unwrap_or(u32::MAX),
            block: (rate.get() / 10).max(1),
            fallback: own_fallback.then(|| RateLimiter::direct(Quota::per_second(rate))),
        }
    }
}

impl std::fmt::Debug for Pacer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pacer").field("default", &self.default.per_second).field("rates", &self.rates.len()).finish_non_exhaustive()
    }
}

impl Pacer {
    /// A pacer of `per_second` sends per sender, or the rate `rates` gives a sender, shared
    /// through `shared`.
    pub fn new(shared: Arc<dyn SharedState>, per_second: u32, rates: BTreeMap<String, u32>) -> Self {
        let default = Rate::new(per_second, false);
        let fallback = RateLimiter::keyed(Quota::per_second(NonZeroU32::new(default.per_second).unwrap_or(NonZeroU32::MIN)));
        let rates = rates.into_iter().map(|(sender, rate)| (sender, Rate::new(rate, true))).collect();
        Self { shared, default, rates, senders: Mutex::default(), throttles: Mutex::default(), fallback }
    }

    fn rate_of(&self, sender: &str) -> &Rate {
        self.rates.get(sender).unwrap_or(&self.default)
    }

    /// `sender`'s sends per second.
    pub fn rate(&self, sender: &str) -> u32 {
        self.rate_of(sender).per_second
    }

    /// How much longer this instance holds `sender` back because Twilio throttled it, if it does.
    pub fn held_for(&self, sender: &str) -> Option<Duration> {
        let throttles = self.throttles.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        throttles.get(sender).map(|t| t.until.saturating_duration_since(Instant::now())).filter(|d| !d.is_zero())
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
        *self.slots(sender).slots.lock().await = None;
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

    fn slots(&self, sender: &str) -> Arc<SenderSlots> {
        let mut senders = self.senders.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        senders.entry(sender.to_owned()).or_default().clone()
    }

    /// Waits for `sender`'s next send slot.
    pub async fn wait(&self, sender: &str) {
        use std::sync::atomic::Ordering;
        let entry = self.slots(sender);
        entry.waiting.fetch_add(1, Ordering::Relaxed);
        self.take_slot(sender, &entry).await;
        entry.waiting.fetch_sub(1, Ordering::Relaxed);
    }

    async fn take_slot(&self, sender: &str, entry: &SenderSlots) {
        loop {
            let mut held = entry.slots.lock().await;
            if let Some(s) = held.as_mut() {
                // A slot whose time went by unused is given up: the shared schedule gave the
                // ones after it to other instances, and sending on it now would bunch with them.
                let now = Instant::now();
                while s.left > 0 && s.next + s.spacing / 2 < now {
                    s.next += s.spacing;
                    s.left -= 1;
                }
                if s.left > 0 {
                    let at = s.next;
                    s.next += s.spacing;
                    s.left -= 1;
                    drop(held);
                    tokio::time::sleep_until(at).await;
                    return;
                }
            }
            // Reserve while holding the lock, so that this instance's tasks do not all reserve
            // at once; as many slots as there are sends waiting (at most a block), so that none
            // is reserved for nobody while other instances have sends waiting — but at least
            // `MIN_RESERVE` worth, so that a fast rate does not cost a round trip per send.
            let rate = self.rate_of(sender);
            let ahead = rate.spacing * rate.block;
            let waiting = entry.waiting.load(std::sync::atomic::Ordering::Relaxed);
            let wanted = waiting.max(rate.min_reserve).clamp(1, rate.block);
            match self.shared.reserve(&format!("pace:{sender}"), rate.spacing, wanted, ahead).await {
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
                    match &rate.fallback {
                        Some(own) => own.until_ready().await,
                        None => self.fallback.until_key_ready(&sender.to_owned()).await,
                    }
                    return;
                }
            }
        }
    }
}
