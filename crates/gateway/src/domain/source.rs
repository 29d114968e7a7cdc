//! Who reported a status.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a status report came from; kept with every status-log entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusSource {
    /// The API stored the message (its creation entry).
    Api,
    /// The worker, from Twilio's answer to a send (or its own decision: retry, dead-letter).
    Worker,
    /// A Twilio status callback.
    Callback,
    /// The worker, after asking Twilio what became of an attempt whose answer was lost.
    Reconcile,
    /// The poller, after asking Twilio about a message whose callbacks stopped coming.
    Poll,
}

impl StatusSource {
    /// Every source.
    pub const ALL: [Self; 5] = [Self::Api, Self::Worker, Self::Callback, Self::Reconcile, Self::Poll];

    /// Its name in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Api => "api",
            Self::Worker => "worker",
            Self::Callback => "callback",
            Self::Reconcile => "reconcile",
            Self::Poll => "poll",
        }
    }
}

impl fmt::Display for StatusSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not a status source.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown status source {0:?}")]
pub struct UnknownSource(pub String);

impl FromStr for StatusSource {
    type Err = UnknownSource;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|v| v.as_str() == s).ok_or_else(|| UnknownSource(s.to_owned()))
    }
}
