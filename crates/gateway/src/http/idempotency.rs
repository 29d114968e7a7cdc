//! Idempotency keys on `POST /send` (`Idempotency-Key`, or `X-Idempotency-Key`) and on each item
//! of `POST /send/batch` (`idempotency_key`): the same key and
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

/// Checks a key given in `field`: 1 to 255 visible ASCII characters.
pub fn check_key(key: &str, field: &str) -> Result<String, ApiError> {
    let key = key.trim();
    if key.is_empty() || key.len() > 255 || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(ApiError::field(field, "must be 1 to 255 visible ASCII characters (a UUID is a good choice)"));
    }
    Ok(key.to_owned())
}

/// Reads the key header, if any, and checks it. Both headers are checked when both are sent;
/// `Idempotency-Key` wins.
pub fn key_from(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let read = |name: &'static str, field: &'static str| -> Result<Option<String>, ApiError> {
        let Some(value) = headers.get(name) else { return Ok(None) };
        let key = value.to_str().map_err(|_| ApiError::field(field, "must be visible ASCII"))?;
        check_key(key, field).map(Some)
    };
    let standard = read("idempotency-key", "Idempotency-Key");
    let legacy = read("x-idempotency-key", "X-Idempotency-Key");
    match (standard, legacy) {
        (Err(a), Err(b)) => Err(ApiError::Validation([a.field_errors(), b.field_errors()].concat())),
        (Err(e), _) | (_, Err(e)) => Err(e),
        (Ok(standard), Ok(legacy)) => Ok(standard.or(legacy)),
    }
}

/// What the shared records say about one key.
pub enum Found {
    /// The key is ours: run, then [`complete`] or [`abandon`].
    Run(Held),
    /// The stored answer of the first request with this key (same fingerprint).
    Replay {
        /// Its status.
        status: StatusCode,
        /// Its JSON body.
        body: Vec<u8>,
    },
    /// The records are unavailable: run; the database's unique key still stops a second message.
    Unrecorded,
}

/// Takes `key` for `subject` for a request whose content hashes to `fingerprint`, or finds the
/// stored answer; 409 while the first request runs, 422 if it had other content (`field` names
/// where the key was given).
pub async fn lookup(state: &AppState, subject: &str, key: &str, fingerprint: String, field: &str) -> Result<Found, ApiError> {
    let scoped = format!("idem:{}", scoped(subject, key));
    let found = match state.shared.idempotency_begin(&scoped, &fingerprint, IN_FLIGHT).await {
        Ok(found) => found,
        Err(e) => {
            tracing::warn!(error = %e, "idempotency records unavailable; relying on the database's unique key");
            return Ok(Found::Unrecorded);
        }
    };
    match found {
        IdempotencyState::New => Ok(Found::Run(Held { key: scoped, fingerprint })),
        IdempotencyState::InFlight => Err(ApiError::Conflict(format!("a request with this {field} is still being processed; retry later"))),
        IdempotencyState::Completed { fingerprint: stored, status, body } if stored == fingerprint => {
            Ok(Found::Replay { status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body })
        }
        IdempotencyState::Completed { .. } => {
            Err(ApiError::field(field, "was already used with a different request body; use a new key for a new request"))
        }
    }
}

/// Takes the key for `subject`, or finds the stored answer.
pub async fn begin(state: &AppState, subject: &str, key: Option<String>, body: &[u8]) -> Result<Begin, ApiError> {
    let Some(key) = key else { return Ok(Begin::NoKey) };
    match lookup(state, subject, &key, twilio_signature::hex_sha256(body), "Idempotency-Key").await? {
        Found::Run(held) => Ok(Begin::Run(held)),
        Found::Unrecorded => Ok(Begin::NoKey),
        Found::Replay { status, body } => {
            let mut response = (status, body).into_response();
            response.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
            response.headers_mut().insert("idempotent-replayed", HeaderValue::from_static("true"));
            Ok(Begin::Replay(response))
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
