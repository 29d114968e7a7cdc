//! The API reference at `/docs`: the page and its renderer come from the gateway itself (nothing
//! from another origin, under a Content-Security-Policy that names none), the renderer is the
//! vendored file, sent gzip-compressed and cached as immutable. That it renders the document in a
//! real browser is `tests/python/test_dashboard_browser.py`'s part.

use crate::helpers::{TestApp, problem};

/// The renderer's path, as the page names it (path-relative, resolved against `/docs`).
const RENDERER: &str = "docs/rapidoc-9.3.8.min.js";

/// The vendored file the gateway embeds.
fn vendored() -> Vec<u8> {
    std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/rapidoc-9.3.8.min.js.gz")).unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers().get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap()
}

#[tokio::test]
async fn the_page_names_only_this_gateway_under_a_policy_of_self() {
    let app = TestApp::spawn().await;
    let response = app.http.get(app.url("/docs")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(header(&response, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&response, "x-content-type-options"), "nosniff");
    assert_eq!(header(&response, "x-frame-options"), "DENY");
    assert_eq!(header(&response, "cache-control"), "no-cache", "the page names the renderer's version: revalidate it");
    let csp = header(&response, "content-security-policy").to_owned();
    let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
    for wanted in ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "img-src 'self' data:", "frame-ancestors 'none'"] {
        assert!(directives.contains(&wanted), "{wanted} missing from {csp}");
    }
    assert!(!csp.contains("http") && !csp.contains('*') && !csp.contains("unsafe-eval"), "{csp}");
    let html = response.text().await.unwrap();

    // Every URL in the page is path-relative (or the empty data: icon); no inline script.
    assert!(!html.contains("://") && !html.contains("//"), "an absolute URL in the page");
    assert_eq!(html.matches("<script").count(), html.matches("<script type=\"module\" src=").count(), "inline script");
    for attribute in [" src=\"", " href=\"", " spec-url=\""] {
        for (at, _) in html.match_indices(attribute) {
            let value = &html[at + attribute.len()..];
            let value = &value[..value.find('"').unwrap()];
            assert!(value == "data:," || !(value.contains(':') || value.starts_with('/')), "{attribute}{value}\"");
        }
    }
    assert!(html.contains(&format!("src=\"{RENDERER}\"")), "the page loads the vendored renderer");
    assert!(html.contains("spec-url=\"openapi.json\""), "the page renders this gateway's document");
    assert!(html.contains("load-fonts=\"false\""), "RapiDoc would load its fonts from fonts.gstatic.com");

    // Resolved against the page, the names are the gateway's routes.
    let page = reqwest::Url::parse(&app.url("/docs")).unwrap();
    assert_eq!(page.join(RENDERER).unwrap().as_str(), app.url("/docs/rapidoc-9.3.8.min.js"));
    assert_eq!(page.join("openapi.json").unwrap().as_str(), app.url("/openapi.json"));
    app.finish().await;
}

#[tokio::test]
async fn the_renderer_is_the_vendored_file_gzipped_and_immutable() {
    let app = TestApp::spawn().await;
    let vendored = vendored();
    // gzip's trailer holds the uncompressed size: the whole of rapidoc-min.js.
    let size = u32::from_le_bytes(vendored[vendored.len() - 4..].try_into().unwrap());
    assert_eq!(size, 863_099, "RapiDoc 9.3.8's rapidoc-min.js (see assets/README.md)");

    // No Accept-Encoding (any coding is acceptable), and what browsers send.
    for accept in [None, Some("gzip, deflate, br, zstd")] {
        let mut request = app.http.get(app.url("/docs/rapidoc-9.3.8.min.js"));
        if let Some(accept) = accept {
            request = request.header("accept-encoding", accept);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200, "{accept:?}");
        assert_eq!(header(&response, "content-type"), "text/javascript; charset=utf-8");
        assert_eq!(header(&response, "content-encoding"), "gzip");
        assert_eq!(header(&response, "vary"), "accept-encoding");
        assert_eq!(header(&response, "cache-control"), "public, max-age=31536000, immutable");
        assert_eq!(header(&response, "x-content-type-options"), "nosniff");
        assert_eq!(header(&response, "content-length"), vendored.len().to_string());
        let body = response.bytes().await.unwrap();
        assert_eq!(&body[..3], [0x1f, 0x8b, 0x08], "a gzip stream (deflate)");
        assert!(body == vendored, "the embedded file, byte for byte");
    }

    // A client that refuses gzip is told so.
    for accept in ["identity", "", "gzip;q=0, br"] {
        let response = app.http.get(app.url("/docs/rapidoc-9.3.8.min.js")).header("accept-encoding", accept).send().await.unwrap();
        assert_eq!(header(&response, "vary"), "accept-encoding");
        let (status, body) = problem(response).await;
        assert_eq!(status, 406, "{accept:?}");
        assert_eq!(body.kind, "https://whatsapp-gateway.dev/problems/not-acceptable");
        assert!(body.detail.contains("gzip"), "{body:?}");
    }
    app.finish().await;
}
