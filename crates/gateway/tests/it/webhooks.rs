//! Twilio's webhooks against the real application: signatures, incoming messages, contacts,
//! STOP/START, callbacks that arrive before the SID is known, replays.

use std::time::Duration;

use twilio_emulator::{Behaviour, InboundMessage, RestError};
use whatsapp_gateway::domain::{AttemptOutcome, Direction, MessageSid, MessageStatus, PhoneNumber, StatusSource};
use whatsapp_gateway::http::problem::ProblemDetails;

use crate::helpers::{SENDER, TestApp, TestOptions, pairs, post_form, sign, status_params, text_message};

const SID: &str = "SM0123456789abcdef0123456789abcdef";

fn phone(text: &str) -> PhoneNumber {
    PhoneNumber::parse(text).unwrap()
}

#[tokio::test]
async fn unsigned_or_wrongly_signed_webhooks_are_403_and_store_nothing() {
    let app = TestApp::spawn().await;
    let inbound = pairs(&[
        ("MessageSid", SID),
        ("From", "whatsapp:+14155550140"),
        ("To", "whatsapp:+14155238886"),
        ("Body", "hi"),
        ("ProfileName", "Eve"),
    ]);
    let callback = status_params(SID, "delivered");
    let wrong_token = twilio_signature::compute(b"not-the-token", &app.url("/api/v1/whatsapp/webhook"), &inbound);
    let mut tampered = inbound.clone();
    tampered[3].1 = "tampered".into();
    let cases = [
        ("/api/v1/whatsapp/webhook", inbound.clone(), None),
        ("/api/v1/whatsapp/webhook", inbound.clone(), Some(wrong_token)),
        ("/api/v1/whatsapp/webhook", tampered, Some(sign(&app, "/api/v1/whatsapp/webhook", &inbound))),
        ("/api/v1/whatsapp/webhook", inbound.clone(), Some(sign(&app, "/api/v1/whatsapp/status", &inbound))),
        ("/api/v1/whatsapp/status", callback.clone(), None),
        ("/api/v1/whatsapp/status", callback.clone(), Some("AAAAAAAAAAAAAAAAAAAAAAAAAAA=".into())),
    ];
    for (path, params, signature) in cases {
        let response = post_form(&app, path, &params, signature.clone()).await;
        assert_eq!(response.status(), 403, "{path} {signature:?}");
        let text = response.text().await.unwrap();
        let body: ProblemDetails = serde_json::from_str(&text).unwrap();
        assert!(body.detail.contains(&app.url(path)), "the problem names the URL checked: {body:?}");
        assert!(!text.contains(app.emulator.auth_token()), "never the token");
    }
    assert_eq!(app.messages("").await.messages.len(), 0, "nothing stored");
    let store = app.reopen_store().await;
    assert_eq!(store.contact(&phone("+14155550140")).await.unwrap(), None);
    assert_eq!(app.metrics("").await.totals.total, 0);
    // The correctly signed one goes through.
    let ok = post_form(&app, "/api/v1/whatsapp/webhook", &inbound, Some(sign(&app, "/api/v1/whatsapp/webhook", &inbound))).await;
    assert_eq!(ok.status(), 200);
    assert_eq!(app.messages("?direction=inbound").await.messages.len(), 1);
    store.close().await;
    app.finish().await;
}

#[tokio::test]
async fn incoming_message_is_stored_once_and_updates_the_contact() {
    let app = TestApp::spawn().await;
    let delivery = app
        .emulator
        .inject_inbound(InboundMessage {
            from: "+14155550141".into(),
            body: "hello there".into(),
            profile_name: Some("Ada".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(delivery.status, 200);
    assert_eq!(delivery.body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response />");
    let store = app.reopen_store().await;
    let contact = store.contact(&phone("+14155550141")).await.unwrap().unwrap();
    assert_eq!(contact.profile_name.as_deref(), Some("Ada"));
    assert_eq!(contact.wa_id.as_deref(), Some("14155550141"));
    assert!(contact.last_inbound_at.is_some());
    assert!(!contact.opted_out.0);
    let list = app.messages("?direction=inbound").await.messages;
    assert_eq!(list.len(), 1);
    assert_eq!(
        (list[0].status, list[0].body.as_deref(), list[0].direction),
        (MessageStatus::Received, Some("hello there"), Direction::Inbound)
    );
    assert_eq!(list[0].message_sid.as_ref().map(MessageSid::as_str), Some(delivery.message_sid.as_str()));
    assert_eq!((list[0].from.as_str(), list[0].to.as_str()), ("+14155550141", SENDER));

    // Twilio retrying the same webhook changes nothing.
    let params = pairs(&[
        ("MessageSid", delivery.message_sid.as_str()),
        ("From", "whatsapp:+14155550141"),
        ("To", "whatsapp:+14155238886"),
        ("Body", "hello there"),
    ]);
    let again = post_form(&app, "/api/v1/whatsapp/webhook", &params, Some(sign(&app, "/api/v1/whatsapp/webhook", &params))).await;
    assert_eq!(again.status(), 200);
    assert_eq!(app.messages("?direction=inbound").await.messages.len(), 1);
    store.close().await;
    app.finish().await;
}

#[tokio::test]
async fn twilios_21610_opts_the_recipient_out_without_opening_its_window() {
    let app = TestApp::spawn().await;
    let (number, known) = ("+14155550146", "+14155550147");
    let rest_error = RestError { status: 400, code: 21610, message: "Attempt to send to unsubscribed recipient".into() };
    for to in [number, known] {
        app.emulator.set_behaviour(to, Behaviour { rest_error: Some(rest_error.clone()), ..Default::default() });
    }
    // One recipient Twilio knows as unsubscribed has written before: its profile and window stay.
    app.emulator
        .inject_inbound(InboundMessage { from: known.into(), body: "hello".into(), profile_name: Some("Kim".into()), ..Default::default() })
        .await
        .unwrap();
    let store = app.reopen_store().await;
    let before = store.contact(&phone(known)).await.unwrap().unwrap();

    for to in [number, known] {
        let refused = app.send_ok(text_message(to)).await.id;
        let done = app.wait_for_status(refused, MessageStatus::Failed).await;
        assert_eq!((done.message.error_code, done.message.attempts), (Some(21610), 1));
    }
    let contact = store.contact(&phone(number)).await.unwrap().expect("a contact row for the recipient");
    assert!(contact.opted_out.0);
    assert_eq!(contact.last_inbound_at, None, "an opt-out Twilio reports is not a message from the contact");
    let contact = store.contact(&phone(known)).await.unwrap().unwrap();
    assert!(contact.opted_out.0);
    assert_eq!((contact.last_inbound_at, contact.profile_name.as_deref()), (before.last_inbound_at, Some("Kim")));

    // The next message is not offered to Twilio at all.
    let next = app.send_ok(text_message(number)).await.id;
    let done = app.wait_for_status(next, MessageStatus::Failed).await;
    assert_eq!((done.message.error_code, done.message.attempts), (Some(21610), 0));
    assert_eq!(app.emulator.counters().creates_rejected_4xx, 2, "one refused create per recipient, none after");
    store.close().await;
    app.finish().await;
}

#[tokio::test]
async fn stop_opts_the_contact_out_and_start_back_in() {
    let app = TestApp::spawn().await;
    let stop = app
        .emulator
        .inject_inbound(InboundMessage { from: "+14155550142".into(), body: "STOP".into(), ..Default::default() })
        .await
        .unwrap();
    assert!(stop.body.contains("<Message>You have been unsubscribed"), "{}", stop.body);
    let store = app.reopen_store().await;
    assert!(store.contact(&phone("+14155550142")).await.unwrap().unwrap().opted_out.0);
    let id = app.send_ok(text_message("+14155550142")).await.id;
    let done = app.wait_for_status(id, MessageStatus::Failed).await;
    assert_eq!((done.message.error_code, done.message.attempts), (Some(21610), 0), "nothing was sent to Twilio");
    assert_eq!(app.emulator.counters().created_to("+14155550142"), 0);

    let start = app
        .emulator
        .inject_inbound(InboundMessage { from: "+14155550142".into(), body: "start".into(), ..Default::default() })
        .await
        .unwrap();
    assert!(start.body.contains("subscribed again"));
    assert!(!store.contact(&phone("+14155550142")).await.unwrap().unwrap().opted_out.0);
    let id = app.send_ok(text_message("+14155550142")).await.id;
    app.wait_for_status(id, MessageStatus::Read).await;
    store.close().await;
    app.finish().await;
}

#[tokio::test]
async fn auto_reply_answers_with_twiml() {
    let app =
        TestApp::spawn_with(TestOptions { vars: vec![("AUTO_REPLY_TEXT", "Thanks <3 we'll answer soon".into())], ..Default::default() })
            .await;
    let delivery = app
        .emulator
        .inject_inbound(InboundMessage { from: "+14155550143".into(), body: "question".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(
        delivery.body,
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>Thanks &lt;3 we&apos;ll answer soon</Message></Response>"
    );
    app.finish().await;
}

#[tokio::test]
async fn callback_for_an_unknown_sid_is_kept_until_the_sid_is_recorded() {
    let app = TestApp::spawn().await;
    let params = status_params(SID, "delivered");
    let response = post_form(&app, "/api/v1/whatsapp/status", &params, Some(sign(&app, "/api/v1/whatsapp/status", &params))).await;
    assert_eq!(response.status(), 200, "acknowledged: it is stored to apply later");

    // A message whose send is recorded by hand, as a worker would after Twilio's answer.
    let store = app.reopen_store().await;
    let (id, attempt) = crate::support::in_flight(&store, "+14155550144", "test-worker").await;
    store.record_accepted(id, "test-worker", attempt, MessageSid::parse(SID).unwrap(), false).await.unwrap();

    let status = app.delivery_status(id).await;
    assert_eq!(status.message.status, MessageStatus::Delivered);
    let last = status.history.last().unwrap();
    assert_eq!((last.source, last.detail.as_deref()), (StatusSource::Callback, Some("arrived before the SID was recorded")));
    let again = post_form(&app, "/api/v1/whatsapp/status", &params, Some(sign(&app, "/api/v1/whatsapp/status", &params))).await;
    assert_eq!(again.status(), 200);
    assert_eq!(app.delivery_status(id).await.history.len(), status.history.len(), "the repeated callback is not logged again");
    assert_eq!(app.metrics("").await.totals.delivered, 1, "nor counted twice");
    assert_eq!(store.attempts(id).await.unwrap()[0].outcome, AttemptOutcome::Accepted);
    store.close().await;
    app.finish().await;
}

#[tokio::test]
async fn a_replayed_callback_is_acknowledged_and_neither_applied_nor_logged_again() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550145");
    let id = app.send_ok(text_message("+14155550145")).await.id;
    let done = app.wait_for_status(id, MessageStatus::Read).await;
    app.drain().await;
    let sid = done.message.message_sid.unwrap();
    let logged = app.delivery_status(id).await.history.len();

    // An attacker (or Twilio retrying) replays a captured, validly signed callback, long after.
    let params = status_params(sid.as_str(), "delivered");
    let signature = sign(&app, "/api/v1/whatsapp/status", &params);
    for token in ["b9f3a2c4-0000-4000-8000-000000000001", "b9f3a2c4-0000-4000-8000-000000000002"] {
        let response = app
            .http
            .post(app.url("/api/v1/whatsapp/status"))
            .header("X-Twilio-Signature", &signature)
            .header("I-Twilio-Idempotency-Token", token)
            .form(&params)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let after = app.delivery_status(id).await;
    assert_eq!(after.message.status, MessageStatus::Read);
    assert_eq!(after.history.len(), logged, "a callback with a status already received is not logged again");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("result=\"duplicate\""), "{metrics}");
    assert_eq!(app.metrics("").await.totals.delivered, 1, "counted once");
    tokio::time::sleep(Duration::ZERO).await;
    app.finish().await;
}

#[tokio::test]
async fn every_status_twilio_reports_is_logged_and_none_moves_a_message_back() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550146");
    let id = app.send_ok(text_message("+14155550146")).await.id;
    let done = app.wait_for_status(id, MessageStatus::Read).await;
    app.drain().await;
    let sid = done.message.message_sid.unwrap();
    let logged = done.history.len();

    let late = ["accepted", "scheduled", "partially_delivered", "receiving", "received"];
    for status in late.into_iter().chain(["bogus"]) {
        let params = status_params(sid.as_str(), status);
        let response = post_form(&app, "/api/v1/whatsapp/status", &params, Some(sign(&app, "/api/v1/whatsapp/status", &params))).await;
        assert_eq!(response.status(), 200, "{status}");
    }
    let after = app.delivery_status(id).await;
    assert_eq!(after.message.status, MessageStatus::Read);
    let new: Vec<_> = after.history[logged..].iter().map(|e| (e.status.as_str(), e.applied, e.source)).collect();
    let expected: Vec<_> = late.iter().map(|s| (*s, false, StatusSource::Callback)).collect();
    assert_eq!(new, expected, "each understood and logged, none applied; the unknown one is not logged");
    app.finish().await;
}
