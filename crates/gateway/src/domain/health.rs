//! Per-phone delivery health, from the counts the store keeps for each recipient.

use serde::{Deserialize, Serialize};

/// How well messages to one phone number are doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum PhoneHealth {
    /// Few or no failures.
    Healthy,
    /// A noticeable share of messages fail.
    Degraded,
    /// Most messages fail.
    Failing,
}

/// Below this many finished messages a number is given the benefit of the doubt, unless every one
/// of them failed.
const MIN_SAMPLE: i64 = 5;

impl PhoneHealth {
    /// Health from the number of messages that reached a final outcome: delivered (or read) and
    /// failed (or undelivered). Over 50% failures is `failing`, over 10% is `degraded`.
    pub fn assess(delivered: i64, failed: i64) -> Self {
        let finished = delivered + failed;
        if finished == 0 {
            return Self::Healthy;
        }
        if finished < MIN_SAMPLE {
            return if delivered == 0 && failed >= 2 {
                Self::Failing
            } else if failed > 0 {
                Self::Degraded
            } else {
                Self::Healthy
            };
        }
        let failure_rate = failed as f64 / finished as f64;
        if failure_rate > 0.5 {
            Self::Failing
        } else if failure_rate > 0.1 {
            Self::Degraded
        } else {
            Self::Healthy
        }
    }
}

/// How one sender (a number, or the Messaging Service) is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SenderHealth {
    /// Few or no failures.
    Healthy,
    /// A noticeable share of its messages fail (over 10%).
    Degraded,
    /// Most of its messages fail (over 50%).
    Failing,
    /// Twilio is throttling it right now: its messages wait, none fails for it.
    Throttled,
    /// Twilio answered 63051 (the WhatsApp Business Account is locked) and nothing was delivered
    /// from it since.
    Locked,
}

impl SenderHealth {
    /// Locked over throttled over what its delivered and failed messages say.
    pub fn assess(delivered: i64, failed: i64, locked: bool, throttled: bool) -> Self {
        if locked {
            return Self::Locked;
        }
        if throttled {
            return Self::Throttled;
        }
        match PhoneHealth::assess(delivered, failed) {
            PhoneHealth::Healthy => Self::Healthy,
            PhoneHealth::Degraded => Self::Degraded,
            PhoneHealth::Failing => Self::Failing,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds() {
        assert_eq!(PhoneHealth::assess(0, 0), PhoneHealth::Healthy);
        assert_eq!(PhoneHealth::assess(100, 5), PhoneHealth::Healthy);
        assert_eq!(PhoneHealth::assess(80, 20), PhoneHealth::Degraded);
        assert_eq!(PhoneHealth::assess(10, 90), PhoneHealth::Failing);
        assert_eq!(PhoneHealth::assess(0, 2), PhoneHealth::Failing);
        assert_eq!(PhoneHealth::assess(3, 1), PhoneHealth::Degraded);
        assert_eq!(PhoneHealth::assess(1, 0), PhoneHealth::Healthy);
    }

    #[test]
    fn a_locked_sender_is_locked_whatever_its_history() {
        assert_eq!(SenderHealth::assess(100, 0, true, true), SenderHealth::Locked);
        assert_eq!(SenderHealth::assess(100, 0, false, true), SenderHealth::Throttled);
        assert_eq!(SenderHealth::assess(10, 90, false, false), SenderHealth::Failing);
        assert_eq!(SenderHealth::assess(100, 1, false, false), SenderHealth::Healthy);
    }
}
