//! The HTTP API: one router per resource (and the webhooks), merged here, behind tracing,
//! request ids, a timeout and a body limit. Handlers reach the store and the queue only through
//! the gateway service in [`AppState`](crate::state::AppState).

mod auth;
mod batch;
mod contract;
mod dashboard;
mod docs;
pub mod dto;
pub mod events;
pub mod extract;
mod health;
mod idempotency;
mod messages;
mod metrics;
pub mod openapi;
pub mod paths;
pub mod problem;
pub(crate) mod rate_limit;
mod send;
pub mod senders;
mod transport;
pub mod webhooks;

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::extract::Request;
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::sensitive_headers::SetSensitiveRequestHeadersLayer;
use tower_http::trace::TraceLayer;

pub use idempotency::scoped as idempotency_scope;

use crate::state::AppState;
use extract::MAX_BODY_BYTES;
use problem::ApiError;

/// How long a request may take before it is answered 503 (what it had handed to the store stays
/// handed over: a retry with the same `Idempotency-Key` finds it).
const REQUEST_DEADLINE: Duration = Duration::from_secs(30);

/// The whole application router.
pub fn router(state: AppState) -> Router {
    let routes = Router::new()
        .merge(send::router())
        .merge(batch::router())
        .merge(messages::router())
        .merge(metrics::router())
        .merge(senders::router())
        .merge(events::router())
        .merge(webhooks::router())
        .merge(health::router())
        .merge(openapi::router())
        .merge(docs::router())
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
        .layer(axum::middleware::from_fn(problem::framework_errors_as_problems))
        .layer(axum::middleware::from_fn(deadline))
        .layer(CatchPanicLayer::custom(panicked))
        // Outside the deadline and the panic catcher, so their 503s and 500s count too.
        .layer(axum::middleware::from_fn(count_request))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(TraceLayer::new_for_http())
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .layer(SetSensitiveRequestHeadersLayer::new([axum::http::header::AUTHORIZATION, HeaderName::from_static("x-twilio-signature")]))
}

/// Counts every answer by route template and status class (for the 5xx-rate alert).
async fn count_request(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<axum::extract::MatchedPath>().cloned();
    let response = next.run(request).await;
    crate::telemetry::metrics::http_request(route.as_ref().map(axum::extract::MatchedPath::as_str), response.status().as_u16());
    response
}

async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_DEADLINE, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!("a request ran past its deadline");
            ApiError::Unavailable(
                format!("the request took longer than {} s; retry shortly", REQUEST_DEADLINE.as_secs()),
                problem::UNAVAILABLE_RETRY_AFTER,
            )
            .into_response()
        }
    }
}

fn panicked(_: Box<dyn std::any::Any + Send + 'static>) -> Response {
    ApiError::Internal("a request handler panicked".into()).into_response()
}
