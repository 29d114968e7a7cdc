//! State shared by every instance of the gateway: replay windows (`remember_once`), idempotency
//! records and rate limits. The embedded default keeps it in process ([`MemoryState`]); several
//! instances share it through Redis ([`RedisState`]). Both give the same answers to the same calls;
//! the rate limiter is the same GCRA arithmetic on both sides ([`Gcra`]).

mod memory;
mod redis;

use std::time::Duration;

use async_trait::async_trait;

pub use self::memory::MemoryState;
pub use self::redis::{RedisCallError, RedisConnection, RedisState};
pub(crate) use self::redis::{timed, valid_prefix};

/// Errors from a shared-state backend.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The backend could not be reached, answered with an error, or did not answer in time.
    #[error("shared state unavailable: {0}")]
    Unavailable(String),
    /// The backend holds a value this code cannot read.
    #[error("shared state holds an unreadable value: {0}")]
    Corrupt(String),
    /// The URL or key prefix given at start is not usable.
    #[error("invalid shared-state configuration: {0}")]
    Config(String),
}

/// What [`SharedState::idempotency_begin`] found for a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdempotencyState {
    /// The key was free: the caller now holds it (marked in flight) and must complete or abandon it.
    New,
    /// Another request holds the key and has not finished.
    InFlight,
    /// A request with this key finished; its answer is stored.
    Completed {
        /// The fingerprint of the request that produced the answer (compare with the new request's).
        fingerprint: String,
        /// The HTTP status of the stored answer.
        status: u16,
        /// The body of the stored answer.
        body: Vec<u8>,
    },
}

/// A rate: `per_period` requests per `period`, with up to `burst` requests at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per `period` in the long run (0 is treated as 1).
    pub per_period: u32,
    /// The period the rate is expressed over.
    pub period: Duration,
    /// How many requests may arrive at once after a quiet spell (the bucket size; 0 is treated as 1).
    pub burst: u32,
}

/// The answer of the rate limiter to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether the request may proceed (it has been counted if so).
    pub allowed: bool,
    /// How many more requests would be allowed right now.
    pub remaining: u32,
    /// When refused: how long until one request would be allowed. Zero when allowed.
    pub retry_after: Duration,
    /// How long until the limiter is back to a full burst.
    pub reset_after: Duration,
}

/// State shared by the instances of a deployment.
#[async_trait]
pub trait SharedState: Send + Sync + 'static {
    /// True the first time `key` is seen within `ttl`, false while it is remembered (replay window,
    /// webhook dedupe).
    async fn remember_once(&self, key: &str, ttl: Duration) -> Result<bool, SharedError>;

    /// Whether `key` is remembered (without taking it).
    async fn seen(&self, key: &str) -> Result<bool, SharedError>;

    /// Looks up an idempotency key and, if it is free, takes it (marked in flight for `ttl`, so a
    /// holder that dies does not block the key for longer).
    async fn idempotency_begin(&self, key: &str, fingerprint: &str, ttl: Duration) -> Result<IdempotencyState, SharedError>;

    /// Stores the answer for a key taken with [`idempotency_begin`](Self::idempotency_begin), kept for `ttl`.
    async fn idempotency_complete(&self, key: &str, fingerprint: &str, status: u16, body: &[u8], ttl: Duration) -> Result<(), SharedError>;

    /// Releases an in-flight key after a failure, so a retry can take it. A completed record is kept.
    async fn idempotency_abandon(&self, key: &str) -> Result<(), SharedError>;

    /// Counts one request against `limit` for `key` (GCRA) and says whether it may proceed.
    async fn rate_limit(&self, key: &str, limit: RateLimit) -> Result<RateDecision, SharedError>;

    /// Checks that the backend answers (for readiness).
    async fn ping(&self) -> Result<(), SharedError>;
}

/// The generic cell rate algorithm in integer microseconds, shared by both backends (the Redis Lua
/// script does the same arithmetic with the numbers computed here).
///
/// The state of a key is one number, the theoretical arrival time (TAT): when the bucket would be
/// empty again if requests kept arriving at the long-run rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// Time between two requests at the long-run rate.
    pub emission_us: i64,
    /// How far ahead of now the TAT may run: `emission_us * burst`.
    pub burst_offset_us: i64,
}

impl Gcra {
    /// The parameters for `limit` (at least 1 µs per request, burst at least 1).
    pub fn new(limit: RateLimit) -> Self {
        let period_us = i64::try_from(limit.period.as_micros()).unwrap_or(i64::MAX / 4);
        let emission_us = (period_us / i64::from(limit.per_period.max(1))).max(1);
        Self { emission_us, burst_offset_us: emission_us.saturating_mul(i64::from(limit.burst.max(1))) }
    }

    /// Decides one request at `now_us` given the stored TAT; returns the decision and the TAT to
    /// store (`None`: leave the stored state as it is).
    pub fn decide(&self, now_us: i64, stored_tat_us: Option<i64>) -> (RateDecision, Option<i64>) {
        let tat = stored_tat_us.unwrap_or(now_us).max(now_us);
        let new_tat = tat + self.emission_us;
        let diff = now_us - (new_tat - self.burst_offset_us);
        if diff < 0 {
            let decision = RateDecision { allowed: false, remaining: 0, retry_after: micros(-diff), reset_after: micros(tat - now_us) };
            return (decision, None);
        }
        let remaining = u32::try_from(diff / self.emission_us).unwrap_or(u32::MAX);
        let decision = RateDecision { allowed: true, remaining, retry_after: Duration::ZERO, reset_after: micros(new_tat - now_us) };
        (decision, Some(new_tat))
    }
}

/// A non-negative microsecond count as a `Duration`.
pub(crate) fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> RateLimit {
        RateLimit { per_period: 10, period: Duration::from_secs(1), burst: 3 }
    }

    #[test]
    fn gcra_allows_a_burst_then_refuses_for_one_emission_interval() {
        let gcra = Gcra::new(limit());
        let mut tat = None;
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let (d, next) = gcra.decide(1_000_000, tat);
            assert!(d.allowed);
            remaining.push(d.remaining);
            tat = next;
        }
        assert_eq!(remaining, [2, 1, 0]);
        let (refused, next) = gcra.decide(1_000_000, tat);
        assert_eq!(next, None);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(100));
        assert_eq!(refused.reset_after, Duration::from_millis(300));
        let (later, _) = gcra.decide(1_100_000, tat);
        assert!(later.allowed);
        assert_eq!(later.remaining, 0);
    }

    #[test]
    fn gcra_is_full_again_after_the_burst_has_drained() {
        let gcra = Gcra::new(limit());
        let (_, tat) = gcra.decide(0, None);
        let (d, _) = gcra.decide(100_000, tat);
        assert_eq!(d.remaining, 2);
    }
}
