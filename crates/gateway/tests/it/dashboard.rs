//! The dashboard page: served without auth with its script and style sheet, under a strict
//! Content-Security-Policy, loading nothing from another origin, and calling only the JSON API
//! paths it is meant to (which answer with the bearer token the page sends).

use std::collections::BTreeSet;

use serde_json::Value;
use whatsapp_gateway::domain::MessageStatus;

use crate::helpers::{TestApp, problem, text_message};

/// The only absolute URL the page may contain: the SVG namespace, an identifier that is never fetched.
const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

/// The API paths the script calls (as written in it: path-relative, resolved against `/dashboard`).
const API_PATHS: [&str; 4] =
    ["api/v1/whatsapp/delivery-metrics", "api/v1/whatsapp/messages", "api/v1/whatsapp/delivery-status", "api/v1/whatsapp/phones/"];

struct Asset {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: String,
}

async fn fetch(app: &TestApp, path: &str) -> Asset {
    let response = app.http.get(app.url(path)).send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    Asset { status, headers, body: response.text().await.unwrap() }
}

fn header<'a>(asset: &'a Asset, name: &str) -> &'a str {
    asset.headers.get(name).unwrap_or_else(|| panic!("no {name} header")).to_str().unwrap()
}

/// JavaScript split into code and string literals, comments dropped. Enough for this script: it
/// has no template literals, and its regular expressions hold no quotes or `//`.
fn lex_js(source: &str) -> (String, Vec<String>) {
    let (mut code, mut literals) = (String::new(), Vec::new());
    let chars: Vec<char> = source.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match (chars[i], chars.get(i + 1)) {
            ('/', Some('*')) => {
                i += 2;
                while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                    i += 1;
                }
                i += 2;
            }
            ('/', Some('/')) => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            (quote @ ('\'' | '"' | '`'), _) => {
                assert_ne!(quote, '`', "template literal at char {i}: extend lex_js");
                let mut literal = String::new();
                i += 1;
                while i < chars.len() && chars[i] != quote {
                    if chars[i] == '\\' {
                        i += 1;
                    }
                    literal.push(chars[i]);
                    i += 1;
                }
                i += 1;
                code.push_str("\"\"");
                literals.push(literal);
            }
            (c, _) => {
                code.push(c);
                i += 1;
            }
        }
    }
    (code, literals)
}

/// Text with the comments between `open` and `close` removed.
fn strip_comments(source: &str, open: &str, close: &str) -> String {
    let mut out = String::new();
    let mut rest = source;
    while let Some(start) = rest.find(open) {
        out.push_str(&rest[..start]);
        rest = rest[start + open.len()..].find(close).map_or("", |end| &rest[start + open.len() + end + close.len()..]);
    }
    out.push_str(rest);
    out
}

/// Every start tag of the markup: its name and its attributes' names.
fn tags(html: &str) -> Vec<(String, Vec<String>)> {
    html.split('<')
        .skip(1)
        .filter(|piece| piece.starts_with(|c: char| c.is_ascii_alphabetic()))
        .map(|piece| {
            let tag = &piece[..piece.find('>').unwrap_or(piece.len())];
            let mut words = tag.split_whitespace();
            let name = words.next().unwrap_or_default().to_ascii_lowercase();
            let attributes = words.filter_map(|w| w.split_once('=').map(|(n, _)| n.to_ascii_lowercase())).collect();
            (name, attributes)
        })
        .collect()
}

/// The values of every `name="…"` attribute in the markup.
fn attribute_values<'a>(html: &'a str, name: &str) -> Vec<&'a str> {
    let needle = format!(" {name}=\"");
    html.match_indices(&needle)
        .map(|(at, _)| {
            let value = &html[at + needle.len()..];
            &value[..value.find('"').unwrap()]
        })
        .collect()
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_without_auth_under_a_strict_policy() {
    let app = TestApp::spawn().await;
    for (path, content_type) in
        [("/dashboard", "text/html; charset=utf-8"), ("/dashboard.js", "application/javascript"), ("/dashboard.css", "text/css")]
    {
        let asset = fetch(&app, path).await;
        assert_eq!(asset.status, 200, "{path}");
        assert!(header(&asset, "content-type").starts_with(content_type), "{path}: {}", header(&asset, "content-type"));
        assert_eq!(header(&asset, "x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header(&asset, "referrer-policy"), "no-referrer", "{path}");
        assert_eq!(header(&asset, "x-frame-options"), "DENY", "{path}");
        let csp = header(&asset, "content-security-policy");
        let directives: Vec<&str> = csp.split(';').map(str::trim).collect();
        for wanted in ["default-src 'none'", "script-src 'self'", "style-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"] {
            assert!(directives.contains(&wanted), "{path}: {wanted} missing from {csp}");
        }
        assert!(!csp.contains("unsafe-") && !csp.contains("http") && !csp.contains('*'), "{path}: {csp}");
    }

    let html = fetch(&app, "/dashboard").await.body;
    assert!(html.contains("<script src=\"dashboard.js\" defer></script>"), "the page loads its script");
    assert!(html.contains("<link rel=\"stylesheet\" href=\"dashboard.css\">"), "the page loads its style sheet");
    // The policy forbids inline code: every script is external and empty, nothing is styled inline.
    assert_eq!(html.matches("<script").count(), html.matches("<script src=").count(), "inline script");
    let tags = tags(&html);
    for (tag, attributes) in &tags {
        assert!(tag != "style" && !attributes.iter().any(|a| a == "style"), "inline style in <{tag}>");
        assert!(!attributes.iter().any(|a| a.starts_with("on")), "inline event handler in <{tag}>: {attributes:?}");
        // Form fields have no name: even with the script off, a submitted form carries no token.
        assert!(!["input", "select", "textarea"].contains(&tag.as_str()) || !attributes.iter().any(|a| a == "name"), "named <{tag}>");
    }
    assert!(html.contains("type=\"password\""), "the token is typed into a password field");
    assert!(html.contains("whatsapp-gateway token"), "the sign-in form says how to get a token");
    app.finish().await;
}

#[tokio::test]
async fn the_page_loads_nothing_from_another_origin() {
    let app = TestApp::spawn().await;
    let html = strip_comments(&fetch(&app, "/dashboard").await.body, "<!--", "-->");
    let script = fetch(&app, "/dashboard.js").await.body;
    let css = strip_comments(&fetch(&app, "/dashboard.css").await.body, "/*", "*/");

    assert!(!html.contains("://"), "an absolute URL in the page");
    for value in attribute_values(&html, "src").into_iter().chain(attribute_values(&html, "href")) {
        assert!(value == "data:," || (!value.contains(':') && !value.starts_with("//") && !value.starts_with('/')), "{value:?}");
    }
    assert!(!css.contains("://") && !css.contains("url(") && !css.contains("@import"), "the style sheet loads something");

    let (code, literals) = lex_js(&script);
    assert!(!code.contains("://"), "an absolute URL in the script's code");
    let urls: Vec<&String> = literals.iter().filter(|l| l.contains("://") || l.starts_with("//")).collect();
    assert_eq!(urls, [SVG_NAMESPACE], "the script's only absolute URL is the SVG namespace");
    for forbidden in ["innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "Function(", "localStorage", "import("] {
        assert!(!code.contains(forbidden), "the script uses {forbidden}");
    }
    app.finish().await;
}

#[tokio::test]
async fn the_script_calls_exactly_the_api_paths_and_they_answer() {
    let app = TestApp::spawn().await;
    let (code, literals) = lex_js(&fetch(&app, "/dashboard.js").await.body);

    // Every request goes through one `fetch`, to one of the four API paths.
    assert_eq!(code.matches("fetch(").count(), 1, "one fetch call");
    for other in ["XMLHttpRequest", "WebSocket", "EventSource", "sendBeacon"] {
        assert!(!code.contains(other), "the script uses {other}");
    }
    let named: BTreeSet<&str> = literals.iter().filter(|l| l.contains("api/") || l.contains("/v1/")).map(String::as_str).collect();
    assert_eq!(named, API_PATHS.into_iter().collect(), "the API paths named in the script");
    assert!(literals.iter().any(|l| l == "/performance"), "the phone path ends in /performance");
    assert!(code.contains("MESSAGE_LIMIT = 25"), "25 recent messages");
    for parameter in ["granularity", "to_phone", "limit", "status", "id"] {
        assert!(
            code.contains(&format!("{{ {parameter}: ")) || code.contains(&format!(", {parameter}: ")),
            "the script sends `{parameter}`"
        );
    }

    // Resolved against the page, the paths are the API's, and they answer the page's requests.
    let page = reqwest::Url::parse(&app.url("/dashboard")).unwrap();
    let resolve = |relative: &str| page.join(relative).unwrap().to_string();
    assert_eq!(resolve(API_PATHS[0]), app.url("/api/v1/whatsapp/delivery-metrics"));

    let phone = "+14155550123";
    app.open_window(phone);
    let id = app.send_ok(text_message(phone)).await.id;
    app.wait_for_status(id, MessageStatus::Read).await;
    let requests = [
        format!("{}?granularity=hour", API_PATHS[0]),
        format!("{}?granularity=day&to_phone=%2B14155550123", API_PATHS[0]),
        format!("{}?limit=25", API_PATHS[1]),
        format!("{}?limit=25&status=read", API_PATHS[1]),
        format!("{}?id={id}", API_PATHS[2]),
        format!("{}%2B14155550123/performance", API_PATHS[3]),
    ];
    for request in &requests {
        let response = app.http.get(resolve(request)).bearer_auth(&app.token).send().await.unwrap();
        assert_eq!(response.status(), 200, "{request}");
        let body: Value = response.json().await.unwrap();
        assert!(body.is_object(), "{request}: {body}");
    }
    let listed = app.messages("?limit=25&status=read").await;
    assert_eq!(listed.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [id]);

    // Without the token the page gets a problem detail whose `detail` it shows, then asks for a token.
    let (status, body) = problem(app.http.get(resolve(&requests[0])).send().await.unwrap()).await;
    assert_eq!(status, 401);
    assert!(!body.detail.is_empty(), "{body:?}");
    app.finish().await;
}
