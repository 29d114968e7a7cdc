//! What every instance of a deployment shares: idempotency records, rate limits and pacing
//! reservations. Both backends give the same answers to the same calls.

use std::time::Duration;

use async_trait::async_trait;

use super::connection::RedisCallError;

/// Errors from a shared-state backend.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SharedError {
    /// The backend could not be reached, answered with an error, or did not answer in time.
    #[error("the shared state is unavailable")]
    Unavailable(#[from] RedisCallError),
    /// The backend holds a value this code cannot read.
    #[error("the shared state holds an unreadable value: {0}")]
    Corrupt(String),
    /// The key prefix given at start is not usable.
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

/// A rate: at most `per_period` requests in any `period` (a sliding window), and at most `burst`
/// in any [`BURST_WINDOW`](super::BURST_WINDOW).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed in any `period` (0 is treated as 1).
    pub per_period: u32,
    /// The sliding window the allowance is counted over.
    pub period: Duration,
    /// Requests allowed in any one second (0: no bound beyond `per_period`).
    pub burst: u32,
}

/// The answer of the rate limiter to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateDecision {
    /// Whether every request asked for may proceed (each one granted has been counted).
    pub allowed: bool,
    /// How many of the requests asked for were granted (and counted).
    pub granted: u32,
    /// How many more requests would be allowed right now.
    pub remaining: u32,
    /// When refused: how long until one request would be allowed. Zero when allowed.
    pub retry_after: Duration,
    /// How long until the oldest counted request leaves the window (and the allowance grows).
    pub reset_after: Duration,
}

/// Consecutive send slots reserved for this instance: the first `start_in` from now, then one
/// every `spacing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reservation {
    /// How many slots (0: none free yet; try again after `start_in`).
    pub granted: u32,
    /// When the first slot is, from now (or, with none granted, when to ask again).
    pub start_in: Duration,
    /// Time between slots.
    pub spacing: Duration,
}

/// State shared by the instances of a deployment.
#[async_trait]
pub trait SharedState: Send + Sync + 'static {
    /// Looks up an idempotency key and, if it is free, takes it (marked in flight for `ttl`, so a
    /// holder that dies does not block the key for longer).
    async fn idempotency_begin(&self, key: &str, fingerprint: &str, ttl: Duration) -> Result<IdempotencyState, SharedError>;

    /// Stores the answer for a key taken with [`idempotency_begin`](Self::idempotency_begin), kept for `ttl`.
    async fn idempotency_complete(&self, key: &str, fingerprint: &str, status: u16, body: &[u8], ttl: Duration) -> Result<(), SharedError>;

    /// Releases an in-flight key after a failure, so a retry can take it. A completed record is kept.
    async fn idempotency_abandon(&self, key: &str) -> Result<(), SharedError>;

    /// Counts up to `cost` requests against `limit` for `key` (sliding windows) and says how many
    /// may proceed; refused ones are not counted.
    async fn rate_limit(&self, key: &str, limit: RateLimit, cost: u32) -> Result<RateDecision, SharedError>;

    /// Reserves up to `count` send slots of `key`, one every `spacing`, at most `ahead` beyond
    /// now; every instance reserving on the same key gets slots after the others' (pacing).
    async fn reserve(&self, key: &str, spacing: Duration, count: u32, ahead: Duration) -> Result<Reservation, SharedError>;

    /// Holds `key`'s slots back: none is reserved, by any instance, sooner than `hold` from now
    /// (a sender that Twilio is throttling).
    async fn hold(&self, key: &str, hold: Duration) -> Result<(), SharedError>;

    /// Checks that the backend answers (for readiness).
    async fn ping(&self) -> Result<(), SharedError>;
}
