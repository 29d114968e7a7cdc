//! Persistence on SQLite (the embedded default) or PostgreSQL (production), chosen by
//! `DATABASE_URL`. Reads decode rows into typed records ([`records`]); every write goes through
//! one batching writer per process ([`write`]), which runs many callers' commands in one
//! transaction and answers each once it is committed. Times are Unix milliseconds, ids UUID text.

mod attempts;
mod claims;
mod codec;
pub mod db;
pub mod error;
pub mod events;
mod messages;
mod metrics;
pub mod records;
mod refusal;
mod reports;
pub mod write;

pub use claims::Backlog;
pub use db::{Backend, Store, StoreOptions};
pub use error::StoreError;
pub use messages::ListFilter;
pub use records::{AttemptRecord, Contact, MessageRecord, MetricsBucket, PhoneErrorRecord, PhonePerformance, SenderStats, StatusLogEntry};
pub use refusal::Refusal;
pub use write::command::{ApplyOutcome, Claim, ClaimResult, InboundOutcome, OperatorOutcome, PollPick, PollTarget, StatusReport};
