//! Validity periods: a message not sent in time ends `expired` (never created at Twilio), what is
//! left of its period goes to Twilio as `ValidityPeriod`, and Twilio's expiry codes end a message
//! `expired` without a retry.

use serde_json::json;
use twilio_emulator::{Behaviour, Failure, RestError};
use whatsapp_gateway::domain::{AttemptOutcome, MessageStatus, StatusSource};

use crate::helpers::{TestApp, TestOptions, field_errors, problem, text_message};

use MessageStatus::{Expired, Read};

#[tokio::test]
async fn a_message_throttled_past_its_validity_expires_without_ever_being_created() {
    // Enough attempts that only the clock can end it.
    let app = TestApp::spawn_with(TestOptions { vars: vec![("MAX_ATTEMPTS", "1000".into())], ..Default::default() }).await;
    let phone = "+14155550161";
    app.open_window(phone);
    app.emulator.set_behaviour(phone, Behaviour { throttle_first: 100_000, ..Default::default() });
    let created = app.send_ok(json!({"to": phone, "body": "only useful now", "validity_s": 1})).await;
    assert_eq!(created.validity_s, Some(1));
    assert!(created.expires_at.is_some(), "{created:#?}");
    let done = app.wait_for_status(created.id, Expired).await;
    assert_eq!(done.message.error_code, Some(30036));
    assert!(done.message.attempts >= 1, "it was tried while it was valid: {:#?}", done.message);
    assert_eq!(done.message.expires_at, None, "no longer waiting");
    let last = done.history.last().unwrap();
    assert_eq!((last.status, last.source), (Expired, StatusSource::Worker));
    assert_eq!(last.detail.as_deref(), Some("not sent within its validity period of 1 s"));
    app.drain().await;
    assert_eq!(app.emulator.counters().created_to(phone), 0);
    let t = app.metrics("").await.totals;
    assert_eq!((t.total, t.failed), (1, 1), "an expired message is a failure to deliver");
    app.finish().await;
}

#[tokio::test]
async fn what_is_left_of_the_validity_period_goes_to_twilio() {
    let app = TestApp::spawn().await;
    let phone = "+14155550162";
    app.open_window(phone);
    let short = app.send_ok(json!({"to": phone, "body": "ten minutes", "validity_s": 600})).await.id;
    let default = app.send_ok(text_message(phone)).await;
    assert_eq!(default.validity_s, Some(36_000), "Twilio's default");
    for (id, max) in [(short, 600), (default.id, 36_000)] {
        let done = app.wait_for_status(id, Read).await;
        let sid = done.message.message_sid.unwrap();
        let sent = app.emulator.validity_period(sid.as_str()).expect("ValidityPeriod was sent");
        assert!(sent <= max && sent + 30 >= max, "{sent} s of {max} s left when sent");
    }

    for (value, reason) in
        [(json!(0), "must be from 1 to 36000 seconds, got 0"), (json!(36_001), "must be from 1 to 36000 seconds, got 36001")]
    {
        let (status, body) = problem(app.send(json!({"to": phone, "body": "x", "validity_s": value})).await).await;
        assert_eq!(status, 422);
        assert_eq!(field_errors(&body), [("validity_s".to_owned(), reason.to_owned())]);
    }
    let (status, body) = problem(app.send(json!({"to": phone, "body": "x", "validity_s": "soon"})).await).await;
    assert_eq!((status, field_errors(&body)[0].0.as_str()), (422, "validity_s"));
    app.finish().await;
}

#[tokio::test]
async fn twilios_expiry_codes_end_the_message_expired_and_are_never_retried() {
    let app = TestApp::spawn().await;
    let (queue_full, lapsed) = ("+14155550163", "+14155550164");
    app.open_window(queue_full);
    app.open_window(lapsed);
    let rest_error =
        RestError { status: 400, code: 21611, message: "This 'From' number has exceeded the maximum number of queued messages".into() };
    app.emulator.set_behaviour(queue_full, Behaviour { rest_error: Some(rest_error), ..Default::default() });
    app.emulator.set_behaviour(lapsed, Behaviour { fail: Some(Failure::failed(30036)), ..Default::default() });

    let refused = app.send_ok(text_message(queue_full)).await.id;
    let done = app.wait_for_status(refused, Expired).await;
    assert_eq!((done.message.error_code, done.message.attempts), (Some(21611), 1), "one attempt, no retry");
    assert_eq!(done.send_attempts[0].outcome, AttemptOutcome::Permanent);

    let accepted = app.send_ok(text_message(lapsed)).await.id;
    let done = app.wait_for_status(accepted, Expired).await;
    assert_eq!(done.message.error_code, Some(30036));
    let last = done.history.last().unwrap();
    assert_eq!((last.status, last.source, last.error_code), (Expired, StatusSource::Callback, Some(30036)));
    app.drain().await;
    assert_eq!(app.emulator.counters().created_to(queue_full), 0);
    app.finish().await;
}

#[tokio::test]
async fn a_lost_answer_past_the_validity_expires_once_twilio_is_found_not_to_have_it() {
    let app = TestApp::spawn_with(TestOptions { vars: vec![("MAX_ATTEMPTS", "1000".into())], ..Default::default() }).await;
    let phone = "+14155550165";
    app.open_window(phone);
    // 500s: each attempt's outcome is unknown, so every claim asks Twilio before sending again.
    app.emulator.set_behaviour(phone, Behaviour { server_error_first: 100_000, ..Default::default() });
    let id = app.send_ok(json!({"to": phone, "body": "only useful now", "validity_s": 1})).await.id;
    let done = app.wait_for_status(id, Expired).await;
    assert_eq!(done.message.error_code, Some(30036));
    let outcomes: Vec<AttemptOutcome> = done.send_attempts.iter().map(|a| a.outcome).collect();
    assert!(outcomes.iter().all(|o| *o == AttemptOutcome::Lost), "every attempt was asked about, none left unknown: {outcomes:?}");
    app.drain().await;
    let rejected = app.emulator.counters().creates_rejected_500;
    assert_eq!(rejected as usize, outcomes.len(), "nothing sent after it expired");
    app.finish().await;
}
