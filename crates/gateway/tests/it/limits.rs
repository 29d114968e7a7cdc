//! Idempotency keys and rate limits, against the running application.

use serde_json::{Value, json};
use twilio_emulator::Behaviour;
use whatsapp_gateway::domain::{MessageStatus, NewOutboundMessage, now_ms};
use whatsapp_gateway::http::dto::MessageResource;
use whatsapp_gateway::security::mint_token;
use whatsapp_gateway::service::SendMode;

use crate::helpers::{JWT_SECRET, TestApp, TestOptions, field_errors, problem};
use crate::support::{outbound, sender};

async fn send_with_key(app: &TestApp, token: &str, header: &str, key: &str, body: &Value) -> reqwest::Response {
    app.http.post(app.url("/api/v1/whatsapp/send")).bearer_auth(token).header(header, key).json(body).send().await.unwrap()
}

#[tokio::test]
async fn same_key_and_body_returns_the_stored_answer_and_sends_once() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550160");
    let body = json!({"to": "+14155550160", "body": "once"});
    let first = send_with_key(&app, &app.token, "Idempotency-Key", "order-1", &body).await;
    assert_eq!(first.status(), 202);
    let first: MessageResource = first.json().await.unwrap();
    let again = send_with_key(&app, &app.token, "X-Idempotency-Key", "order-1", &body).await;
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: MessageResource = again.json().await.unwrap();
    assert_eq!(again.id, first.id);
    app.wait_for_status(first.id, MessageStatus::Read).await;
    assert_eq!(app.messages("?phone=%2B14155550160").await.messages.len(), 1);
    assert_eq!(app.emulator.counters().created_to("+14155550160"), 1);

    let different = send_with_key(&app, &app.token, "Idempotency-Key", "order-1", &json!({"to": "+14155550160", "body": "twice?"})).await;
    let (status, body_problem) = problem(different).await;
    assert_eq!(status, 422);
    assert_eq!(field_errors(&body_problem)[0].0, "Idempotency-Key");

    // Keys belong to a token subject: another caller may use the same key.
    let other = mint_token(&JWT_SECRET.to_owned().into(), "another-app", 600).unwrap();
    let theirs = send_with_key(&app, &other, "Idempotency-Key", "order-1", &body).await;
    assert_eq!(theirs.status(), 202);
    assert_ne!(theirs.json::<MessageResource>().await.unwrap().id, first.id);

    let bad = send_with_key(&app, &app.token, "Idempotency-Key", "has space", &body).await;
    assert_eq!(problem(bad).await.0, 422);
    app.finish().await;
}

#[tokio::test]
async fn a_key_still_in_flight_is_a_409() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550161");
    app.emulator.set_behaviour("+14155550161", Behaviour { latency_ms: Some(800), ..Default::default() });
    let body = json!({"to": "+14155550161", "body": "slow", "mode": "immediate"});
    let (first, second) = tokio::join!(send_with_key(&app, &app.token, "Idempotency-Key", "k-409", &body), async {
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        send_with_key(&app, &app.token, "Idempotency-Key", "k-409", &body).await
    });
    assert_eq!(first.status(), 201);
    assert_eq!(problem(second).await.0, 409);
    let replay = send_with_key(&app, &app.token, "Idempotency-Key", "k-409", &body).await;
    assert_eq!(replay.status(), 201, "once finished, the stored answer is returned");
    assert_eq!(app.emulator.counters().created_to("+14155550161"), 1);
    app.finish().await;
}

#[tokio::test]
async fn a_token_within_its_minute_is_never_refused_and_the_next_request_is() {
    // The default limits (1,000 API requests per minute per token, no bound per second).
    let app = TestApp::spawn_with(TestOptions { vars: vec![("RATE_LIMIT_API_PER_MIN", "1000".into())], ..Default::default() }).await;
    let url = app.url("/api/v1/whatsapp/messages?limit=1");
    let started = std::time::Instant::now();
    let mut refused = Vec::new();
    // 1,000 requests in 5 seconds: 50 rounds of 20 concurrent requests, one round every 100 ms.
    let mut ticks = tokio::time::interval(std::time::Duration::from_millis(100));
    for round in 0..50 {
        ticks.tick().await;
        let requests = (0..20).map(|_| app.http.get(&url).bearer_auth(&app.token).send());
        for (n, response) in futures_util::future::join_all(requests).await.into_iter().enumerate() {
            let response = response.unwrap();
            if response.status() != 200 {
                refused.push((round * 20 + n, response.status().as_u16()));
            }
        }
    }
    assert_eq!(refused, [], "no request within the allowance is refused");
    let elapsed = started.elapsed();
    let over = app.http.get(&url).bearer_auth(&app.token).send().await.unwrap();
    assert_eq!(over.status(), 429, "the 1,001st within the minute");
    let retry_after: u64 = over.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let left = 60u64.saturating_sub(elapsed.as_secs());
    assert!(retry_after <= 60 && retry_after + 1 >= left, "the first request leaves the window ~{left} s from now: {retry_after}");
    assert_eq!(over.headers()["ratelimit-limit"], "1000");
    assert_eq!(over.headers()["ratelimit-remaining"], "0");
    assert_eq!(over.headers()["ratelimit-policy"], "1000;w=60");
    assert_eq!(problem(over).await.0, 429);
    app.finish().await;
}

#[tokio::test]
async fn api_rate_limit_is_per_token_with_a_burst_bound_and_headers() {
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![("RATE_LIMIT_API_PER_MIN", "6".into()), ("RATE_LIMIT_BURST", "3".into())],
        ..Default::default()
    })
    .await;
    let url = app.url("/api/v1/whatsapp/messages");
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let r = app.http.get(&url).bearer_auth(&app.token).send().await.unwrap();
        statuses.push(r.status().as_u16());
        last = Some(r);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429], "at most 3 in any second");
    let refused = last.unwrap();
    assert_eq!(refused.headers()["retry-after"], "1", "the burst second is over within 1 s");
    assert_eq!(refused.headers()["ratelimit-limit"], "6");
    assert_eq!(refused.headers()["ratelimit-remaining"], "0");
    assert_eq!(refused.headers()["ratelimit-policy"], "6;w=60, 3;w=1");
    assert_eq!(refused.headers()["content-type"], "application/problem+json");
    let other = mint_token(&JWT_SECRET.to_owned().into(), "someone-else", 600).unwrap();
    let theirs = app.http.get(&url).bearer_auth(&other).send().await.unwrap();
    assert_eq!(theirs.status(), 200, "another subject has its own bucket");
    assert_eq!(theirs.headers()["ratelimit-remaining"], "2");

    // After the burst second, the rest of the minute's allowance: 3 more, then the minute is full.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..4 {
        let r = app.http.get(&url).bearer_auth(&app.token).send().await.unwrap();
        statuses.push(r.status().as_u16());
        last = Some(r);
    }
    assert_eq!(statuses, [200, 200, 200, 429], "6 in the minute");
    let retry_after: u64 = last.unwrap().headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((55..=60).contains(&retry_after), "the minute's first request leaves in ~59 s: {retry_after}");
    app.finish().await;
}

#[tokio::test]
async fn webhook_rate_limit_counts_refused_requests_per_ip_and_never_signed_ones() {
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![("RATE_LIMIT_WEBHOOK_PER_MIN", "2".into()), ("RATE_LIMIT_BURST", "2".into()), ("TRUST_PROXY", "true".into())],
        ..Default::default()
    })
    .await;
    let post = |ip: &'static str| {
        app.http
            .post(app.url("/api/v1/whatsapp/status"))
            .header("x-forwarded-for", format!("203.0.113.9, {ip}"))
            .form(&[("MessageSid", "x")])
            .send()
    };
    assert_eq!(post("198.51.100.1").await.unwrap().status(), 403);
    assert_eq!(post("198.51.100.1").await.unwrap().status(), 403);
    let limited = post("198.51.100.1").await.unwrap();
    assert_eq!(limited.status(), 429);
    assert!(limited.headers().contains_key("retry-after"));
    assert_eq!(post("198.51.100.2").await.unwrap().status(), 403, "another client IP (as the trusted proxy saw it) is not limited");

    // Validly signed requests are never counted: Twilio's addresses are shared by its customers.
    let params = [("MessageSid", "SM0123456789abcdef0123456789abcdef"), ("MessageStatus", "sent")];
    let signature = twilio_signature::compute(app.emulator.auth_token().as_bytes(), &app.url("/api/v1/whatsapp/status"), &params);
    for _ in 0..5 {
        let response = app
            .http
            .post(app.url("/api/v1/whatsapp/status"))
            .header("x-forwarded-for", "198.51.100.1")
            .header("X-Twilio-Signature", &signature)
            .form(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    app.finish().await;
}

#[tokio::test]
async fn the_database_still_guards_a_key_whose_shared_record_was_lost() {
    let app = TestApp::spawn().await;
    let first = send_with_key(&app, &app.token, "Idempotency-Key", "lost-record", &json!({"to": "+14155550162", "body": "x"})).await;
    let first: MessageResource = first.json().await.unwrap();
    // As if Redis had lost the record: the same scoped key reaches the store again.
    let again = NewOutboundMessage {
        idempotency_key: Some(whatsapp_gateway::http::idempotency_scope("test-suite", "lost-record")),
        ..outbound("+14155550162")
    };
    let stored = app.gateway.send(again, SendMode::Queue).await.unwrap();
    assert_eq!(stored.id, first.id, "the earlier message is returned, no second one stored");
    assert_eq!(app.messages("?phone=%2B14155550162").await.messages.len(), 1);
    app.finish().await;
}

#[tokio::test]
async fn an_idempotency_key_is_released_after_24_hours() {
    let app = TestApp::spawn().await;
    let message = |key: &str| NewOutboundMessage {
        idempotency_key: Some(key.to_owned()),
        send_at: Some(now_ms() + 3_600_000),
        ..outbound("+14155550163")
    };
    let store = app.reopen_store().await;
    let day = 24 * 3_600_000;
    let (old, created) = store.insert_outbound(message("k"), sender(), now_ms() - day - 60_000).await.unwrap();
    assert!(created);
    let (recent, created) = store.insert_outbound(message("k2"), sender(), now_ms() - day + 60_000).await.unwrap();
    assert!(created);
    let (again, created) = store.insert_outbound(message("k"), sender(), now_ms()).await.unwrap();
    assert!(created, "a key last used more than 24 h ago makes a new message");
    assert_ne!(again.id, old.id);
    let (same, created) = store.insert_outbound(message("k2"), sender(), now_ms()).await.unwrap();
    assert!(!created, "a key used less than 24 h ago still answers with its message");
    assert_eq!(same.id, recent.id);
    store.close().await;
    app.finish().await;
}
