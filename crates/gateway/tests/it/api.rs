//! The API's answers to bad input and bad credentials: precise problem details, nothing stored.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use whatsapp_gateway::domain::{Direction, MessageStatus};
use whatsapp_gateway::http::dto::MessageResource;
use whatsapp_gateway::http::dto::ops::{DependencyState, Readiness};
use whatsapp_gateway::telemetry::metrics::SERIES;

use crate::helpers::{JWT_SECRET, TestApp, field_errors, problem};

async fn message_count(app: &TestApp) -> usize {
    app.messages("?limit=500").await.messages.len()
}

#[tokio::test]
async fn invalid_phone_number_is_a_422_naming_the_field() {
    let app = TestApp::spawn().await;
    for bad in ["+1415555", "4155550100", "whatsapp:", "+999999999999999999999", "+1 (415) abc"] {
        let (status, body) = problem(app.send(json!({"to": bad, "body": "hi"})).await).await;
        assert_eq!(status, 422, "{bad}");
        let errors = field_errors(&body);
        assert_eq!(errors.len(), 1, "{body:?}");
        assert_eq!(errors[0].0, "to");
        assert!(body.detail.contains("`to`"), "{body:?}");
    }
    assert_eq!(message_count(&app).await, 0);
    app.finish().await;
}

#[tokio::test]
async fn missing_body_is_a_422_naming_body() {
    let app = TestApp::spawn().await;
    let (status, body) = problem(app.send(json!({"to": "+14155550100"})).await).await;
    assert_eq!(status, 422);
    assert_eq!(field_errors(&body), [("body".to_owned(), "is required unless `media_urls` or `content_sid` is given".to_owned())]);
    assert_eq!(body.title, "Invalid request");
    assert_eq!(body.kind, "https://whatsapp-gateway.dev/problems/validation");
    app.finish().await;
}

#[tokio::test]
async fn every_invalid_field_is_reported_at_once() {
    let app = TestApp::spawn().await;
    let request = json!({
        "to": "+14155550100", "body": "x".repeat(1601), "priority": 11, "send_at": "tomorrow",
        "metadata": [1], "mode": "later", "media_urls": ["ftp://x"]
    });
    let (status, body) = problem(app.send(request).await).await;
    assert_eq!(status, 422);
    let fields: Vec<String> = field_errors(&body).into_iter().map(|e| e.0).collect();
    assert_eq!(fields, ["body", "media_urls[0]", "priority", "send_at", "metadata", "mode"]);
    assert_eq!(message_count(&app).await, 0);
    app.finish().await;
}

#[tokio::test]
async fn wrong_types_and_unknown_fields_name_the_field() {
    let app = TestApp::spawn().await;
    let (status, body) = problem(app.send(json!({"to": "+14155550100", "body": "hi", "priority": "high"})).await).await;
    assert_eq!((status, field_errors(&body)[0].0.as_str()), (422, "priority"));
    let (status, body) = problem(app.send(json!({"to": "+14155550100", "body": "hi", "colour": "red"})).await).await;
    assert_eq!(status, 422);
    assert!(field_errors(&body)[0].1.contains("unknown field `colour`"), "{body:?}");
    let (status, body) = problem(app.send(json!({"body": "hi"})).await).await;
    assert_eq!((status, field_errors(&body)[0].0.as_str()), (422, "to"));
    app.finish().await;
}

#[tokio::test]
async fn malformed_json_is_400_and_wrong_content_type_is_415() {
    let app = TestApp::spawn().await;
    let url = app.url("/api/v1/whatsapp/send");
    let response =
        app.http.post(&url).bearer_auth(&app.token).header("content-type", "application/json").body("{\"to\": ").send().await.unwrap();
    let (status, body) = problem(response).await;
    assert_eq!(status, 400);
    assert!(body.detail.contains("not valid JSON"), "{body:?}");
    let response = app.http.post(&url).bearer_auth(&app.token).header("content-type", "text/plain").body("hi").send().await.unwrap();
    assert_eq!(problem(response).await.0, 415);
    assert_eq!(message_count(&app).await, 0);
    app.finish().await;
}

#[tokio::test]
async fn control_characters_and_template_mixups_are_refused() {
    let app = TestApp::spawn().await;
    let (status, body) = problem(app.send(json!({"to": "+14155550100", "body": "bell\u{7}"})).await).await;
    assert_eq!((status, field_errors(&body)[0].0.as_str()), (422, "body"));
    let (status, body) =
        problem(app.send(json!({"to": "+14155550100", "body": "hi", "content_sid": format!("HX{}", "a".repeat(32))})).await).await;
    assert_eq!((status, field_errors(&body)[0].0.as_str()), (422, "content_sid"));
    let (status, body) = problem(app.send(json!({"to": "+14155550100", "content_sid": "HX1", "content_variables": "nope"})).await).await;
    assert_eq!(status, 422);
    let fields: Vec<String> = field_errors(&body).into_iter().map(|e| e.0).collect();
    assert_eq!(fields, ["content_sid", "content_variables"]);
    assert_eq!(message_count(&app).await, 0);
    let ok = app.send_ok(json!({"to": "+14155550100", "body": "emoji 👍 and ünïcødé\nnew line"})).await;
    assert_eq!(ok.body.as_deref(), Some("emoji 👍 and ünïcødé\nnew line"));
    app.finish().await;
}

fn token_with(claims: Value, key: &[u8]) -> String {
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(key)).unwrap()
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[tokio::test]
async fn bad_bearer_tokens_are_401_with_www_authenticate() {
    let app = TestApp::spawn().await;
    let url = app.url("/api/v1/whatsapp/messages");
    let unsigned = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.", b64.encode(r#"{"alg":"none","typ":"JWT"}"#), b64.encode(format!(r#"{{"sub":"x","exp":{}}}"#, now() + 600)))
    };
    let cases = [
        (None, "an `Authorization: Bearer <token>` header is required"),
        (Some("Basic abc".to_owned()), "must be `Bearer <token>`"),
        (Some("Bearer not-a-jwt".to_owned()), "malformed"),
        (
            Some(format!("Bearer {}", token_with(json!({"sub": "x", "exp": now() + 600}), b"another-secret-0123456789"))),
            "signature is invalid",
        ),
        (Some(format!("Bearer {}", token_with(json!({"sub": "x", "exp": now() - 120}), JWT_SECRET.as_bytes()))), "expired"),
        (
            Some(format!("Bearer {}", token_with(json!({"sub": "x", "exp": now() + 600, "nbf": now() + 300}), JWT_SECRET.as_bytes()))),
            "not valid yet",
        ),
        (Some(format!("Bearer {}", token_with(json!({"exp": now() + 600}), JWT_SECRET.as_bytes()))), "`sub`"),
        (Some(format!("Bearer {}", token_with(json!({"sub": "x"}), JWT_SECRET.as_bytes()))), "`exp`"),
        (Some(format!("Bearer {unsigned}")), "algorithm"),
    ];
    for (header, expected) in cases {
        let mut request = app.http.get(&url);
        if let Some(h) = &header {
            request = request.header("authorization", h);
        }
        let response = request.send().await.unwrap();
        let www = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = problem(response).await;
        assert_eq!(status, 401, "{header:?}");
        assert!(www.unwrap().starts_with("Bearer realm=\"whatsapp-gateway\""));
        assert!(body.detail.contains(expected), "{header:?}: {body:?}");
    }
    // 20 s past expiry is still inside the 30 s leeway.
    let lenient = token_with(json!({"sub": "x", "exp": now() - 20}), JWT_SECRET.as_bytes());
    assert_eq!(app.http.get(&url).bearer_auth(lenient).send().await.unwrap().status(), 200);
    app.finish().await;
}

#[tokio::test]
async fn listing_filters_and_paginates_with_a_cursor() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let reference = if i % 2 == 0 { "even" } else { "odd" };
        ids.push(app.send_ok(json!({"to": "+14155550120", "body": format!("m{i}"), "reference": reference})).await.id);
    }
    app.send_ok(json!({"to": "+14155550121", "body": "other"})).await;
    let page1 = app.messages("?phone=%2B14155550120&limit=3").await;
    let first: Vec<_> = page1.messages.iter().map(|m| m.id).collect();
    assert_eq!(first, [ids[4], ids[3], ids[2]], "newest first");
    let cursor = page1.next_cursor.expect("a next page");
    let page2 = app.messages(&format!("?phone=%2B14155550120&limit=3&cursor={cursor}")).await;
    let second: Vec<_> = page2.messages.iter().map(|m| m.id).collect();
    assert_eq!(second, [ids[1], ids[0]]);
    assert_eq!(page2.next_cursor, None);
    let even = app.messages("?reference=even&direction=outbound").await;
    assert_eq!(even.messages.len(), 3);
    assert!(even.messages.iter().all(|m| m.direction == Direction::Outbound && m.reference.as_deref() == Some("even")));
    let (status, bad) = problem(app.get("/api/v1/whatsapp/messages?status=lost&limit=0").await).await;
    assert_eq!(status, 422);
    let fields: Vec<String> = field_errors(&bad).into_iter().map(|e| e.0).collect();
    assert_eq!(fields, ["status", "limit"]);
    let one: MessageResource = app.get_ok(&format!("/api/v1/whatsapp/messages/{}", ids[0])).await;
    assert_eq!((one.id, one.body.as_deref()), (ids[0], Some("m0")));
    let (status, _) = problem(app.get("/api/v1/whatsapp/messages/01a20000-0000-7000-8000-000000000000").await).await;
    assert_eq!(status, 404);
    let (status, _) = problem(app.get("/api/v1/whatsapp/delivery-status").await).await;
    assert_eq!(status, 422);
    let (status, _) = problem(app.get("/api/v1/whatsapp/phones/+14155559999/performance").await).await;
    assert_eq!(status, 404);
    app.finish().await;
}

#[tokio::test]
async fn health_readiness_and_prometheus_answer() {
    let app = TestApp::spawn().await;
    let health = app.http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready: Readiness = app.http.get(app.url("/readyz")).send().await.unwrap().json().await.unwrap();
    assert_eq!(ready.status, "ready");
    assert_eq!((ready.database, ready.queue, ready.shared_state), (DependencyState::Ok, DependencyState::Ok, DependencyState::Ok));
    assert_eq!(ready.queue_depth, Some(0));
    app.open_window("+14155550130");
    let id = app.send_ok(json!({"to": "+14155550130", "body": "x"})).await.id;
    app.wait_for_status(id, MessageStatus::Read).await;
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    for series in ["gateway_sends_total", "gateway_callbacks_total", "gateway_writer_batch_size", "gateway_messages_created_total"] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    // Answers by route template and status class; the process-wide recorder is shared by the
    // tests running at the same time, so only the presence of the series is checked.
    for series in [
        r#"gateway_http_requests_total{route="/api/v1/whatsapp/send",status="2xx"}"#,
        r#"gateway_http_requests_total{route="/api/v1/whatsapp/delivery-status",status="2xx"}"#,
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
    // Every series the gateway exports is declared in one place.
    for line in text.lines().filter(|l| l.starts_with("gateway_")) {
        let name = line.split(['{', ' ']).next().unwrap();
        let base = name.trim_end_matches("_count").trim_end_matches("_sum");
        assert!(SERIES.iter().any(|s| s.name == name || s.name == base), "{name} is not declared in telemetry::metrics");
    }
    app.finish().await;
}
