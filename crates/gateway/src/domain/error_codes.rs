//! Twilio error codes: which are worth retrying and what they mean.
//!
//! Throttling (HTTP 429, 20429 "too many concurrent requests", 63018 "rate limit exceeded for the
//! sender") slows the sender down and never uses up a message's attempts; 5xx answers and network
//! failures are retried; every other 4xx and the listed delivery errors are permanent, since
//! sending the same message again cannot succeed.

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// Try again later, with backoff.
    Retryable,
    /// Twilio is throttling the sender: slow the sender down and try again; the attempt does not
    /// count against the message's allowance, so only its validity period can end it.
    Throttled,
    /// Give up now and keep the code.
    Permanent,
    /// The message's time ran out (its validity period, or Twilio's queue): `expired`, never
    /// retried.
    Expired,
    /// Meta held a marketing message back (63049, its per-user marketing limit): try again much
    /// later, each wait longer ([`deferred_delay`]) — except to a US number, to which Meta
    /// delivers no marketing message at all (the caller makes that one permanent).
    Deferred,
}

/// Meta's "not delivered to maintain healthy ecosystem engagement" (a per-user limit on
/// marketing messages).
pub const MARKETING_LIMIT: i64 = 63049;

/// How long a message held back by Meta's marketing limit waits before its `n`-th (1-based)
/// try again: an hour, doubled each time, at most a day (the limit is per user per period, so
/// retrying within minutes only meets it again).
pub fn deferred_delay(n: u32) -> std::time::Duration {
    const HOUR: u64 = 3_600;
    std::time::Duration::from_secs((HOUR << n.saturating_sub(1).min(5)).min(24 * HOUR))
}

/// Codes Twilio documents as safe or sensible to retry.
const RETRYABLE: &[i64] = &[20500, 20503, 63017];

/// Codes that say the sender is sending too fast (beside any HTTP 429).
const THROTTLING: &[i64] = &[20429, 63018];

/// Codes that end a message `expired`: 30036 (validity period expired), 21611 (the sender's
/// queue is full), 30001 (queue overflow). Sending again later would only be later still.
const EXPIRY: &[i64] = &[30036, 21611, 30001];

/// Twilio's "outside the 24-hour customer service window" (free-form content to a contact who has
/// not written in 24 hours); the gateway records it too when it refuses to send such a message.
pub const OUTSIDE_WINDOW: i64 = 63016;

/// Twilio's "the recipient has unsubscribed" (it replied STOP): the contact is opted out.
pub const UNSUBSCRIBED: i64 = 21610;

/// Codes that say the number itself cannot receive: 63024 (invalid message recipient), 21211
/// (invalid 'To' number), 21614 (not a mobile number). The recipient is suppressed.
const SUPPRESSING: &[i64] = &[63024, 21211, 21614];

/// Whether `code` suppresses the recipient: later sends to it are refused unless forced.
pub fn suppresses(code: i64) -> bool {
    SUPPRESSING.contains(&code)
}

/// The code the gateway records for a message it did not send within its validity period.
pub const VALIDITY_EXPIRED: i64 = 30036;

/// Whether `code` ends a message `expired`.
pub fn is_expiry(code: i64) -> bool {
    EXPIRY.contains(&code)
}

/// Classifies an API answer by its HTTP status and Twilio error code.
pub fn classify_code(http_status: u16, code: Option<i64>) -> ErrorClass {
    if code.is_some_and(is_expiry) {
        ErrorClass::Expired
    } else if code == Some(MARKETING_LIMIT) {
        ErrorClass::Deferred
    } else if code.is_some_and(|c| THROTTLING.contains(&c)) || http_status == 429 {
        ErrorClass::Throttled
    } else if code.is_some_and(|c| RETRYABLE.contains(&c)) || http_status >= 500 {
        ErrorClass::Retryable
    } else {
        ErrorClass::Permanent
    }
}

/// A short description of a Twilio error code, for codes the gateway meets on WhatsApp.
pub fn describe(code: i64) -> &'static str {
    match code {
        20003 => "Authentication failed: check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
        20429 => "Too many concurrent requests",
        21211 => "Invalid 'To' phone number",
        21408 => "Permission to send to this region is not enabled",
        21610 => "The recipient has unsubscribed (replied STOP)",
        21611 => "The sender has too many messages queued: not sent in time",
        21614 => "'To' is not a valid mobile number",
        30001 => "Queue overflow: not sent in time",
        30003 => "Unreachable destination handset",
        30004 => "Message blocked",
        30005 => "Unknown destination handset",
        30006 => "Landline or unreachable carrier",
        30007 => "Message filtered",
        30008 => "Unknown error",
        30036 => "Not sent within its validity period",
        63003 => "The recipient is not a valid WhatsApp user",
        63007 => "No WhatsApp sender found for the From address",
        63016 => "Outside the 24-hour customer service window: send an approved template (content_sid)",
        63018 => "WhatsApp rate limit exceeded for the sender",
        63024 => "Invalid message recipient",
        63032 => "WhatsApp cannot deliver to this user (WhatsApp limitation)",
        63049 => "Meta chose not to deliver this marketing message (per-user marketing limit)",
        63051 => "The WhatsApp Business Account of the sender is locked",
        _ => "Twilio reported an error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttling_is_throttling_and_server_errors_are_retried() {
        assert_eq!(classify_code(429, Some(20429)), ErrorClass::Throttled);
        assert_eq!(classify_code(429, None), ErrorClass::Throttled);
        assert_eq!(classify_code(400, Some(63018)), ErrorClass::Throttled);
        assert_eq!(classify_code(400, Some(63049)), ErrorClass::Deferred);
        let hours: Vec<u64> = (1..=7).map(|n| deferred_delay(n).as_secs() / 3_600).collect();
        assert_eq!(hours, [1, 2, 4, 8, 16, 24, 24]);
        assert_eq!(classify_code(500, None), ErrorClass::Retryable);
        assert_eq!(classify_code(500, Some(63017)), ErrorClass::Retryable);
        assert_eq!(classify_code(503, Some(20503)), ErrorClass::Retryable);
    }

    #[test]
    fn running_out_of_time_is_expiry_and_never_retried() {
        for (status, code) in [(400, 30036), (400, 21611), (429, 30001), (500, 30001)] {
            assert_eq!(classify_code(status, Some(code)), ErrorClass::Expired, "{code}");
        }
        assert!(!is_expiry(30008));
    }

    #[test]
    fn permanent_errors_are_not() {
        for code in [21211, 21610, 21614, 63016, 63024, 63032, 20003] {
            assert_eq!(classify_code(400, Some(code)), ErrorClass::Permanent, "{code}");
        }
    }
}
