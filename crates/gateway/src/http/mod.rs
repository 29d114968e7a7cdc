//! The HTTP API: one router per resource, merged here with the webhooks and the operational
//! endpoints, behind tracing, request ids, a timeout and a body limit.

mod auth;
mod dashboard;
pub mod dto;
mod extract;
mod health;
mod idempotency;
mod messages;
mod metrics;
mod openapi;
pub(crate) mod rate_limit;
mod send;
pub mod transport;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, StatusCode};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

pub use auth::{Claims, JwtKeys, mint_token};
pub use health::prometheus_handle;
pub use idempotency::scoped as idempotency_scope;

use crate::service::Gateway;
use crate::webhooks::{self, SignatureConfig};

/// Everything a handler can reach.
#[derive(Clone)]
pub struct AppState {
    /// The gateway's operations.
    pub gateway: Gateway,
    /// Bearer-token verification.
    pub jwt: Arc<JwtKeys>,
    /// Webhook signature checking.
    pub signatures: Arc<SignatureConfig>,
    /// Readiness checks also look at this flag (false while shutting down).
    pub ready: Arc<std::sync::atomic::AtomicBool>,
    /// TLS, HTTPS enforcement and proxy trust.
    pub transport: transport::TransportPolicy,
    /// Replay windows, idempotency records and rate-limit counters (in process or in Redis).
    pub shared: Arc<dyn crate::shared::SharedState>,
    /// Rate limits.
    pub rate_limits: crate::config::RateLimits,
}

/// Largest request body accepted anywhere (webhooks and API).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(send::router())
        .merge(messages::router())
        .merge(metrics::router())
        .merge(webhooks::router())
        .merge(health::router())
        .merge(openapi::router())
        .merge(dashboard::router());
    with_layers(routes, state)
}

/// Only the operational endpoints, for a worker-only process.
pub fn ops_router(state: AppState) -> Router {
    with_layers(health::router(), state)
}

fn with_layers(router: Router<AppState>, state: AppState) -> Router {
    let request_id = HeaderName::from_static("x-request-id");
    router
        .layer(axum::middleware::from_fn_with_state(state.clone(), rate_limit::limit))
        .layer(axum::middleware::from_fn_with_state(state.clone(), transport::enforce))
        .with_state(state)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, Duration::from_secs(30)))
        .layer(CatchPanicLayer::new())
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([axum::http::header::AUTHORIZATION, HeaderName::from_static("x-twilio-signature")]))
}
