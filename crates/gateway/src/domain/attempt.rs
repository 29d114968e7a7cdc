//! Send attempts: what one call to Twilio came to.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a send attempt came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// The request is (or was, when the worker died) on its way to Twilio.
    InFlight,
    /// Twilio accepted the message.
    Accepted,
    /// Twilio refused it for now (429, 5xx) or it never reached Twilio; retry.
    Retryable,
    /// The request may have reached Twilio but no answer came back; reconcile before resending.
    Unknown,
    /// Twilio refused it for good.
    Permanent,
    /// An attempt whose answer was lost, found at Twilio afterwards.
    Reconciled,
    /// An attempt whose answer was lost and that Twilio has no record of.
    Lost,
}

impl AttemptOutcome {
    /// Every outcome.
    pub const ALL: [Self; 7] =
        [Self::InFlight, Self::Accepted, Self::Retryable, Self::Unknown, Self::Permanent, Self::Reconciled, Self::Lost];

    /// Its name in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InFlight => "in_flight",
            Self::Accepted => "accepted",
            Self::Retryable => "retryable",
            Self::Unknown => "unknown",
            Self::Permanent => "permanent",
            Self::Reconciled => "reconciled",
            Self::Lost => "lost",
        }
    }

    /// Whether the attempt may have reached Twilio without our knowing: ask Twilio before
    /// sending again.
    pub fn is_unresolved(self) -> bool {
        matches!(self, Self::InFlight | Self::Unknown)
    }
}

impl fmt::Display for AttemptOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not an attempt outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown attempt outcome {0:?}")]
pub struct UnknownOutcome(pub String);

impl FromStr for AttemptOutcome {
    type Err = UnknownOutcome;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| UnknownOutcome(s.to_owned()))
    }
}

/// The answer to one send attempt, as the worker records it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttemptResult {
    /// HTTP status of Twilio's answer.
    pub http_status: Option<i64>,
    /// Twilio's (or a local) error code.
    pub error_code: Option<i64>,
    /// Error text.
    pub error_message: Option<String>,
}
