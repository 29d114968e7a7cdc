//! Withdrawing messages Twilio does not have yet: `POST …/messages/{id}/cancel`, and a STOP from
//! the contact canceling what waits for it.

use std::time::Duration;

use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use twilio_emulator::InboundMessage;
use whatsapp_gateway::domain::{MessageStatus, StatusSource};
use whatsapp_gateway::http::dto::MessageResource;

use crate::helpers::{TestApp, field_errors, problem, text_message};

use MessageStatus::{Canceled, Pending, Read};

async fn cancel(app: &TestApp, id: impl std::fmt::Display) -> reqwest::Response {
    app.http.post(app.url(&format!("/api/v1/whatsapp/messages/{id}/cancel"))).bearer_auth(&app.token).send().await.unwrap()
}

fn in_seconds(seconds: i64) -> String {
    (OffsetDateTime::now_utc() + time::Duration::seconds(seconds)).format(&Rfc3339).unwrap()
}

#[tokio::test]
async fn a_scheduled_message_canceled_is_never_sent_and_counted_nowhere() {
    let app = TestApp::spawn().await;
    let (phone, other) = ("+14155550151", "+14155550152");
    app.open_window(phone);
    app.open_window(other);
    let scheduled = app.send_ok(json!({"to": phone, "body": "later", "send_at": in_seconds(2)})).await.id;
    let response = cancel(&app, scheduled).await;
    assert_eq!(response.status(), 200);
    let canceled: MessageResource = response.json().await.unwrap();
    assert_eq!((canceled.status, canceled.next_attempt_at.as_deref()), (Canceled, None));

    let view = app.delivery_status(scheduled).await;
    let last = view.history.last().unwrap();
    assert_eq!((last.previous_status, last.status, last.source, last.applied), (Some(Pending), Canceled, StatusSource::Api, true));
    assert_eq!(last.detail.as_deref(), Some("canceled by the application"));
    assert_eq!(app.messages("?status=canceled").await.messages.iter().map(|m| m.id).collect::<Vec<_>>(), [scheduled]);

    let (status, body) = problem(cancel(&app, scheduled).await).await;
    assert_eq!(status, 409, "{body:?}");
    assert!(body.detail.contains("is canceled"), "{body:?}");
    let sent = app.send_ok(text_message(other)).await.id;
    app.wait_for_status(sent, Read).await;
    let (status, body) = problem(cancel(&app, sent).await).await;
    assert_eq!(status, 409);
    assert!(body.detail.contains("only a message Twilio does not have yet") && body.detail.contains("read"), "{body:?}");
    assert_eq!(problem(cancel(&app, uuid::Uuid::new_v4()).await).await.0, 404);
    let (status, body) = problem(cancel(&app, "12").await).await;
    assert_eq!((status, field_errors(&body)[0].0.as_str()), (422, "id"));

    // Past its send_at, it stays canceled and unsent.
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    app.drain().await;
    assert_eq!(app.delivery_status(scheduled).await.message.status, Canceled);
    assert_eq!(app.emulator.counters().created_to(phone), 0);
    let t = app.metrics("").await.totals;
    assert_eq!((t.total, t.failed, t.read), (1, 0, 1), "a canceled message counts nowhere");
    app.finish().await;
}

#[tokio::test]
async fn stop_cancels_what_waits_for_the_contact_and_nothing_else() {
    let app = TestApp::spawn().await;
    let (stopping, other) = ("+14155550153", "+14155550154");
    let waiting = [
        app.send_ok(json!({"to": stopping, "body": "tomorrow", "send_at": in_seconds(3_600)})).await.id,
        app.send_ok(json!({"to": stopping, "body": "later", "send_at": in_seconds(600)})).await.id,
    ];
    let untouched = app.send_ok(json!({"to": other, "body": "later", "send_at": in_seconds(600)})).await.id;

    let stop =
        app.emulator.inject_inbound(InboundMessage { from: stopping.into(), body: "STOP".into(), ..Default::default() }).await.unwrap();
    assert!(stop.body.contains("unsubscribed"), "{}", stop.body);
    // The webhook is answered after its batch committed: the cancels are in it.
    for id in waiting {
        let view = app.delivery_status(id).await;
        assert_eq!(view.message.status, Canceled, "{view:#?}");
        assert_eq!(view.history.last().unwrap().detail.as_deref(), Some("canceled: the recipient opted out (STOP)"));
    }
    assert_eq!(app.delivery_status(untouched).await.message.status, Pending);
    assert_eq!(cancel(&app, untouched).await.status(), 200);
    app.finish().await;
}
