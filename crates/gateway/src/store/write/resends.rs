//! Sending again a message Twilio reported failed for a reason that time or a template fixes: the
//! policy codes that come in a status callback (or a poll's answer) rather than in the create's
//! answer.
//!
//! - 63016 (outside the 24-hour window) for free-form content with a `fallback`: sent again, at
//!   once, as that template.
//! - 63018 (the sender's rate limit): sent again after 30 s, doubling to at most 15 min, not
//!   counted against the attempts allowed (throttling never kills a message).
//! - 63049 (Meta's per-user marketing limit), not to a US number: sent again after an hour,
//!   doubling to a day.
//!
//! Such a message goes back to `retrying` — the one move backwards besides a redrive, logged as
//! such — keeping its SID until the next create names a new one: while it waits, reports about
//! the old SID are not applied (that message is over at Twilio), and once the new SID is recorded
//! they no longer find it. Its validity period still ends it (`expired`).

use super::command::ApplyOutcome;
use super::plan::Plan;
use crate::domain::error_codes::{MARKETING_LIMIT, OUTSIDE_WINDOW, deferred_delay, describe};
use crate::domain::{MessageId, MessageSid, MessageStatus, StatusEvent, StatusSource, UnixMillis};

/// Twilio's "rate limit exceeded for the sender", as a callback reports it.
const SENDER_RATE_LIMIT: i64 = 63018;

/// Why and when a message is sent again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Resend {
    /// When it is due again.
    at: UnixMillis,
    /// Send its fallback template instead of its free-form content.
    as_fallback: bool,
    /// The attempt does not count against the allowance.
    free: bool,
    /// What the log says.
    why: String,
}

/// How long a message Twilio failed with 63018 waits before its `n`-th (1-based) resend: 30 s,
/// doubled each time, at most 15 minutes.
fn throttled_delay(n: i64) -> i64 {
    let doublings = u32::try_from(n.saturating_sub(1).clamp(0, 5)).unwrap_or(5);
    (30_000_i64 << doublings).min(15 * 60_000)
}

impl Plan {
    /// Whether `event` (a failure Twilio reported for message `id`) sends it again, and how.
    pub(super) fn resend_for(&self, id: MessageId, event: &StatusEvent) -> Option<Resend> {
        if !matches!(event.status, MessageStatus::Failed | MessageStatus::Undelivered) {
            return None;
        }
        let m = self.messages.get(&id)?;
        if m.status().is_terminal() || m.message_sid.is_none() {
            return None;
        }
        let now = self.now;
        let tries = m.attempts - m.attempt_base;
        let (after, as_fallback, free, how) = match event.error_code? {
            OUTSIDE_WINDOW if m.content_sid.is_none() => {
                let fallback = m.fallback_content_sid.as_ref()?;
                (0, true, true, format!("sent again as its fallback template {fallback}"))
            }
            SENDER_RATE_LIMIT => {
                let wait = throttled_delay(tries.max(1));
                (wait, false, true, format!("sent again in {} s, not counted against the attempts allowed", wait / 1000))
            }
            MARKETING_LIMIT if !m.to.is_us() => {
                let wait =
                    i64::try_from(deferred_delay(u32::try_from(tries.max(1)).unwrap_or(u32::MAX)).as_millis()).unwrap_or(i64::MAX / 4);
                (wait, false, false, format!("sent again in {} h", wait / 3_600_000))
            }
            _ => return None,
        };
        let code = event.error_code.unwrap_or_default();
        // Due by the end of its validity at the latest, when the claim expires it.
        let at = m.expires_at.map_or(now + after, |expires| (now + after).min(expires));
        let sid = m.message_sid.as_ref().map(MessageSid::as_str).unwrap_or_default();
        Some(Resend {
            at,
            as_fallback,
            free,
            why: format!("Twilio reported {sid} {} with {code} ({}): {how}", event.status, describe(code)),
        })
    }

    /// Puts message `id` back to `retrying` as `resend` says; the report is logged with it.
    pub(super) fn resend(&mut self, id: MessageId, event: &StatusEvent, source: StatusSource, resend: Resend) -> ApplyOutcome {
        let m = self.touch(id).expect("checked by resend_for");
        let previous = m.status();
        if resend.as_fallback {
            m.content_sid = m.fallback_content_sid.clone();
            m.content_variables = m.fallback_content_variables.clone();
        }
        if resend.free {
            m.attempt_base += 1;
        }
        // The next SID's reports start afresh.
        m.callbacks_seen = 0;
        m.lifecycle.status = MessageStatus::Retrying;
        m.lifecycle.last_status_at = event.at;
        m.lifecycle.error_code = event.error_code;
        m.error_message = event.error_code.map(|code| describe(code).to_owned());
        m.next_attempt_at = Some(resend.at);
        m.lease_owner = None;
        m.lease_until = None;
        self.log(id, Some(previous), MessageStatus::Retrying, true, event.error_code, source, Some(resend.why), event.at);
        ApplyOutcome::Applied { previous, current: MessageStatus::Retrying }
    }

    /// A report about the SID of a message being sent again: that message is over at Twilio.
    pub(super) fn retired_sid(&self, id: MessageId, sid: &MessageSid) -> bool {
        self.messages.get(&id).is_some_and(|m| m.status() == MessageStatus::Retrying && m.message_sid.as_ref() == Some(sid))
    }
}

#[cfg(test)]
mod tests {
    use super::throttled_delay;

    #[test]
    fn a_throttled_resend_waits_longer_each_time_up_to_a_quarter_hour() {
        let waits: Vec<i64> = (1..=7).map(|n| throttled_delay(n) / 1000).collect();
        assert_eq!(waits, [30, 60, 120, 240, 480, 900, 900]);
    }
}
