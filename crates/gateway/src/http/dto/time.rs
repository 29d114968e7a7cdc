//! Times on the wire: RFC 3339 in UTC with milliseconds.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::domain::UnixMillis;
use crate::http::problem::FieldError;

/// Formats Unix milliseconds as RFC 3339 UTC (`2026-01-31T09:30:00.250Z`).
pub fn rfc3339(ms: UnixMillis) -> String {
    crate::domain::clock::rfc3339_millis(ms)
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub fn parse_rfc3339(field: &str, value: &str) -> Result<UnixMillis, FieldError> {
    OffsetDateTime::parse(value, &Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .map_err(|_| FieldError::new(field, format!("must be an RFC 3339 time such as 2026-01-31T09:30:00Z, got {value:?}")))
}
