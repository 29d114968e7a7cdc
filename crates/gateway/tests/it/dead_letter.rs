//! Dead letters you can act on: a message the gateway gave up on is `dead_lettered`, listed as
//! such, and redriven one by one or by filter, each redrive in its history, with a fresh
//! allowance of attempts and its failure taken out of the metrics.

use serde_json::Value;
use twilio_emulator::Behaviour;
use whatsapp_gateway::domain::{MessageStatus, StatusSource};
use whatsapp_gateway::http::dto::{MessageResource, RedriveResult};

use crate::helpers::{TestApp, TestOptions, applied_history, field_errors, post_form, problem, sign, status_params, text_message};

use MessageStatus::{DeadLettered, Pending, Read};

async fn post(app: &TestApp, path: &str) -> reqwest::Response {
    app.http.post(app.url(path)).bearer_auth(&app.token).send().await.unwrap()
}

async fn redrive(app: &TestApp, id: impl std::fmt::Display) -> reqwest::Response {
    post(app, &format!("/api/v1/whatsapp/messages/{id}/retry")).await
}

fn spawn_options(max_attempts: u32) -> TestOptions {
    TestOptions { vars: vec![("MAX_ATTEMPTS", max_attempts.to_string())], ..Default::default() }
}

#[tokio::test]
async fn a_dead_letter_is_listed_then_redriven_with_a_fresh_allowance_and_no_longer_counted_failed() {
    let app = TestApp::spawn_with(spawn_options(2)).await;
    let (dead_phone, good_phone) = ("+14155550131", "+14155550132");
    app.open_window(dead_phone);
    app.open_window(good_phone);
    // Two 500s use up both attempts; the third create (after the redrive) goes through.
    app.emulator.set_behaviour(dead_phone, Behaviour { server_error_first: 2, ..Default::default() });
    let id = app.send_ok(text_message(dead_phone)).await.id;
    let good = app.send_ok(text_message(good_phone)).await.id;

    let dead = app.wait_for_status(id, DeadLettered).await;
    assert_eq!(dead.message.attempts, 2);
    assert!(dead.message.failed_at.is_some(), "{:#?}", dead.message);
    let last = dead.history.last().unwrap();
    assert_eq!((last.status, last.source), (DeadLettered, StatusSource::Worker));
    assert!(last.detail.as_deref().unwrap().contains("dead-lettered after 2 attempts"), "{last:?}");
    let listed = app.messages("?status=dead_lettered").await;
    assert_eq!(listed.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [id]);
    app.wait_for_status(good, Read).await;
    let t = app.metrics("").await.totals;
    assert_eq!((t.total, t.failed, t.read), (2, 1, 1), "a dead letter counts as failed");

    // Only a dead letter can be redriven; the problem says what the message is instead.
    let (status, body) = problem(redrive(&app, good).await).await;
    assert_eq!(status, 409);
    assert!(body.detail.contains("only a dead-lettered message") && body.detail.contains("read"), "{body:?}");
    let (status, _) = problem(redrive(&app, uuid::Uuid::new_v4()).await).await;
    assert_eq!(status, 404);
    let (status, body) = problem(post(&app, "/api/v1/whatsapp/messages/not-an-id/retry").await).await;
    assert_eq!((status, field_errors(&body)[0].0.as_str()), (422, "id"));

    let response = redrive(&app, id).await;
    assert_eq!(response.status(), 200);
    let redriven: MessageResource = response.json().await.unwrap();
    assert_eq!((redriven.status, redriven.failed_at.as_deref(), redriven.error_code), (Pending, None, None));

    let done = app.wait_for_status(id, Read).await;
    assert_eq!(done.message.attempts, 3, "numbering goes on after the redrive");
    assert_eq!(done.send_attempts.iter().map(|a| a.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    let redrive_entry = done.history.iter().find(|e| e.previous_status == Some(DeadLettered)).expect("the redrive is in the history");
    assert_eq!((redrive_entry.status, redrive_entry.source, redrive_entry.applied), (Pending, StatusSource::Api, true));
    assert!(redrive_entry.detail.as_deref().unwrap().contains("redriven after 2 attempts"), "{redrive_entry:?}");
    assert!(applied_history(&done).ends_with(&[
        DeadLettered,
        Pending,
        MessageStatus::Queued,
        MessageStatus::Sent,
        MessageStatus::Delivered,
        Read
    ]));
    app.drain().await;
    let t = app.metrics("").await.totals;
    assert_eq!((t.total, t.failed, t.delivered, t.read), (2, 0, 2, 2), "the failure left the metrics when the message was redriven");
    assert_eq!(app.emulator.counters().created_to(dead_phone), 1, "created once, after the redrive");

    let (status, body) = problem(redrive(&app, id).await).await;
    assert_eq!(status, 409, "a second redrive finds it read: {body:?}");
    app.finish().await;
}

#[tokio::test]
async fn a_redriven_message_that_fails_again_dead_letters_after_its_new_allowance() {
    let app = TestApp::spawn_with(spawn_options(1)).await;
    let phone = "+14155550133";
    app.open_window(phone);
    app.emulator.set_behaviour(phone, Behaviour { server_error_first: 100, ..Default::default() });
    let id = app.send_ok(text_message(phone)).await.id;
    app.wait_for_status(id, DeadLettered).await;
    assert_eq!(redrive(&app, id).await.status(), 200);
    // The redrive answered `pending`, so this waits for the second dead letter.
    let again = app.wait_for(id, |s| s == DeadLettered).await;
    assert_eq!(again.message.attempts, 2, "one more attempt, the new allowance: {:#?}", again.history);
    assert_eq!(again.history.iter().filter(|e| e.applied && e.status == DeadLettered).count(), 2);
    app.drain().await;
    assert_eq!(app.emulator.counters().creates_rejected_500, 2);
    app.finish().await;
}

#[tokio::test]
async fn bulk_redrive_sends_again_only_the_dead_letters_its_filter_matches() {
    let app = TestApp::spawn_with(spawn_options(1)).await;
    let (a, b) = ("+14155550134", "+14155550135");
    // One 500 per message: two to `a`, one to `b`.
    for (phone, errors) in [(a, 2), (b, 1)] {
        app.open_window(phone);
        app.emulator.set_behaviour(phone, Behaviour { server_error_first: errors, ..Default::default() });
    }
    let ids = [app.send_ok(text_message(a)).await.id, app.send_ok(text_message(a)).await.id, app.send_ok(text_message(b)).await.id];
    for id in ids {
        app.wait_for_status(id, DeadLettered).await;
    }

    for (query, field) in [("limit=0", "limit"), ("limit=1001", "limit"), ("phone=12", "phone"), ("from=yesterday", "from")] {
        let (status, body) = problem(post(&app, &format!("/api/v1/whatsapp/messages/retry?{query}")).await).await;
        assert_eq!((status, field_errors(&body)[0].0.as_str()), (422, field), "{query}: {body:?}");
    }

    let response = post(&app, &format!("/api/v1/whatsapp/messages/retry?phone={}", a.replace('+', "%2B"))).await;
    assert_eq!(response.status(), 200);
    let result: RedriveResult = response.json().await.unwrap();
    assert_eq!(result.redriven, 2);
    let mut redriven: Vec<_> = result.messages.iter().map(|m| m.id).collect();
    redriven.sort();
    let mut expected = ids[..2].to_vec();
    expected.sort();
    assert_eq!(redriven, expected);
    assert!(result.messages.iter().all(|m| m.status == Pending));
    for id in &ids[..2] {
        app.wait_for_status(*id, Read).await;
    }
    assert_eq!(app.delivery_status(ids[2]).await.message.status, DeadLettered, "another recipient's dead letter stays");

    let nothing: Value =
        post(&app, &format!("/api/v1/whatsapp/messages/retry?phone={}", a.replace('+', "%2B"))).await.json().await.unwrap();
    assert_eq!(nothing["redriven"], 0);
    let rest: RedriveResult = post(&app, "/api/v1/whatsapp/messages/retry?limit=10").await.json().await.unwrap();
    assert_eq!(rest.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [ids[2]]);
    app.wait_for_status(ids[2], Read).await;
    app.drain().await;
    assert_eq!(app.metrics("").await.totals.failed, 0);
    app.finish().await;
}

#[tokio::test]
async fn a_dead_letter_twilio_has_since_reported_on_is_not_redriven() {
    let app = TestApp::spawn_with(spawn_options(1)).await;
    let phone = "+14155550136";
    app.open_window(phone);
    app.emulator.set_behaviour(phone, Behaviour { server_error_first: 1, ..Default::default() });
    let id = app.send_ok(text_message(phone)).await.id;
    app.wait_for_status(id, DeadLettered).await;

    // Twilio had it after all: a callback names the message (by our id) and a SID.
    let path = format!("/api/v1/whatsapp/status?mid={id}");
    let params = status_params("SM0123456789abcdef0123456789abcdef", "sent");
    let response = post_form(&app, &path, &params, Some(sign(&app, &path, &params))).await;
    assert_eq!(response.status(), 200);

    let (status, body) = problem(redrive(&app, id).await).await;
    assert_eq!(status, 409);
    assert!(body.detail.contains("Twilio has since reported on it"), "{body:?}");
    assert_eq!(app.delivery_status(id).await.message.status, DeadLettered);
    app.finish().await;
}
