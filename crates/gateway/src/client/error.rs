//! What a call can fail with, and how a problem detail reads on a terminal.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use crate::http::problem::FieldError;

/// The problem-type URI prefix the gateway uses; the slug after it names the kind of problem.
const PROBLEM_PREFIX: &str = "https://whatsapp-gateway.dev/problems/";

/// An RFC 9457 problem detail as the client reads it: extension members are ignored, missing
/// members are empty (the API always sends them; a proxy in between might not).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// A short summary of the kind of problem.
    #[serde(default)]
    pub title: String,
    /// The HTTP status.
    #[serde(default)]
    pub status: u16,
    /// What went wrong with this request.
    #[serde(default)]
    pub detail: String,
    /// Every invalid field (validation problems).
    #[serde(default)]
    pub errors: Vec<FieldError>,
}

impl Problem {
    /// The kind of problem in short: the slug of its type URI (`validation`, `not-found`…).
    pub fn slug(&self) -> &str {
        self.kind.strip_prefix(PROBLEM_PREFIX).unwrap_or(&self.kind)
    }
}

impl fmt::Display for Problem {
    /// `404 Not found: <detail>`; a validation problem (whose detail joins its field errors)
    /// as one indented line per invalid field instead.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.title)?;
        if self.errors.is_empty() && !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        for e in &self.errors {
            write!(f, "\n  - {}: {}", e.field, e.reason)?;
        }
        Ok(())
    }
}

/// Everything a call to the gateway can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The API refused the request with a problem detail.
    #[error("{problem}")]
    Problem {
        /// The problem the API answered.
        problem: Problem,
        /// `Retry-After`, when the answer had one (429, 503).
        retry_after: Option<Duration>,
    },
    /// No answer: the gateway could not be reached, or the request timed out.
    #[error("no answer from the gateway at {url}")]
    Transport {
        /// The URL called.
        url: String,
        /// Why.
        #[source]
        source: reqwest::Error,
    },
    /// An answer that is not what the API sends (another server at this URL, or a proxy's page).
    #[error("unexpected answer from the gateway (HTTP {status}): {reason}")]
    Unexpected {
        /// The HTTP status.
        status: u16,
        /// What was wrong with it.
        reason: String,
    },
    /// The client was given something it cannot use (a malformed URL).
    #[error("{0}")]
    Usage(String),
}

impl ClientError {
    /// Reads a refusal: a problem detail, or anything else as [`ClientError::Unexpected`].
    pub(super) fn from_refusal(status: u16, text: &str, retry_after: Option<Duration>) -> Self {
        match serde_json::from_str::<Problem>(text) {
            Ok(mut problem) => {
                if problem.status == 0 {
                    problem.status = status;
                }
                Self::Problem { problem, retry_after }
            }
            Err(_) => {
                let mut excerpt: String = text.chars().take(200).collect();
                if excerpt.trim().is_empty() {
                    excerpt = "an empty body".to_owned();
                }
                Self::Unexpected { status, reason: excerpt }
            }
        }
    }

    /// The HTTP status the gateway answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Problem { problem, .. } => Some(problem.status),
            Self::Unexpected { status, .. } => Some(*status),
            Self::Transport { .. } | Self::Usage(_) => None,
        }
    }

    /// `Retry-After`, if the answer had one.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Problem { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the same request may succeed later: no answer, a gateway or dependency that is
    /// down (502, 503, 504), or an idempotency key whose first request is still running (409).
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transport { .. }) || matches!(self.status(), Some(409 | 502 | 503 | 504))
    }

    /// A short name for the kind of failure: the problem's slug, `unreachable` or `unexpected`.
    pub fn kind(&self) -> &str {
        match self {
            Self::Problem { problem, .. } => problem.slug(),
            Self::Transport { .. } => "unreachable",
            Self::Unexpected { .. } => "unexpected",
            Self::Usage(_) => "usage",
        }
    }

    /// What went wrong, in one line: the problem's detail, or this error's text with its causes.
    pub fn one_line(&self) -> String {
        match self {
            Self::Problem { problem, .. } if !problem.detail.is_empty() => problem.detail.clone(),
            Self::Problem { problem, .. } => format!("{} {}", problem.status, problem.title),
            other => crate::telemetry::chain(other),
        }
    }
}
