//! Operational endpoints: liveness, readiness, Prometheus metrics.

use std::sync::OnceLock;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use super::AppState;
use super::openapi::{Liveness, Readiness};

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz)).route("/readyz", get(readyz)).route("/metrics", get(prometheus))
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn prometheus_handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new().build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (e.g. by an embedding application).
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    operation_id = "healthz",
    responses((status = 200, description = "The process is alive.", body = Liveness)),
)]
async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Readiness: the database, the queue and the shared state.
///
/// Ready when the database, the queue and the shared state are reachable and the process is not
/// shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ready to serve.", body = Readiness),
        (status = 503, description = "Not ready; the body says which dependency failed.", body = Readiness),
    ),
)]
async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<serde_json::Value>) {
    // Causes go to the log; the unauthenticated answer only says what is down.
    let database = state.gateway.store().ping().await.map_err(|e| unavailable("database", &e));
    let queue = state.gateway.queue().depth().await.map_err(|e| unavailable("queue", &e));
    let shared = state.shared.ping().await.map_err(|e| unavailable("shared state", &e));
    let accepting = state.ready.load(Ordering::Relaxed);
    let ok = database.is_ok() && queue.is_ok() && shared.is_ok() && accepting;
    let body = json!({
        "status": if ok { "ready" } else { "not_ready" },
        "database": database.err().unwrap_or_else(|| "ok".into()),
        "queue": queue.as_ref().map(|_| "ok".to_owned()).unwrap_or_else(|e| e.clone()),
        "queue_depth": queue.ok(),
        "shared_state": shared.err().unwrap_or_else(|| "ok".into()),
        "accepting": accepting,
    });
    (if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE }, Json(body))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    operation_id = "prometheus_metrics",
    responses((status = 200, description = "Every `gateway_*` metric.", body = String, content_type = "text/plain")),
)]
async fn prometheus() -> String {
    prometheus_handle().render()
}

fn unavailable(what: &str, error: &dyn std::fmt::Display) -> String {
    tracing::warn!(error = %error, "readiness: {what} unavailable");
    "unavailable".to_owned()
}
