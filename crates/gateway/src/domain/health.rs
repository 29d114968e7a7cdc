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
}
