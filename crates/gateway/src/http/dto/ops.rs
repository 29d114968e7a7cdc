//! What the operational endpoints answer.

use serde::{Deserialize, Serialize};

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"status": "ok"}))]
pub struct Liveness {
    /// Always `ok`.
    pub status: String,
}

/// One dependency's state: `ok`; `unreachable` (it cannot be reached, or has no connection free
/// in time); or `failing` (it answers with errors). The cause is in the log, not in the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DependencyState {
    /// It answers.
    Ok,
    /// It cannot be reached.
    Unreachable,
    /// It answers with errors.
    Failing,
}

/// `GET /readyz`: each dependency's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[schema(example = json!({"status": "ready", "database": "ok", "queue": "ok", "shared_state": "ok", "queue_depth": 0, "accepting": true}))]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// The database.
    pub database: DependencyState,
    /// The queue.
    pub queue: DependencyState,
    /// The shared state (idempotency records, rate limits, pacing).
    pub shared_state: DependencyState,
    /// Sendable messages waiting (`null` when the database cannot say).
    pub queue_depth: Option<i64>,
    /// `false` while the process is shutting down.
    pub accepting: bool,
}
