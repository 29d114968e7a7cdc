//! Operational endpoints: liveness, readiness, Prometheus metrics.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};

use super::dto::ops::{DependencyState, Liveness, Readiness};
use super::paths;
use crate::service::{GatewayError, PROBE_TIMEOUT};
use crate::state::AppState;
use crate::telemetry::metrics::prometheus_handle;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::HEALTHZ, get(healthz)).route(paths::READYZ, get(readyz)).route(paths::METRICS, get(prometheus))
}

fn state_of(result: Result<(), GatewayError>, what: &str) -> DependencyState {
    match result {
        Ok(()) => DependencyState::Ok,
        Err(e) => {
            tracing::warn!(error = %crate::telemetry::chain(&e), "readiness: {what} is not answering");
            if matches!(e, GatewayError::Unavailable { .. }) { DependencyState::Unreachable } else { DependencyState::Failing }
        }
    }
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    responses((status = 200, description = "The process is alive.", body = Liveness)),
)]
async fn healthz() -> Json<Liveness> {
    Json(Liveness { status: "ok".into() })
}

/// Readiness: the database, the queue and the shared state.
///
/// Ready when the database, the queue and the shared state answer and the process is not
/// shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready to serve.", body = Readiness),
        (status = 503, description = "Not ready; the body says which dependency is not answering.", body = Readiness),
    ),
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let (health, shared) = tokio::join!(state.gateway.health(), tokio::time::timeout(PROBE_TIMEOUT, state.shared.ping()));
    let database = state_of(health.database, "the database");
    let queue = state_of(health.queue, "the queue");
    let shared_state = match shared {
        Ok(Ok(())) => DependencyState::Ok,
        Ok(Err(e)) => {
            tracing::warn!(error = %crate::telemetry::chain(&e), "readiness: the shared state is not answering");
            DependencyState::Unreachable
        }
        Err(_) => {
            tracing::warn!(timeout = ?PROBE_TIMEOUT, "readiness: the shared state did not answer in time");
            DependencyState::Unreachable
        }
    };
    let queue_depth = if database == DependencyState::Ok {
        tokio::time::timeout(PROBE_TIMEOUT, state.gateway.backlog()).await.ok().and_then(Result::ok).map(|b| b.sendable)
    } else {
        None
    };
    let accepting = state.ready.load(Ordering::Relaxed);
    let ok = [database, queue, shared_state].iter().all(|s| *s == DependencyState::Ok) && accepting;
    let body = Readiness { status: if ok { "ready" } else { "not_ready" }.into(), database, queue, shared_state, queue_depth, accepting };
    (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "prometheus_metrics",
    responses((status = 200, description = "Every `gateway_*` series (listed in the architecture document).", body = String, content_type = "text/plain")),
)]
async fn prometheus() -> String {
    prometheus_handle().render()
}
