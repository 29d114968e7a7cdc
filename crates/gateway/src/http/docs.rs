//! `GET /docs`: the API reference, drawn in the browser by RapiDoc from `GET /openapi.json`.
//!
//! Everything the page needs comes from the gateway itself: the markup, the renderer
//! (`/docs/rapidoc-9.3.8.min.js`, RapiDoc 9.3.8, MIT, vendored under `crates/gateway/assets/`
//! with the command that fetched it) and the document. So the reference works offline and under
//! a Content-Security-Policy that names no other origin.
//!
//! The renderer is embedded gzip-compressed (218 KB instead of 863 KB) and sent as it is stored,
//! with `Content-Encoding: gzip`, to every client that accepts gzip (every browser does, and so
//! does a client that sends no `Accept-Encoding`); one that refuses it is answered 406. Its URL
//! carries its version, so it is cached as immutable; the page itself is revalidated on each load,
//! so an upgraded gateway names its new renderer at once.

use axum::Router;
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::paths;
use super::problem::ApiError;
use crate::state::AppState;

/// The policy sent with the page and the renderer: scripts, styles and requests (the document,
/// and "try it" calls to the API) from this origin only, no plugins, no framing, no form
/// submissions. RapiDoc sets `style` attributes, hence `'unsafe-inline'` for styles (not for
/// scripts: it needs no inline script and no `eval`).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

const PAGE: &str = include_str!("docs.html");

/// `rapidoc-min.js` of RapiDoc 9.3.8, `gzip -9 -n` (see `crates/gateway/assets/README.md`).
const RENDERER_GZIP: &[u8] = include_bytes!("../../assets/rapidoc-9.3.8.min.js.gz");

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::DOCS, get(page)).route(paths::DOCS_RENDERER, get(renderer))
}

/// The headers every answer here carries, with its content type and caching.
fn security_headers(content_type: &'static str, cache_control: &'static str) -> [(HeaderName, HeaderValue); 6] {
    [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY)),
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache_control)),
    ]
}

async fn page() -> impl IntoResponse {
    (security_headers("text/html; charset=utf-8", "no-cache"), PAGE)
}

async fn renderer(request: HeaderMap) -> Response {
    let vary = [(header::VARY, HeaderValue::from_static("accept-encoding"))];
    if !accepts_gzip(&request) {
        let refusal = ApiError::NotAcceptable(format!(
            "`{}` is only served gzip-compressed: send `Accept-Encoding: gzip` (or no `Accept-Encoding`)",
            paths::DOCS_RENDERER
        ));
        return (vary, refusal).into_response();
    }
    let encoding = [(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"))];
    (security_headers("text/javascript; charset=utf-8", "public, max-age=31536000, immutable"), encoding, vary, RENDERER_GZIP)
        .into_response()
}

/// Whether the request's `Accept-Encoding` allows gzip (RFC 9110, section 12.5.3): no such header
/// allows any coding; otherwise `gzip` (or `x-gzip`), or else `*`, must be listed with a nonzero
/// `q`. An unreadable `q` counts as 1.
fn accepts_gzip(request: &HeaderMap) -> bool {
    let mut listed = false;
    let (mut gzip, mut any) = (None, None);
    for value in request.get_all(header::ACCEPT_ENCODING) {
        listed = true;
        for item in value.to_str().unwrap_or_default().split(',') {
            let mut parameters = item.split(';');
            let coding = parameters.next().unwrap_or_default().trim();
            let allowed = parameters
                .filter_map(|p| p.trim().split_once('=').filter(|(name, _)| name.trim().eq_ignore_ascii_case("q")))
                .map(|(_, q)| q.trim().parse::<f32>().map_or(true, |q| q > 0.0))
                .next()
                .unwrap_or(true);
            if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(allowed);
            } else if coding == "*" {
                any = Some(allowed);
            }
        }
    }
    !listed || gzip.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(values: &[&str]) -> bool {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(header::ACCEPT_ENCODING, HeaderValue::from_str(value).unwrap());
        }
        accepts_gzip(&headers)
    }

    #[test]
    fn gzip_is_acceptable_unless_the_client_refuses_it() {
        assert!(with(&[]), "no Accept-Encoding: any coding");
        assert!(with(&["gzip, deflate, br, zstd"]), "a browser");
        assert!(with(&["br;q=1.0, GZip;q=0.5"]));
        assert!(with(&["x-gzip"]));
        assert!(with(&["*"]));
        assert!(with(&["br", "gzip"]), "over two header lines");
        assert!(with(&["gzip;q=abc"]), "an unreadable q counts as 1");
        assert!(!with(&[""]), "empty: identity only");
        assert!(!with(&["identity"]));
        assert!(!with(&["br, deflate"]));
        assert!(!with(&["gzip;q=0"]));
        assert!(!with(&["gzip; q=0.000, *"]), "gzip refused by name wins over *");
        assert!(!with(&["*;q=0"]));
    }
}
