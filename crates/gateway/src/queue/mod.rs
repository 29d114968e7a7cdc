//! Where workers find work. The database row stays the source of truth: a queue only says "look
//! at message X at or after `run_at`", and the worker claims the message itself before sending,
//! so a duplicate or stale job is harmless (invariants 1 and 2 in `docs/ARCHITECTURE.md`).
//!
//! Two implementations: [`SqlQueue`], where the messages table is the queue (its sendable rows,
//! through a partial index), and [`RedisQueue`], a shared queue of ids in Redis for many
//! instances, whose claims and completions go in batches.

mod job;
mod redis;
mod scripts;
mod sql;

pub use self::redis::RedisQueue;
pub use job::{Job, JobQueue, QueueError};
pub use sql::SqlQueue;
