//! Injected behaviours: per-recipient faults and overrides, and WhatsApp's 24-hour customer
//! service windows.
//!
//! A behaviour is keyed by the recipient's E.164 number (`+14155550100`; a `whatsapp:` prefix is
//! stripped). The key `*` sets a default for every recipient without a behaviour of its own.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::error::TwilioError;
use crate::model::recipient_key;

/// The recipient key that applies to every recipient without a behaviour of its own.
pub const ANY_RECIPIENT: &str = "*";

/// How long an inbound message keeps WhatsApp's customer service window open.
pub const WINDOW: Duration = Duration::from_secs(24 * 60 * 60);

/// What the emulator does with messages to one recipient. Every field is optional; the default
/// changes nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Behaviour {
    /// Make the message fail asynchronously with this status and error code.
    pub fail: Option<Failure>,
    /// Answer the create itself with this error; nothing is stored.
    pub rest_error: Option<RestError>,
    /// The first N creates to this recipient (counted from when the behaviour was set) answer
    /// 429 / 20429.
    pub throttle_first: u32,
    /// Every create to this recipient within this many milliseconds of the behaviour being set
    /// answers 429 (a throttling storm), before any `throttle_first` budget is counted.
    pub throttle_for_ms: u64,
    /// The code of the throttling answers: 20429 (the default, "Too Many Requests") or 63018
    /// ("rate limit exceeded for the WhatsApp sender").
    pub throttle_code: Option<u32>,
    /// The first N creates to this recipient (after any throttled ones) answer 500 / 20500.
    pub server_error_first: u32,
    /// Send every status callback twice, with the same idempotency token.
    pub duplicate_callbacks: bool,
    /// Hold this message's callbacks until its last status change, then send them newest first.
    pub reorder_callbacks: bool,
    /// Send no status callback at all for messages to this recipient (Twilio does not promise
    /// them): the statuses still change, and a fetch by SID shows them.
    pub drop_callbacks: bool,
    /// Override the config's `read_receipts` (false: stop at `delivered`).
    pub read_receipts: Option<bool>,
    /// Override the 24-hour rule: `true` treats the window as open, `false` as closed (even
    /// with `enforce_window` off).
    pub window_open: Option<bool>,
    /// Override the config's create latency, in milliseconds.
    pub latency_ms: Option<u64>,
}

/// An asynchronous failure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// `failed` (the callback goes straight to `failed`, no `sent`) or `undelivered` (`sent`,
    /// then `undelivered`).
    pub status: FailureStatus,
    /// The `ErrorCode` to report, e.g. 30003 or 63016.
    pub error_code: u32,
}

impl Failure {
    /// Fails without being sent: callback `failed` with `error_code`, no `sent`.
    pub fn failed(error_code: u32) -> Self {
        Self { status: FailureStatus::Failed, error_code }
    }

    /// Sent, then `undelivered` with `error_code`.
    pub fn undelivered(error_code: u32) -> Self {
        Self { status: FailureStatus::Undelivered, error_code }
    }
}

/// The final status of an injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureStatus {
    /// Never sent.
    Failed,
    /// Sent, then not delivered.
    Undelivered,
}

/// A synchronous REST error for the create request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestError {
    /// HTTP status, e.g. 400.
    pub status: u16,
    /// Twilio error code, e.g. 21211.
    pub code: u32,
    /// Error message; a generic one when empty.
    #[serde(default)]
    pub message: String,
}

impl RestError {
    pub(crate) fn to_error(&self) -> TwilioError {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::BAD_REQUEST);
        let message =
            if self.message.is_empty() { format!("Error {} (injected by the emulator)", self.code) } else { self.message.clone() };
        TwilioError::new(status, self.code, message)
    }
}

#[derive(Debug)]
struct Entry {
    behaviour: Behaviour,
    set_at: Instant,
    throttled: u32,
    server_errored: u32,
}

/// The behaviours set at run time, with how many creates each has already throttled or failed.
#[derive(Debug, Default)]
pub(crate) struct Behaviours {
    entries: Mutex<HashMap<String, Entry>>,
}

impl Behaviours {
    pub fn set(&self, recipient: &str, behaviour: Behaviour) {
        let entry = Entry { behaviour, set_at: Instant::now(), throttled: 0, server_errored: 0 };
        lock(&self.entries).insert(recipient_key(recipient), entry);
    }

    pub fn clear(&self) {
        lock(&self.entries).clear();
    }

    pub fn all(&self) -> HashMap<String, Behaviour> {
        lock(&self.entries).iter().map(|(k, e)| (k.clone(), e.behaviour.clone())).collect()
    }

    /// The behaviour for a create to `recipient`, or the synchronous error it must answer with.
    /// Throttle and server-error budgets are used up here.
    pub fn on_create(&self, recipient: &str) -> Result<Behaviour, TwilioError> {
        let mut entries = lock(&self.entries);
        let key = if entries.contains_key(recipient) { recipient } else { ANY_RECIPIENT };
        let Some(entry) = entries.get_mut(key) else {
            return Ok(Behaviour::default());
        };
        if let Some(error) = &entry.behaviour.rest_error {
            return Err(error.to_error());
        }
        let throttle = || match entry.behaviour.throttle_code {
            Some(63018) => TwilioError::new(StatusCode::TOO_MANY_REQUESTS, 63018, "Rate limit exceeded for the WhatsApp sender"),
            _ => TwilioError::too_many_requests(),
        };
        if entry.set_at.elapsed() < Duration::from_millis(entry.behaviour.throttle_for_ms) {
            return Err(throttle());
        }
        if entry.throttled < entry.behaviour.throttle_first {
            let error = throttle();
            entry.throttled += 1;
            return Err(error);
        }
        if entry.server_errored < entry.behaviour.server_error_first {
            entry.server_errored += 1;
            return Err(TwilioError::internal());
        }
        Ok(entry.behaviour.clone())
    }
}

/// When each number last sent an inbound message (or had its window opened by hand).
#[derive(Debug, Default)]
pub(crate) struct Windows {
    opened: Mutex<HashMap<String, Instant>>,
}

impl Windows {
    pub fn open(&self, number: &str) {
        lock(&self.opened).insert(recipient_key(number), Instant::now());
    }

    pub fn close(&self, number: &str) {
        lock(&self.opened).remove(&recipient_key(number));
    }

    pub fn is_open(&self, number: &str) -> bool {
        lock(&self.opened).get(&recipient_key(number)).is_some_and(|at| at.elapsed() < WINDOW)
    }
}

/// Locks a mutex, recovering the data if a holder panicked (the data stays consistent: every
/// critical section here is a single map operation).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaviour_json_uses_the_documented_field_names() {
        let b: Behaviour =
            serde_json::from_str(r#"{"fail":{"status":"failed","error_code":30003},"throttle_first":2,"read_receipts":false}"#).unwrap();
        assert_eq!(b.fail, Some(Failure { status: FailureStatus::Failed, error_code: 30003 }));
        assert_eq!(b.throttle_first, 2);
        assert_eq!(b.read_receipts, Some(false));
        assert!(!b.duplicate_callbacks);
    }

    #[test]
    fn throttle_then_server_error_budgets_are_used_in_order() {
        let book = Behaviours::default();
        book.set("whatsapp:+14155550100", Behaviour { throttle_first: 1, server_error_first: 1, ..Behaviour::default() });
        assert_eq!(book.on_create("+14155550100").unwrap_err().code, 20429);
        assert_eq!(book.on_create("+14155550100").unwrap_err().code, 20500);
        assert!(book.on_create("+14155550100").is_ok());
    }

    #[test]
    fn a_throttling_storm_lasts_its_time_then_creates_go_through() {
        let book = Behaviours::default();
        book.set(ANY_RECIPIENT, Behaviour { throttle_for_ms: 150, throttle_code: Some(63018), ..Behaviour::default() });
        let refused = book.on_create("+14155550100").unwrap_err();
        assert_eq!((refused.status, refused.code), (StatusCode::TOO_MANY_REQUESTS, 63018));
        assert_eq!(book.on_create("+14155550101").unwrap_err().code, 63018);
        std::thread::sleep(Duration::from_millis(200));
        assert!(book.on_create("+14155550100").is_ok());
    }

    #[test]
    fn star_applies_to_recipients_without_their_own() {
        let book = Behaviours::default();
        book.set(ANY_RECIPIENT, Behaviour { duplicate_callbacks: true, ..Behaviour::default() });
        book.set("+14155550101", Behaviour::default());
        assert!(book.on_create("+14155550100").unwrap().duplicate_callbacks);
        assert!(!book.on_create("+14155550101").unwrap().duplicate_callbacks);
    }
}
