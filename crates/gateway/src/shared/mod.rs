//! State shared by every instance of the gateway: idempotency records, rate limits and pacing
//! reservations ([`SharedState`]). The embedded default keeps it in process ([`MemoryState`]);
//! several instances share it through Redis ([`RedisState`]). Both give the same answers to the
//! same calls; the arithmetic is the same on both sides ([`gcra`] for pacing, [`window`] for rate
//! limits).
//!
//! Also home of the Redis plumbing the queue shares ([`connection`]).

pub mod connection;
mod gcra;
mod grouped;
mod memory;
mod redis;
pub mod state;
mod window;

pub use self::memory::MemoryState;
pub use self::redis::RedisState;
pub use connection::{RedisCallError, RedisConnection};
pub(crate) use connection::{timed, valid_prefix};
pub use state::{IdempotencyState, RateDecision, RateLimit, Reservation, SharedError, SharedState};
pub use window::BURST_WINDOW;
