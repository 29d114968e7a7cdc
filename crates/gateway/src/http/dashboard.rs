//! `GET /dashboard`: a self-contained page that shows delivery metrics, recent messages and
//! per-phone health by calling the JSON API from the browser.
//!
//! The page holds no data, so it is served without auth; it asks for an API bearer token (printed
//! by `whatsapp-gateway token`), keeps it in the tab's `sessionStorage` and sends it only in the
//! `Authorization` header of same-origin API calls. The markup, the script (`/dashboard.js`) and the
//! style sheet (`/dashboard.css`) are embedded in the binary: nothing is loaded from another origin,
//! so the page works offline, and the Content-Security-Policy allows `'self'` only (no inline script
//! or style at all).
//!
//! For automation (a headless browser that cannot type), the token may also be given in the URL
//! fragment, `/dashboard#token=…`: the script copies it into `sessionStorage` once and removes the
//! fragment from the address bar. A fragment never reaches the server, but it may stay in the
//! shell history or the process list of whatever opened the URL; people should paste the token
//! into the form instead.

use axum::Router;
use axum::http::HeaderValue;
use axum::http::header::{self, HeaderName};
use axum::response::IntoResponse;
use axum::routing::get;

use super::paths;
use crate::state::AppState;

/// The policy sent with the page and its assets: scripts, styles and API calls from this origin
/// only, nothing inline, no plugins, no framing, no form submissions.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
     img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const PAGE: &str = include_str!("dashboard.html");
const SCRIPT: &str = include_str!("dashboard.js");
const STYLE: &str = include_str!("dashboard.css");

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::DASHBOARD, get(page)).route(paths::DASHBOARD_SCRIPT, get(script)).route(paths::DASHBOARD_STYLE, get(style))
}

/// An embedded file with its content type and the security headers.
fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    let headers: [(HeaderName, HeaderValue); 6] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        // Revalidate on each load, so an upgraded gateway never runs with a stale script.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body)
}

async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", PAGE)
}

async fn script() -> impl IntoResponse {
    asset("application/javascript; charset=utf-8", SCRIPT)
}

async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}
