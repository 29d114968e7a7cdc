//! The service's error type: what the API maps to HTTP. Infrastructure failures are sorted here
//! once: an unreachable dependency is [`GatewayError::Unavailable`] (503 with `Retry-After`),
//! everything unexpected keeps its cause for the log.

use std::fmt;

use crate::queue::QueueError;
use crate::store::StoreError;
use crate::worker::WorkerError;

/// A dependency the gateway needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency {
    /// The database.
    Database,
    /// The queue (Redis).
    Queue,
    /// Twilio (for calls made within a request, such as the typing indicator).
    Twilio,
}

impl fmt::Display for Dependency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Database => "the database",
            Self::Queue => "the queue",
            Self::Twilio => "Twilio",
        })
    }
}

/// Everything a gateway operation can fail with.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A dependency cannot be reached right now; retrying later may succeed.
    #[error("{dependency} is unavailable")]
    Unavailable {
        /// Which one.
        dependency: Dependency,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Nothing matches.
    #[error("{0}")]
    NotFound(String),
    /// The request collides with something stored (a unique key).
    #[error("{what}")]
    Conflict {
        /// What collided.
        what: String,
        /// The store's error.
        #[source]
        source: StoreError,
    },
    /// The message is not in a status the operation applies to (e.g. a redrive of a message that
    /// is not dead-lettered).
    #[error("{0}")]
    WrongStatus(String),
    /// The request is valid but this message cannot be sent as asked (free-form content outside
    /// the contact's 24-hour window): `field` is the request field to change.
    #[error("{field}: {reason}")]
    Refused {
        /// The request field concerned.
        field: &'static str,
        /// Why, and what to do instead.
        reason: String,
    },
    /// A bug or an unexpected failure.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl From<StoreError> for GatewayError {
    fn from(e: StoreError) -> Self {
        if e.is_unavailable() {
            return Self::Unavailable { dependency: Dependency::Database, source: Box::new(e) };
        }
        match e {
            StoreError::Conflict { ref constraint, .. } => Self::Conflict { what: format!("already stored ({constraint})"), source: e },
            // Both refusals are about the recipient's number.
            StoreError::Refused(refusal) => Self::Refused { field: "to", reason: refusal.to_string() },
            other => Self::Internal(Box::new(other)),
        }
    }
}

impl From<QueueError> for GatewayError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::Store(store) => store.into(),
            QueueError::Redis(_) => Self::Unavailable { dependency: Dependency::Queue, source: Box::new(e) },
            QueueError::Corrupt(_) => Self::Internal(Box::new(e)),
        }
    }
}

impl From<WorkerError> for GatewayError {
    fn from(e: WorkerError) -> Self {
        match e {
            WorkerError::Store(store) => store.into(),
            WorkerError::Queue(queue) => queue.into(),
        }
    }
}
