//! WhatsApp's 24-hour customer service window, checked before sending
//! (`WHATSAPP_WINDOW_CHECK`, on by default): free-form content for a contact who has not written
//! in the last 24 hours is refused at the API (422 naming `to`), or sent as the request's
//! `fallback` template; a message that becomes due after its contact's window closed is checked
//! again when claimed.

use serde_json::{Value, json};
use twilio_emulator::InboundMessage;
use whatsapp_gateway::domain::MessageStatus;

use crate::helpers::{TestApp, TestOptions, field_errors, problem};

const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";

async fn checking() -> TestApp {
    TestApp::spawn_with(TestOptions { vars: vec![("WHATSAPP_WINDOW_CHECK", "true".into())], ..Default::default() }).await
}

async fn writes(app: &TestApp, phone: &str) {
    let inbound = InboundMessage { from: phone.into(), body: "hello".into(), ..Default::default() };
    assert_eq!(app.emulator.inject_inbound(inbound).await.unwrap().status, 200);
}

fn in_two_seconds() -> String {
    (time::OffsetDateTime::now_utc() + time::Duration::seconds(2)).format(&time::format_description::well_known::Rfc3339).unwrap()
}

#[tokio::test]
async fn free_form_outside_the_window_is_refused_or_sent_as_its_fallback() {
    let app = checking().await;
    let (stranger, customer) = ("+14155550171", "+14155550172");
    let (status, body) = problem(app.send(json!({"to": stranger, "body": "hi"})).await).await;
    assert_eq!(status, 422);
    let errors = field_errors(&body);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].0, "to");
    assert!(errors[0].1.starts_with("outside the 24-hour window (the contact has never written)"), "{}", errors[0].1);
    assert!(errors[0].1.contains("`fallback`"), "{}", errors[0].1);
    assert!(app.messages("").await.messages.is_empty(), "nothing was stored");

    // A template may go at any time; free-form content with a fallback goes as the fallback.
    let template = app.send_ok(json!({"to": stranger, "content_sid": TEMPLATE})).await.id;
    let fallback = json!({"content_sid": TEMPLATE, "content_variables": {"1": "Ada"}});
    let sent = app.send_ok(json!({"to": stranger, "body": "Your order shipped", "fallback": fallback})).await;
    assert_eq!(sent.content_sid.as_deref(), Some(TEMPLATE));
    assert_eq!(sent.fallback_content_sid.as_deref(), Some(TEMPLATE));
    assert_eq!(sent.body.as_deref(), Some("Your order shipped"), "the text is kept with the message");
    for id in [template, sent.id] {
        app.wait_for_status(id, MessageStatus::Read).await;
    }
    let history = app.delivery_status(sent.id).await.history;
    let detail = history[0].detail.as_deref().unwrap_or_default();
    assert!(detail.contains("to be sent as its fallback template HX0123456789abcdef0123456789abcdef"), "{detail}");

    // Once the contact writes, free-form content goes as it is, fallback or not.
    writes(&app, customer).await;
    let plain = app.send_ok(json!({"to": customer, "body": "Thanks for writing", "fallback": {"content_sid": TEMPLATE}})).await;
    assert_eq!(plain.content_sid, None);
    app.wait_for_status(plain.id, MessageStatus::Read).await;
    app.finish().await;
}

#[tokio::test]
async fn a_message_due_after_the_window_closed_goes_as_its_fallback_or_fails_unsent() {
    let app = checking().await;
    let phone = "+14155550173";
    writes(&app, phone).await;
    let plain = app.send_ok(json!({"to": phone, "body": "see you tomorrow", "send_at": in_two_seconds()})).await.id;
    let with_fallback = app
        .send_ok(json!({"to": phone, "body": "see you tomorrow", "send_at": in_two_seconds(), "fallback": {"content_sid": TEMPLATE}}))
        .await
        .id;
    // The contact's last message is now 25 hours old.
    app.execute_sql(&format!("UPDATE contacts SET last_inbound_at = last_inbound_at - 90000000 WHERE phone = '{phone}'")).await;

    let failed = app.wait_for_status(plain, MessageStatus::Failed).await;
    assert_eq!((failed.message.error_code, failed.message.attempts), (Some(63016), 0), "never offered to Twilio");
    let last = failed.history.last().unwrap();
    assert!(last.detail.as_deref().unwrap_or_default().contains("and it has no fallback template"), "{last:?}");

    let read = app.wait_for_status(with_fallback, MessageStatus::Read).await;
    assert_eq!(read.message.content_sid.as_deref(), Some(TEMPLATE));
    let switched = read.history.iter().find(|h| h.detail.as_deref().is_some_and(|d| d.contains("sent as its fallback template")));
    assert!(switched.is_some_and(|h| !h.applied), "{:#?}", read.history);
    app.drain().await;
    assert_eq!(app.emulator.counters().created_to(phone), 1, "only the fallback template was created");
    app.finish().await;
}

#[tokio::test]
async fn a_fallback_is_checked_like_a_template_and_only_goes_with_free_form_content() {
    let app = checking().await;
    let cases: [(Value, &[&str]); 3] = [
        (json!({"to": "+14155550174", "body": "x", "fallback": {"content_sid": "HX12"}}), &["fallback.content_sid"]),
        (
            json!({"to": "+14155550174", "body": "x", "fallback": {"content_sid": TEMPLATE, "content_variables": 3}}),
            &["fallback.content_variables"],
        ),
        (json!({"to": "+14155550174", "content_sid": TEMPLATE, "fallback": {"content_sid": TEMPLATE}}), &["fallback"]),
    ];
    for (request, fields) in cases {
        let (status, body) = problem(app.send(request.clone()).await).await;
        assert_eq!(status, 422, "{request}");
        let got: Vec<String> = field_errors(&body).into_iter().map(|(field, _)| field).collect();
        assert_eq!(got, *fields, "{request}");
    }
    let (status, _) = problem(app.send(json!({"to": "+14155550174", "body": "x", "fallback": {"sid": TEMPLATE}})).await).await;
    assert_eq!(status, 422, "unknown fallback fields are refused");
    app.finish().await;
}
