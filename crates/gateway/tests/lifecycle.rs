//! A message's whole life through the real application and the emulator: sending, callbacks,
//! retries, permanent failures, dead-letter, ordering of callbacks, metrics.

mod common;

use std::time::Duration;

use common::{TestApp, TestOptions, applied_history, text_message};
use serde_json::json;
use twilio_emulator::{Behaviour, Failure, RestError};

#[tokio::test]
async fn sent_message_reaches_read_with_its_history_and_metrics() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550101");
    let response =
        app.send(json!({"to": "whatsapp:+14155550101", "body": "Hello", "reference": "user-7", "metadata": {"order": 42}})).await;
    assert_eq!(response.status(), 202);
    let created: serde_json::Value = response.json().await.unwrap();
    assert_eq!(created["status"], "pending");
    assert_eq!(created["to"], "+14155550101");
    assert_eq!(created["priority"], 5);
    assert_eq!(created["reference"], "user-7");
    assert_eq!(created["metadata"]["order"], 42);
    let id = created["id"].as_str().unwrap();

    let done = app.wait_for_status(id, "read").await;
    assert_eq!(applied_history(&done), ["pending", "queued", "sent", "delivered", "read"]);
    assert!(done["message_sid"].as_str().unwrap().starts_with("SM"));
    for field in ["queued_at", "sent_at", "delivered_at", "read_at"] {
        assert!(done[field].is_string(), "{field} is set");
    }
    assert!(done["failed_at"].is_null());
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["send_attempts"][0]["outcome"], "accepted");

    let metrics = app.metrics("").await;
    let totals = &metrics["totals"];
    assert_eq!(
        (totals["total"].as_i64(), totals["sent"].as_i64(), totals["delivered"].as_i64(), totals["read"].as_i64()),
        (Some(1), Some(1), Some(1), Some(1))
    );
    assert_eq!(totals["delivery_rate"], 100.0);
    assert!(totals["average_delivery_time_ms"].as_f64().unwrap() >= 0.0);
    assert!(totals["p95_delivery_time_ms"].is_number());
    assert_eq!(metrics["buckets"].as_array().unwrap().len(), 1);
    let daily = app.metrics("?granularity=day&to_phone=%2B14155550101").await;
    assert_eq!(daily["totals"]["read"], 1);

    let (status, perf) = app.get_json("/api/v1/whatsapp/phones/+14155550101/performance").await;
    assert_eq!(status, 200);
    assert_eq!((perf["total_messages"].as_i64(), perf["delivered"].as_i64(), perf["health"].as_str()), (Some(1), Some(1), Some("healthy")));
    assert_eq!(app.emulator.counters().created_to("+14155550101"), 1);
}

#[tokio::test]
async fn permanent_error_fails_at_once_with_its_code_and_no_retry() {
    let app = TestApp::spawn().await;
    let rest_error = RestError { status: 400, code: 21211, message: "Invalid 'To' Phone Number".into() };
    app.emulator.set_behaviour("+14155550102", Behaviour { rest_error: Some(rest_error), ..Default::default() });
    let id = app.send_ok(text_message("+14155550102")).await;
    let done = app.wait_for_status(&id, "failed").await;
    assert_eq!(done["error_code"], 21211);
    assert_eq!(done["attempts"], 1);
    assert_eq!(done["send_attempts"][0]["outcome"], "permanent");
    assert_eq!(done["send_attempts"][0]["http_status"], 400);
    app.settle().await;
    let counters = app.emulator.counters();
    assert_eq!(counters.creates_rejected_4xx, 1, "one request, never retried");
    assert_eq!(counters.messages_created, 0);
    let metrics = app.metrics("").await;
    assert_eq!(metrics["totals"]["failed"], 1);
    assert_eq!(metrics["totals"]["error_breakdown"]["21211"], 1);
    let (_, perf) = app.get_json("/api/v1/whatsapp/phones/%2B14155550102/performance").await;
    assert_eq!(perf["recent_errors"][0]["error_code"], 21211);
}

#[tokio::test]
async fn throttled_send_is_delivered_after_a_backoff() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550103");
    app.emulator.set_behaviour("+14155550103", Behaviour { throttle_first: 1, ..Default::default() });
    let id = app.send_ok(text_message("+14155550103")).await;
    let done = app.wait_for_status(&id, "read").await;
    assert_eq!(done["attempts"], 2);
    let attempts = done["send_attempts"].as_array().unwrap();
    assert_eq!((attempts[0]["outcome"].as_str(), attempts[0]["error_code"].as_i64()), (Some("retryable"), Some(20429)));
    assert_eq!(attempts[1]["outcome"], "accepted");
    assert!(applied_history(&done).contains(&"retrying".to_owned()));
    let first =
        time::OffsetDateTime::parse(attempts[0]["finished_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    let second =
        time::OffsetDateTime::parse(attempts[1]["started_at"].as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    assert!(second - first >= time::Duration::milliseconds(25), "backoff of at least half the 50 ms base: {:?}", second - first);
    let counters = app.emulator.counters();
    assert_eq!((counters.creates_rejected_429, counters.created_to("+14155550103")), (1, 1));
}

#[tokio::test]
async fn server_errors_past_max_attempts_dead_letter_the_message() {
    let app = TestApp::spawn_with(TestOptions { vars: vec![("MAX_ATTEMPTS", "3".into())], ..Default::default() }).await;
    app.emulator.set_behaviour("+14155550104", Behaviour { server_error_first: 100, ..Default::default() });
    let id = app.send_ok(text_message("+14155550104")).await;
    let done = app.wait_for_status(&id, "failed").await;
    assert_eq!(done["attempts"], 3);
    let last = done["history"].as_array().unwrap().last().unwrap().clone();
    assert!(last["detail"].as_str().unwrap().contains("dead-lettered after 3 attempts"), "{last}");
    app.settle().await;
    assert_eq!(app.emulator.counters().creates_rejected_500, 3);
}

#[tokio::test]
async fn duplicated_and_reordered_callbacks_end_in_read_and_count_once() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550105");
    app.emulator.set_behaviour("+14155550105", Behaviour { duplicate_callbacks: true, reorder_callbacks: true, ..Default::default() });
    let id = app.send_ok(text_message("+14155550105")).await;
    app.wait_for_status(&id, "read").await;
    // Wait for every duplicate to land: 3 statuses, each sent twice.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.emulator.counters().callbacks_answered_2xx < 6 {
        assert!(tokio::time::Instant::now() < deadline, "callbacks: {:?}", app.emulator.counters());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let done = app.delivery_status(&id).await;
    assert_eq!(done["status"], "read");
    assert!(done["delivered_at"].is_string() && done["sent_at"].is_string(), "read first still fills earlier stages: {done:#}");
    let callbacks: Vec<_> = done["history"].as_array().unwrap().iter().filter(|e| e["source"] == "callback").collect();
    assert_eq!(callbacks.len(), 3, "each callback is logged once; its duplicate (same idempotency token) is acknowledged as a replay");
    assert_eq!(callbacks.iter().filter(|e| e["applied"] == true).count(), 1, "only the first (read) moved the status");
    assert_eq!(callbacks[0]["status"], "read", "reordered: read came first");
    let totals = app.metrics("").await["totals"].clone();
    assert_eq!((totals["delivered"].as_i64(), totals["read"].as_i64(), totals["sent"].as_i64()), (Some(1), Some(1), Some(1)));
}

#[tokio::test]
async fn free_form_message_outside_the_window_is_undelivered_with_63016() {
    let app = TestApp::spawn().await;
    let id = app.send_ok(text_message("+14155550106")).await;
    let done = app.wait_for_status(&id, "undelivered").await;
    assert_eq!(done["error_code"], 63016);
    assert!(!done["error_message"].as_str().unwrap().is_empty(), "{done:#}");
    let template =
        app.send_ok(json!({"to": "+14155550106", "content_sid": format!("HX{}", "a".repeat(32)), "content_variables": {"1": "Ada"}})).await;
    app.wait_for_status(&template, "read").await;
    let (_, perf) = app.get_json("/api/v1/whatsapp/phones/+14155550106/performance").await;
    assert_eq!((perf["failed"].as_i64(), perf["delivered"].as_i64()), (Some(1), Some(1)));
}

#[tokio::test]
async fn failed_callback_keeps_the_carrier_error_code() {
    let app = TestApp::spawn().await;
    app.emulator
        .set_behaviour("+14155550107", Behaviour { fail: Some(Failure::failed(30003)), window_open: Some(true), ..Default::default() });
    let id = app.send_ok(text_message("+14155550107")).await;
    let done = app.wait_for_status(&id, "failed").await;
    assert_eq!(done["error_code"], 30003);
    assert!(done["sent_at"].is_null());
    assert_eq!(app.metrics("").await["totals"]["error_breakdown"]["30003"], 1);
}

#[tokio::test]
async fn immediate_mode_answers_201_with_the_sid() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550108");
    let response = app.send(json!({"to": "+14155550108", "body": "now", "mode": "immediate"})).await;
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    assert!(body["message_sid"].as_str().unwrap().starts_with("SM"));
    app.wait_for_status(body["id"].as_str().unwrap(), "read").await;
    assert_eq!(app.emulator.counters().created_to("+14155550108"), 1);
}

#[tokio::test]
async fn lost_answer_is_reconciled_with_twilio_instead_of_sending_twice() {
    // Twilio stores the message, then answers after the gateway has stopped waiting.
    // Callbacks come late, so only asking Twilio can tell that the message exists.
    let mut options =
        TestOptions { vars: vec![("TWILIO_TIMEOUT_MS", "300".into()), ("WORKER_LEASE_MS", "1000".into())], ..Default::default() };
    options.emulator.delays = twilio_emulator::LifecycleDelays {
        to_sent: Duration::from_secs(2),
        to_delivered: Duration::from_millis(2100),
        to_read: Duration::from_millis(2200),
    };
    let app = TestApp::spawn_with(options).await;
    app.open_window("+14155550109");
    app.emulator.set_behaviour("+14155550109", Behaviour { latency_ms: Some(1_500), ..Default::default() });
    let id = app.send_ok(text_message("+14155550109")).await;
    let done = app.wait_for_status(&id, "read").await;
    let outcomes: Vec<_> = done["send_attempts"].as_array().unwrap().iter().map(|a| a["outcome"].as_str().unwrap().to_owned()).collect();
    assert_eq!(outcomes, ["reconciled"], "the only attempt timed out and was then found at Twilio");
    assert_eq!(app.emulator.counters().created_to("+14155550109"), 1, "sent exactly once");
}

#[tokio::test]
async fn priority_one_is_sent_before_priority_ten() {
    let app = TestApp::spawn_with(TestOptions { vars: vec![("WORKER_CONCURRENCY", "1".into())], ..Default::default() }).await;
    let later = time::OffsetDateTime::now_utc() + time::Duration::milliseconds(700);
    let send_at = later.format(&time::format_description::well_known::Rfc3339).unwrap();
    let low = app
        .send_ok(json!({"to": "+14155550110", "content_sid": format!("HX{}", "b".repeat(32)), "priority": 10, "send_at": send_at}))
        .await;
    let high =
        app.send_ok(json!({"to": "+14155550111", "content_sid": format!("HX{}", "b".repeat(32)), "priority": 1, "send_at": send_at})).await;
    let low = app.wait_for_status(&low, "read").await;
    let high = app.wait_for_status(&high, "read").await;
    let at =
        |v: &serde_json::Value| time::OffsetDateTime::parse(v.as_str().unwrap(), &time::format_description::well_known::Rfc3339).unwrap();
    assert!(at(&high["queued_at"]) <= at(&low["queued_at"]), "high {high:#} low {low:#}");
    assert!(at(&low["queued_at"]) >= later - time::Duration::milliseconds(1), "send_at is honoured");
}

#[tokio::test]
async fn sends_from_one_sender_are_paced_to_the_configured_rate() {
    let app = TestApp::spawn_with(TestOptions {
        vars: vec![("SENDER_RATE_PER_SEC", "5".into()), ("WORKER_CONCURRENCY", "8".into())],
        ..Default::default()
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..12 {
        ids.push(app.send_ok(json!({"to": format!("+141555501{:02}", 70 + i), "content_sid": format!("HX{}", "c".repeat(32))})).await);
    }
    let mut accepted = Vec::new();
    for id in &ids {
        let done = app.wait_for(id, |s| s == "read").await;
        let at = time::OffsetDateTime::parse(
            done["send_attempts"][0]["started_at"].as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        accepted.push(at);
    }
    accepted.sort();
    let span = *accepted.last().unwrap() - accepted[0];
    // A burst of 5, then one every 200 ms: the 12th leaves at least 7 × 200 ms after the first.
    assert!(span >= time::Duration::milliseconds(1_300), "12 sends at 5/s took only {span}");
    let first_second = accepted.iter().filter(|t| **t - accepted[0] < time::Duration::milliseconds(1_000)).count();
    assert!(first_second <= 10, "{first_second} sends within the first second at 5/s with a burst of 5");
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_send_in_flight() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550190");
    app.emulator.set_behaviour("+14155550190", Behaviour { latency_ms: Some(800), ..Default::default() });
    let id = app.send_ok(text_message("+14155550190")).await;
    // Twilio has the request and is still answering when the shutdown comes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.emulator.counters().created_to("+14155550190") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the send never reached the emulator");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut app = app;
    app.stop().await;
    let store = app.reopen_store().await;
    let message = store.message(id.parse().unwrap()).await.unwrap().unwrap();
    let attempts = store.attempts(message.id).await.unwrap();
    assert_eq!(attempts.len(), 1);
    assert_eq!(attempts[0].outcome, "accepted", "the send in flight was finished, not abandoned: {attempts:?}");
    assert!(!message.status().is_sendable(), "recorded as accepted by Twilio: {:?}", message.status());
    assert!(message.message_sid.is_some());
    store.close().await;
}
