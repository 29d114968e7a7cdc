//! Time as the gateway keeps it: Unix milliseconds, UTC.

/// Milliseconds since the Unix epoch, UTC. The store keeps every time in this form.
pub type UnixMillis = i64;

/// The current time in Unix milliseconds (this process's clock).
///
/// Decisions that several instances must agree on (lease expiry) use the database's clock
/// instead; see `docs/ARCHITECTURE.md`.
pub fn now_ms() -> UnixMillis {
    (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}
