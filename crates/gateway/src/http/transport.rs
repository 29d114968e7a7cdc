//! Transport middleware: refuses plain HTTP when `REQUIRE_HTTPS` is on, and adds HSTS to secure
//! responses (the policy itself is [`crate::security::TransportPolicy`]).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::paths;
use super::problem::ApiError;
use crate::state::AppState;

/// Paths served over plain HTTP even when HTTPS is required: the probes and the scrape, which
/// the orchestrator's kubelet and Prometheus make to the pod's own address, carry no secret and
/// change nothing.
const PLAIN_HTTP_PATHS: [&str; 3] = [paths::HEALTHZ, paths::READYZ, paths::METRICS];

/// Refuses plain HTTP when HTTPS is required (but for the probes and the scrape), and adds HSTS
/// to secure responses.
pub async fn enforce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let policy = state.transport;
    let secure = policy.is_secure(request.headers());
    if policy.require_https && !secure && !PLAIN_HTTP_PATHS.contains(&request.uri().path()) {
        let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
        tracing::warn!(peer = ?peer, path = %request.uri().path(), "refused a plain-HTTP request (REQUIRE_HTTPS)");
        return ApiError::Forbidden("plain HTTP is refused: use https:// (REQUIRE_HTTPS is on)".into()).into_response();
    }
    let mut response = next.run(request).await;
    if secure || policy.require_https {
        response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    response
}
