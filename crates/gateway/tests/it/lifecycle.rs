//! A message's whole life through the real application and the emulator: sending, callbacks,
//! retries, permanent failures, dead-letter, ordering of callbacks, metrics.

use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use twilio_emulator::{Behaviour, Failure, RestError};
use whatsapp_gateway::domain::{AttemptOutcome, MessageStatus, PhoneHealth, StatusSource};
use whatsapp_gateway::http::dto::metrics::PhonePerformanceView;

use crate::helpers::{TestApp, TestOptions, applied_history, text_message};

use MessageStatus::{Delivered, Failed, Pending, Queued, Read, Retrying, Sent, Undelivered};

fn at(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339).unwrap()
}

#[tokio::test]
async fn sent_message_reaches_read_with_its_history_and_metrics() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550101");
    let created =
        app.send_ok(json!({"to": "whatsapp:+14155550101", "body": "Hello", "reference": "user-7", "metadata": {"order": 42}})).await;
    assert_eq!(created.status, Pending);
    assert_eq!((created.to.as_str(), created.priority, created.reference.as_deref()), ("+14155550101", 5, Some("user-7")));
    assert_eq!(created.metadata, Some(json!({"order": 42})));

    let done = app.wait_for_status(created.id, Read).await;
    assert_eq!(applied_history(&done), [Pending, Queued, Sent, Delivered, Read]);
    let m = &done.message;
    assert!(m.message_sid.as_ref().unwrap().as_str().starts_with("SM"));
    assert!(m.queued_at.is_some() && m.sent_at.is_some() && m.delivered_at.is_some() && m.read_at.is_some(), "{m:#?}");
    assert_eq!((m.failed_at.as_deref(), m.attempts), (None, 1));
    assert_eq!(done.send_attempts.iter().map(|a| a.outcome).collect::<Vec<_>>(), [AttemptOutcome::Accepted]);

    let metrics = app.metrics("").await;
    let t = &metrics.totals;
    assert_eq!((t.total, t.sent, t.delivered, t.read, t.failed, t.undelivered), (1, 1, 1, 1, 0, 0));
    assert_eq!(t.delivery_rate, 100.0);
    assert!(t.average_delivery_time_ms.unwrap() >= 0.0);
    assert!(t.p95_delivery_time_ms.is_some());
    assert_eq!(metrics.buckets.len(), 1);
    let daily = app.metrics("?granularity=day&to_phone=%2B14155550101").await;
    assert_eq!(daily.totals.read, 1);

    let perf: PhonePerformanceView = app.get_ok("/api/v1/whatsapp/phones/+14155550101/performance").await;
    assert_eq!((perf.total_messages, perf.delivered, perf.health), (1, 1, PhoneHealth::Healthy));
    assert_eq!(app.emulator.counters().created_to("+14155550101"), 1);
    app.finish().await;
}

#[tokio::test]
async fn permanent_error_fails_at_once_with_its_code_and_no_retry() {
    let app = TestApp::spawn().await;
    let rest_error = RestError { status: 400, code: 21211, message: "Invalid 'To' Phone Number".into() };
    app.emulator.set_behaviour("+14155550102", Behaviour { rest_error: Some(rest_error), ..Default::default() });
    let id = app.send_ok(text_message("+14155550102")).await.id;
    let done = app.wait_for_status(id, Failed).await;
    assert_eq!((done.message.error_code, done.message.attempts), (Some(21211), 1));
    assert_eq!((done.send_attempts[0].outcome, done.send_attempts[0].http_status), (AttemptOutcome::Permanent, Some(400)));
    app.drain().await;
    let counters = app.emulator.counters();
    assert_eq!(counters.creates_rejected_4xx, 1, "one request, never retried");
    assert_eq!(counters.messages_created, 0);
    let metrics = app.metrics("").await;
    assert_eq!(metrics.totals.failed, 1);
    assert_eq!(metrics.totals.error_breakdown.get("21211"), Some(&1));
    let perf: PhonePerformanceView = app.get_ok("/api/v1/whatsapp/phones/%2B14155550102/performance").await;
    assert_eq!(perf.recent_errors.iter().map(|e| e.error_code).collect::<Vec<_>>(), [Some(21211)]);
    app.finish().await;
}

#[tokio::test]
async fn throttled_send_is_delivered_after_a_backoff() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550103");
    app.emulator.set_behaviour("+14155550103", Behaviour { throttle_first: 1, ..Default::default() });
    let id = app.send_ok(text_message("+14155550103")).await.id;
    let done = app.wait_for_status(id, Read).await;
    assert_eq!(done.message.attempts, 2);
    let attempts = &done.send_attempts;
    assert_eq!((attempts[0].outcome, attempts[0].error_code), (AttemptOutcome::Retryable, Some(20429)));
    assert_eq!(attempts[1].outcome, AttemptOutcome::Accepted);
    assert!(applied_history(&done).contains(&Retrying));
    let gap = at(&attempts[1].started_at) - at(attempts[0].finished_at.as_deref().unwrap());
    assert!(gap >= time::Duration::milliseconds(25), "backoff of at least half the 50 ms base: {gap:?}");
    let counters = app.emulator.counters();
    assert_eq!((counters.creates_rejected_429, counters.created_to("+14155550103")), (1, 1));
    app.finish().await;
}

#[tokio::test]
async fn server_errors_past_max_attempts_dead_letter_the_message() {
    let app = TestApp::spawn_with(TestOptions { vars: vec![("MAX_ATTEMPTS", "3".into())], ..Default::default() }).await;
    app.emulator.set_behaviour("+14155550104", Behaviour { server_error_first: 100, ..Default::default() });
    let id = app.send_ok(text_message("+14155550104")).await.id;
    let done = app.wait_for_status(id, MessageStatus::DeadLettered).await;
    assert_eq!(done.message.attempts, 3);
    let last = done.history.last().unwrap();
    assert!(last.detail.as_deref().unwrap().contains("dead-lettered after 3 attempts"), "{last:?}");
    app.drain().await;
    assert_eq!(app.emulator.counters().creates_rejected_500, 3);
    app.finish().await;
}

#[tokio::test]
async fn duplicated_and_reordered_callbacks_end_in_read_and_count_once() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550105");
    app.emulator.set_behaviour("+14155550105", Behaviour { duplicate_callbacks: true, reorder_callbacks: true, ..Default::default() });
    let id = app.send_ok(text_message("+14155550105")).await.id;
    app.wait_for_status(id, Read).await;
    app.drain().await;
    assert_eq!(app.emulator.counters().callbacks_answered_2xx, 6, "3 statuses, each sent twice, all acknowledged");
    let done = app.delivery_status(id).await;
    assert_eq!(done.message.status, Read);
    assert!(done.message.delivered_at.is_some() && done.message.sent_at.is_some(), "read first still fills earlier stages: {done:#?}");
    let callbacks: Vec<_> = done.history.iter().filter(|e| e.source == StatusSource::Callback).collect();
    assert_eq!(callbacks.iter().map(|e| e.status).collect::<Vec<_>>(), [Read, Delivered, Sent], "each callback logged once, reordered");
    assert_eq!(callbacks.iter().filter(|e| e.applied).count(), 1, "only the first (read) moved the status");
    let t = app.metrics("").await.totals;
    assert_eq!((t.delivered, t.read, t.sent, t.total), (1, 1, 1, 1));
    app.finish().await;
}

#[tokio::test]
async fn free_form_message_outside_the_window_is_undelivered_with_63016() {
    let app = TestApp::spawn().await;
    let id = app.send_ok(text_message("+14155550106")).await.id;
    let done = app.wait_for_status(id, Undelivered).await;
    assert_eq!(done.message.error_code, Some(63016));
    assert!(!done.message.error_message.as_deref().unwrap().is_empty(), "{done:#?}");
    let template =
        app.send_ok(json!({"to": "+14155550106", "content_sid": format!("HX{}", "a".repeat(32)), "content_variables": {"1": "Ada"}})).await;
    app.wait_for_status(template.id, Read).await;
    let perf: PhonePerformanceView = app.get_ok("/api/v1/whatsapp/phones/+14155550106/performance").await;
    assert_eq!((perf.failed, perf.delivered), (1, 1));
    app.finish().await;
}

#[tokio::test]
async fn failed_callback_keeps_the_carrier_error_code() {
    let app = TestApp::spawn().await;
    app.emulator
        .set_behaviour("+14155550107", Behaviour { fail: Some(Failure::failed(30003)), window_open: Some(true), ..Default::default() });
    let id = app.send_ok(text_message("+14155550107")).await.id;
    let done = app.wait_for_status(id, Failed).await;
    assert_eq!(done.message.error_code, Some(30003));
    assert_eq!(done.message.sent_at, None);
    assert_eq!(app.metrics("").await.totals.error_breakdown.get("30003"), Some(&1));
    app.finish().await;
}

#[tokio::test]
async fn immediate_mode_answers_201_with_the_sid() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550108");
    let response = app.send(json!({"to": "+14155550108", "body": "now", "mode": "immediate"})).await;
    assert_eq!(response.status(), 201);
    let body: whatsapp_gateway::http::dto::MessageResource = response.json().await.unwrap();
    assert_eq!(body.status, Queued);
    assert!(body.message_sid.as_ref().unwrap().as_str().starts_with("SM"));
    app.wait_for_status(body.id, Read).await;
    assert_eq!(app.emulator.counters().created_to("+14155550108"), 1);
    app.finish().await;
}

/// A gateway that stops waiting for Twilio after 300 ms, and an emulator whose callbacks come
/// 2 s late: with a recipient's latency above 300 ms, the answer is lost and only asking Twilio
/// (or, later, the callbacks) can tell that the message exists.
fn lost_answers() -> TestOptions {
    let mut options =
        TestOptions { vars: vec![("TWILIO_TIMEOUT_MS", "300".into()), ("WORKER_LEASE_MS", "1000".into())], ..Default::default() };
    options.emulator.delays = twilio_emulator::LifecycleDelays {
        to_sent: Duration::from_secs(2),
        to_delivered: Duration::from_millis(2100),
        to_read: Duration::from_millis(2200),
    };
    options
}

#[tokio::test]
async fn lost_answer_is_reconciled_with_twilio_instead_of_sending_twice() {
    // Twilio stores the message, then answers after the gateway has stopped waiting.
    // Callbacks come late, so only asking Twilio can tell that the message exists.
    let app = TestApp::spawn_with(lost_answers()).await;
    app.open_window("+14155550109");
    app.emulator.set_behaviour("+14155550109", Behaviour { latency_ms: Some(1_500), ..Default::default() });
    let id = app.send_ok(text_message("+14155550109")).await.id;
    let done = app.wait_for_status(id, Read).await;
    let outcomes: Vec<_> = done.send_attempts.iter().map(|a| a.outcome).collect();
    assert_eq!(outcomes, [AttemptOutcome::Reconciled], "the only attempt timed out and was then found at Twilio");
    assert_eq!(app.emulator.counters().created_to("+14155550109"), 1, "sent exactly once");
    app.finish().await;
}

#[tokio::test]
async fn two_templates_to_one_number_whose_answers_are_both_lost_keep_their_own_sids() {
    // Both requests reach Twilio and both answers are lost; a template has no body to tell the
    // two messages at Twilio apart, so reconciling must not pick one by guess. The callbacks,
    // which carry each message's id, say which is whose.
    let app = TestApp::spawn_with(lost_answers()).await;
    // Eight numbers, two messages each, all at once: which worker asks Twilio first is up to the
    // scheduler, and a guess goes wrong only for some orders.
    let numbers: Vec<String> = (112..120).map(|n| format!("+14155550{n}")).collect();
    let template = format!("HX{}", "d".repeat(32));
    let mut pairs = Vec::new();
    for to in &numbers {
        app.emulator.set_behaviour(to, Behaviour { latency_ms: Some(1_500), ..Default::default() });
        let a = app.send_ok(json!({"to": to, "content_sid": template})).await.id;
        let b = app.send_ok(json!({"to": to, "content_sid": template})).await.id;
        pairs.push((to, [a, b]));
    }
    for (to, ids) in pairs {
        let mut sids = Vec::new();
        for id in ids {
            let done = app.wait_for_status(id, Read).await;
            let sid = done.message.message_sid.clone().expect("a SID");
            let callback = app.emulator.status_callback(sid.as_str()).expect("Twilio has the message");
            assert!(callback.ends_with(&format!("mid={id}")), "message {id} holds the SID of the message Twilio created for {callback}");
            sids.push(sid);
        }
        assert_ne!(sids[0], sids[1]);
        assert_eq!(app.emulator.counters().created_to(to), 2, "each sent exactly once");
    }
    app.finish().await;
}

#[tokio::test]
async fn priority_one_is_sent_before_priority_ten() {
    let app = TestApp::spawn_with(TestOptions { vars: vec![("WORKER_CONCURRENCY", "1".into())], ..Default::default() }).await;
    let later = OffsetDateTime::now_utc() + time::Duration::milliseconds(700);
    let send_at = later.format(&Rfc3339).unwrap();
    let template = format!("HX{}", "b".repeat(32));
    let low = app.send_ok(json!({"to": "+14155550110", "content_sid": template, "priority": 10, "send_at": send_at})).await.id;
    let high = app.send_ok(json!({"to": "+14155550111", "content_sid": template, "priority": 1, "send_at": send_at})).await.id;
    let low = app.wait_for_status(low, Read).await.message;
    let high = app.wait_for_status(high, Read).await.message;
    let (low_at, high_at) = (at(low.queued_at.as_deref().unwrap()), at(high.queued_at.as_deref().unwrap()));
    assert!(high_at <= low_at, "high {high:#?} low {low:#?}");
    assert!(low_at >= later - time::Duration::milliseconds(1), "send_at is honoured");
    app.finish().await;
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
        ids.push(app.send_ok(json!({"to": format!("+141555501{:02}", 70 + i), "content_sid": format!("HX{}", "c".repeat(32))})).await.id);
    }
    let mut started = Vec::new();
    for id in &ids {
        let done = app.wait_for_status(id, Read).await;
        started.push(at(&done.send_attempts[0].started_at));
    }
    started.sort();
    let span = *started.last().unwrap() - started[0];
    // One every 200 ms: the 12th leaves at least 11 × 200 ms after the first (less a little
    // for the timer's grain).
    assert!(span >= time::Duration::milliseconds(2_100), "12 sends at 5/s took only {span}");
    for (i, first) in started.iter().enumerate() {
        let within = started[i..].iter().filter(|t| **t - *first < time::Duration::milliseconds(990)).count();
        assert!(within <= 5, "{within} sends within one second at 5/s");
    }
    app.finish().await;
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_send_in_flight() {
    let mut app = TestApp::spawn().await;
    app.open_window("+14155550190");
    app.emulator.set_behaviour("+14155550190", Behaviour { latency_ms: Some(800), ..Default::default() });
    let id = app.send_ok(text_message("+14155550190")).await.id;
    // Twilio has the request and is still answering when the shutdown comes.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while app.emulator.counters().created_to("+14155550190") == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the send never reached the emulator");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    app.stop().await;
    let store = app.reopen_store().await;
    let message = store.message(id).await.unwrap().unwrap();
    let attempts = store.attempts(message.id).await.unwrap();
    assert_eq!(attempts.iter().map(|a| a.outcome).collect::<Vec<_>>(), [AttemptOutcome::Accepted], "the send in flight was finished");
    assert!(!message.status().is_sendable(), "recorded as accepted by Twilio: {:?}", message.status());
    assert!(message.message_sid.is_some());
    store.close().await;
    app.finished_without_checks();
}
