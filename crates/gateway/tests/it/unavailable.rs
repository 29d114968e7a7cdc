//! When the database is down, or its pool is full, every endpoint answers at once with a 503
//! problem and `Retry-After` (Twilio and the app retry), nothing hangs, and everything works again
//! when the database is back. A private PostgreSQL server is stopped under the running app.

use std::time::Duration;

use serde_json::json;
use sqlx::Connection as _;
use whatsapp_gateway::domain::MessageStatus;
use whatsapp_gateway::http::dto::ops::{DependencyState, Readiness};

use crate::helpers::private_pg::PrivatePostgres;
use crate::helpers::{TestApp, TestOptions, problem, text_message};

fn sign(app: &TestApp, path: &str, params: &[(&str, &str)]) -> String {
    twilio_signature::compute(app.emulator.auth_token().as_bytes(), &app.url(path), params)
}

/// Locks the messages table from another connection (the returned one, in an open transaction:
/// `COMMIT` on it lets go) and starts `requests` list requests that wait on it, each answering its
/// status when it is let through or refused.
async fn lock_messages_under(app: &TestApp, url: &str, requests: usize) -> (sqlx::PgConnection, Vec<tokio::task::JoinHandle<u16>>) {
    let mut blocker = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql("BEGIN; LOCK TABLE messages IN ACCESS EXCLUSIVE MODE").execute(&mut blocker).await.unwrap();
    let stuck = (0..requests)
        .map(|_| {
            let (http, url, token) = (app.http.clone(), app.url("/api/v1/whatsapp/messages"), app.token.clone());
            tokio::spawn(async move { http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() })
        })
        .collect();
    (blocker, stuck)
}

/// Every kind of request, each expected to answer `expected`.
async fn every_endpoint(app: &TestApp, id: &str) -> Vec<(String, reqwest::Response)> {
    let status = [("MessageSid", "SM00000000000000000000000000000aaa"), ("MessageStatus", "sent")];
    let inbound =
        [("MessageSid", "SM00000000000000000000000000000bbb"), ("From", "whatsapp:+14155550191"), ("To", "whatsapp:+14155238886")];
    let mut answers = vec![("POST /send".to_owned(), app.send(text_message("+14155550190")).await)];
    for path in [
        "/api/v1/whatsapp/messages".to_owned(),
        format!("/api/v1/whatsapp/messages/{id}"),
        format!("/api/v1/whatsapp/delivery-status?id={id}"),
        "/api/v1/whatsapp/delivery-metrics".to_owned(),
        "/api/v1/whatsapp/phones/+14155550190/performance".to_owned(),
    ] {
        answers.push((format!("GET {path}"), app.get(&path).await));
    }
    for (path, params) in [("/api/v1/whatsapp/status", &status[..]), ("/api/v1/whatsapp/webhook", &inbound[..])] {
        let request = app.http.post(app.url(path)).header("X-Twilio-Signature", sign(app, path, params)).form(params);
        answers.push((format!("POST {path}"), request.send().await.unwrap()));
    }
    answers
}

async fn assert_unavailable(app: &TestApp, id: &str) {
    for (what, response) in every_endpoint(app, id).await {
        let retry_after = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
        let (status, body) = problem(response).await;
        assert_eq!(status, 503, "{what}: {body:?}");
        assert_eq!(body.kind, "https://whatsapp-gateway.dev/problems/unavailable", "{what}");
        assert!(body.detail.contains("database"), "{what}: {body:?}");
        let retry_after: u64 = retry_after.unwrap_or_else(|| panic!("{what}: no Retry-After")).parse().unwrap();
        assert!((1..=10).contains(&retry_after), "{what}: Retry-After {retry_after}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_database_stopped_every_endpoint_answers_503_and_recovers() {
    let pg = PrivatePostgres::start();
    let url = pg.create_database("wg").await;
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![("DATABASE_URL", url), ("DATABASE_ACQUIRE_TIMEOUT_MS", "1000".into())],
        ..Default::default()
    })
    .await;
    app.open_window("+14155550190");
    let before = app.send_ok(text_message("+14155550190")).await.id;
    app.wait_for_status(before, MessageStatus::Read).await;

    pg.stop();
    let started = tokio::time::Instant::now();
    assert_unavailable(&app, &before.to_string()).await;
    assert!(started.elapsed() < Duration::from_secs(30), "answered in bounded time: {:?}", started.elapsed());
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);
    let ready: Readiness = ready.json().await.unwrap();
    assert_eq!((ready.database, ready.status.as_str()), (DependencyState::Unreachable, "not_ready"));

    pg.start_again();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while app.http.get(app.url("/readyz")).send().await.unwrap().status() != 200 {
        assert!(tokio::time::Instant::now() < deadline, "not ready again 30 s after the database came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = app.send_ok(text_message("+14155550190")).await.id;
    app.wait_for_status(after, MessageStatus::Read).await;
    assert_eq!(app.delivery_status(before).await.message.status, MessageStatus::Read, "nothing stored was lost");
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_pool_full_requests_answer_503_instead_of_waiting() {
    let pg = PrivatePostgres::start();
    let url = pg.create_database("wg").await;
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![("DATABASE_URL", url.clone()), ("DATABASE_MAX_CONNECTIONS", "2".into()), ("DATABASE_ACQUIRE_TIMEOUT_MS", "800".into())],
        ..Default::default()
    })
    .await;
    let later =
        (time::OffsetDateTime::now_utc() + time::Duration::days(30)).format(&time::format_description::well_known::Rfc3339).unwrap();
    let id = app.send_ok(json!({"to": "+14155550192", "body": "x", "send_at": later})).await.id;

    // Another client holds the messages table: every query on it waits, holding its connection.
    let (mut blocker, stuck) = lock_messages_under(&app, &url, 3).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = tokio::time::Instant::now();
    for (what, response) in [
        ("GET /messages", app.get("/api/v1/whatsapp/messages").await),
        ("POST /send", app.send(text_message("+14155550192")).await),
        ("GET /delivery-status", app.get(&format!("/api/v1/whatsapp/delivery-status?id={id}")).await),
    ] {
        let retry_after = response.headers().contains_key("retry-after");
        let (status, body) = problem(response).await;
        assert_eq!(status, 503, "{what}: {body:?}");
        assert!(retry_after, "{what}: Retry-After");
    }
    assert!(started.elapsed() < Duration::from_secs(10), "each refused after the acquire timeout: {:?}", started.elapsed());

    sqlx::raw_sql("COMMIT").execute(&mut blocker).await.unwrap();
    let mut answers = Vec::new();
    for request in stuck {
        answers.push(request.await.unwrap());
    }
    // Those that got a connection waited for the table and were answered; the others (the worker
    // loop holds connections too) were refused in time.
    assert!(answers.iter().all(|s| [200, 503].contains(s)) && answers.contains(&200), "{answers:?}");
    assert_eq!(app.messages("").await.messages.len(), 1, "the refused send stored nothing");
    let later = app.send_ok(text_message("+14155550192")).await;
    assert_eq!(later.status, MessageStatus::Pending);
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_answers_within_its_probe_timeout_while_the_pool_waits_far_longer() {
    let pg = PrivatePostgres::start();
    let url = pg.create_database("wg").await;
    let acquire = Duration::from_secs(10);
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![
            ("DATABASE_URL", url.clone()),
            ("DATABASE_MAX_CONNECTIONS", "2".into()),
            ("DATABASE_ACQUIRE_TIMEOUT_MS", acquire.as_millis().to_string()),
        ],
        ..Default::default()
    })
    .await;
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);

    // Requests stuck on a locked table hold every connection of the pool.
    let (mut blocker, stuck) = lock_messages_under(&app, &url, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = tokio::time::Instant::now();
    let ready = app.http.get(app.url("/readyz")).send().await.unwrap();
    let waited = started.elapsed();
    assert_eq!(ready.status(), 503);
    let ready: Readiness = ready.json().await.unwrap();
    assert_eq!((ready.database, ready.status.as_str()), (DependencyState::Unreachable, "not_ready"));
    assert!(waited < acquire / 2, "/readyz waited {waited:?}, as long as the pool would ({acquire:?})");

    sqlx::raw_sql("COMMIT").execute(&mut blocker).await.unwrap();
    for request in stuck {
        assert_eq!(request.await.unwrap(), 200, "the held requests are answered once the table is free");
    }
    assert_eq!(app.http.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    app.finish().await;
}
