//! Idempotency keys on `POST /send` (`Idempotency-Key`, or `X-Idempotency-Key`): the same key and
//! body returns the stored answer (same message, nothing sent twice); the same key with another
//! body is a 422; a key whose first request is still running is a 409. Keys are scoped per token
//! subject and kept 24 hours.

use std::time::Duration;

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::problem::ApiError;
use crate::shared::IdempotencyState;
use crate::state::AppState;

/// How long a completed answer is kept.
pub const KEEP: Duration = Duration::from_secs(24 * 60 * 60);
/// How long an in-flight marker survives a holder that died.
const IN_FLIGHT: Duration = Duration::from_secs(60);

/// An idempotency key taken for one request.
pub struct Held {
    key: String,
    fingerprint: String,
}

/// What to do with a request that carries (or not) an idempotency key.
pub enum Begin {
    /// No key: just run it.
    NoKey,
    /// The key is ours: run, then [`complete`] or [`abandon`].
    Run(Held),
    /// The stored answer of the first request with this key.
    Replay(Response),
}

/// The key as stored on the message row: scoped by caller (length-prefixed, so that no two
/// subject/key pairs can produce the same text).
pub fn scoped(subject: &str, key: &str) -> String {
    format!("{}:{subject}:{key}", subject.len())
}

/// Reads the key header, if any, and checks it. Both headers are checked when both are sent;
/// `Idempotency-Key` wins.
pub fn key_from(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let read = |name: &'static str, field: &'static str| -> Result<Option<String>, ApiError> {
        let Some(value) = headers.get(name) else { return Ok(None) };
        let key = value.to_str().map_err(|_| ApiError::field(field, "must be visible ASCII"))?.trim();
        if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiError::field(field, "must be 1 to 255 visible ASCII characters (a UUID is a good choice)"));
        }
        Ok(Some(key.to_owned()))
    };
    let standard = read("idempotency-key", "Idempotency-Key");
    let legacy = read("x-idempotency-key", "X-Idempotency-Key");
    match (standard, legacy) {
        (Err(a), Err(b)) => Err(ApiError::Validation([a.field_errors(), b.field_errors()].concat())),
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(standard), Ok(legacy)) => Ok(standard.or(legacy)),
    }
}

/// Takes the key for `subject`, or finds the stored answer.
pub async fn begin(state: &AppState, subject: &str, key: Option<String>, body: &[u8]) -> Result<Begin, ApiError> {
    let Some(key) = key else { return Ok(Begin::NoKey) };
    let scoped = format!("idem:{}", scoped(subject, &key));
    let fingerprint = twilio_signature::hex_sha256(body);
    let found = match state.shared.idempotency_begin(&scoped, &fingerprint, IN_FLIGHT).await {
        Ok(found) => found,
        Err(e) => {
            // The database's unique key still stops a second message for this key.
            tracing::warn!(error = %e, "idempotency records unavailable; relying on the database's unique key");
            return Ok(Begin::NoKey);
        }
    };
    match found {
        IdempotencyState::New => Ok(Begin::Run(Held { key: scoped, fingerprint })),
        IdempotencyState::InFlight => {
            Err(ApiError::Conflict("a request with this Idempotency-Key is still being processed; retry later".into()))
        }
        IdempotencyState::Completed { fingerprint: stored, status, body } if stored == fingerprint => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
            let mut response = (status, body).into_response();
            response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(Begin::Replay(response))
        }
        IdempotencyState::Completed { .. } => {
            Err(ApiError::field("Idempotency-Key", "was already used with a different request body; use a new key for a new request"))
        }
    }
}

/// Stores the answer under the key. A failure is only logged: the message is stored, and the
/// database's unique key answers a retry with the same message.
pub async fn complete(state: &AppState, held: Held, status: StatusCode, body: &[u8]) {
    if let Err(e) = state.shared.idempotency_complete(&held.key, &held.fingerprint, status.as_u16(), body, KEEP).await {
        tracing::warn!(error = %e, "could not store the idempotency record; the database still guards the key");
    }
}

/// Releases the key after a failure, so that a retry can run.
pub async fn abandon(state: &AppState, held: Held) {
    if let Err(e) = state.shared.idempotency_abandon(&held.key).await {
        tracing::warn!(error = %e, "could not release an idempotency key; it expires by itself");
    }
}
