//! Rate limits: per token subject on the API (with its own limit for `POST /send`, where each item
//! of a batch counts), and per client IP on the webhooks: sliding one-minute windows with an
//! optional bound per second, shared across instances through the
//! [`SharedState`](crate::shared::SharedState) (Redis in production). Answers carry `RateLimit-*`
//! headers; a refusal is a 429 problem with `Retry-After`.
//!
//! On the webhooks only requests *without a valid signature* are counted (see
//! [`webhook_refusal`]): Twilio's egress addresses are shared by all its customers, so counting
//! every request per IP would let anyone with a Twilio account get our genuine callbacks refused.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::paths;
use super::problem::ApiError;
use crate::shared::{BURST_WINDOW, RateDecision, RateLimit};
use crate::state::AppState;
use crate::telemetry::metrics;

fn per_minute(per_min: u32, burst: u32) -> RateLimit {
    RateLimit { per_period: per_min, period: Duration::from_secs(60), burst }
}

/// Which bucket a request counts against, and its limit.
fn bucket(state: &AppState, request: &mut Request) -> Option<(String, RateLimit)> {
    let path = request.uri().path();
    let limits = &state.rate_limits;
    if !path.starts_with("/api/") || paths::is_webhook(path) {
        return None;
    }
    let (endpoint, per_min) = if path == paths::SEND { ("send", limits.send_per_min) } else { ("api", limits.api_per_min) };
    // Verified subjects get their own bucket; anything else is counted against its IP, so bad
    // tokens cannot be used to exhaust someone else's quota or to guess tokens at full speed.
    let key = match bearer(request.headers()).and_then(|token| state.jwt.verify(token).ok()) {
        Some(claims) => {
            let key = format!("{endpoint}:sub:{}", claims.sub);
            // The handler's `Claims` extractor takes these instead of verifying the token again.
            request.extensions_mut().insert(claims);
            key
        }
        None => {
            let peer = request.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
            let ip = state.transport.client_ip(request.headers(), peer).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
            format!("{endpoint}:ip:{ip}")
        }
    };
    Some((key, per_minute(per_min, limits.burst)))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

pub(super) fn set_headers(headers: &mut HeaderMap, limit: &RateLimit, decision: &RateDecision) {
    let secs = |d: Duration| d.as_millis().div_ceil(1000).to_string();
    let pairs = [
        ("ratelimit-limit", limit.per_period.to_string()),
        ("ratelimit-remaining", decision.remaining.to_string()),
        ("ratelimit-reset", secs(decision.reset_after)),
        ("ratelimit-policy", policy(limit)),
    ];
    for (name, value) in pairs {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    if !decision.allowed
        && let Ok(value) = HeaderValue::from_str(&secs(decision.retry_after.max(Duration::from_secs(1))))
    {
        headers.insert("retry-after", value);
    }
}

/// The limit as the IETF draft's `RateLimit-Policy`: `1000;w=60`, with `, 20;w=1` for a burst bound.
fn policy(limit: &RateLimit) -> String {
    let minute = format!("{};w={}", limit.per_period, limit.period.as_secs());
    if limit.burst == 0 { minute } else { format!("{minute}, {};w={}", limit.burst, BURST_WINDOW.as_secs()) }
}

/// Counts a webhook request whose signature was refused against its client IP; `Some(429)` once
/// that IP has sent too many.
pub async fn webhook_refusal(state: &AppState, headers: &HeaderMap, peer: Option<SocketAddr>) -> Option<Response> {
    let limits = &state.rate_limits;
    let limit = per_minute(limits.webhook_per_min, limits.burst);
    let ip = state.transport.client_ip(headers, peer).map_or_else(|| "unknown".to_owned(), |ip| ip.to_string());
    let decision = state.shared.rate_limit(&format!("webhook:ip:{ip}"), limit, 1).await.ok()?;
    if decision.allowed {
        return None;
    }
    metrics::rate_limited("webhook");
    let retry = decision.retry_after.as_millis().div_ceil(1000).max(1);
    let mut response = ApiError::TooManyRequests(format!(
        "too many webhook requests without a valid signature from {ip} (limit {} per minute); retry in {retry} s",
        limit.per_period
    ))
    .into_response();
    set_headers(response.headers_mut(), &limit, &decision);
    Some(response)
}

/// Counts `count` messages of a batch against `subject`'s send limit (the bucket `POST /send`
/// counts against); `None` when the limiter is unavailable (failing open, as for one request).
pub(super) async fn take_sends(state: &AppState, subject: &str, count: u32) -> Option<(RateLimit, RateDecision)> {
    let limit = per_minute(state.rate_limits.send_per_min, state.rate_limits.burst);
    match state.shared.rate_limit(&format!("send:sub:{subject}"), limit, count).await {
        Ok(decision) => {
            if !decision.allowed {
                metrics::rate_limited("send");
            }
            Some((limit, decision))
        }
        Err(e) => {
            tracing::warn!(error = %e, "rate limiter unavailable; batch let through");
            None
        }
    }
}

/// Counts the request and refuses it with 429 when its bucket is empty.
pub async fn limit(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some((key, limit)) = bucket(&state, &mut request) else { return next.run(request).await };
    let decision = match state.shared.rate_limit(&key, limit, 1).await {
        Ok(decision) => decision,
        Err(e) => {
            // Failing open: an outage of the shared store must not take the API down with it.
            tracing::warn!(error = %e, "rate limiter unavailable; request let through");
            return next.run(request).await;
        }
    };
    if !decision.allowed {
        metrics::rate_limited(if key.starts_with("send:") { "send" } else { "api" });
        let retry = decision.retry_after.as_millis().div_ceil(1000).max(1);
        let mut response =
            ApiError::TooManyRequests(format!("rate limit of {} requests per minute exceeded; retry in {retry} s", limit.per_period))
                .into_response();
        set_headers(response.headers_mut(), &limit, &decision);
        return response;
    }
    let mut response = next.run(request).await;
    // A handler that counted against a tighter bucket of its own (a batch's sends) has said so.
    if !response.headers().contains_key("ratelimit-limit") {
        set_headers(response.headers_mut(), &limit, &decision);
    }
    response
}
