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

/// RFC 3339 in UTC with exactly three fractional digits, so that times also sort as text.
const RFC3339_MILLIS: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Formats Unix milliseconds as RFC 3339 UTC (`2026-01-31T09:30:00.250Z`).
pub fn rfc3339_millis(ms: UnixMillis) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(RFC3339_MILLIS).ok())
        .unwrap_or_default()
}

/// A span in words, to the largest whole unit (`5 days`, `3 hours`, `90 seconds`).
pub fn span_words(ms: i64) -> String {
    let s = ms / 1000;
    let (n, unit) = match s {
        s if s >= 86_400 && s % 86_400 == 0 => (s / 86_400, "day"),
        s if s >= 3600 && s % 3600 == 0 => (s / 3600, "hour"),
        s if s >= 60 && s % 60 == 0 => (s / 60, "minute"),
        s if s >= 1 => (s, "second"),
        _ => return format!("{ms} ms"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

/// A duration in milliseconds, saturating far below `i64::MAX` (so that sums stay in range).
pub fn duration_ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
}
