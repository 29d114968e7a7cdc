//! Twilio's policy codes as actions: a number Twilio refuses for good (21211, 21614, 63024, from
//! the create or from a callback) is suppressed — its phone health `failing`, later sends refused
//! with a 422 unless forced — until the contact writes.

use serde_json::json;
use twilio_emulator::{Behaviour, Failure, InboundMessage, RestError};
use whatsapp_gateway::domain::{MessageStatus, PhoneHealth};
use whatsapp_gateway::http::dto::metrics::PhonePerformanceView;

use crate::helpers::{TestApp, field_errors, problem, text_message};

async fn performance(app: &TestApp, phone: &str) -> PhonePerformanceView {
    app.get_ok(&format!("/api/v1/whatsapp/phones/{}/performance", phone.replace('+', "%2B"))).await
}

#[tokio::test]
async fn a_number_twilio_refuses_for_good_is_suppressed_until_the_contact_writes() {
    let app = TestApp::spawn().await;
    let refused = [("+14155550181", Some(21211)), ("+14155550182", Some(21614)), ("+14155550183", None)];
    for (phone, code) in refused {
        app.open_window(phone);
        let behaviour = match code {
            Some(code) => Behaviour { rest_error: Some(RestError { status: 400, code, message: String::new() }), ..Default::default() },
            // 63024 comes in the callback: the create is accepted, then the message fails.
            None => Behaviour { fail: Some(Failure::failed(63024)), ..Default::default() },
        };
        app.emulator.set_behaviour(phone, behaviour);
        let id = app.send_ok(text_message(phone)).await.id;
        app.wait_for_status(id, MessageStatus::Failed).await;
        let code = code.unwrap_or(63024);
        let health = performance(&app, phone).await;
        assert_eq!((health.health, health.suppressed_code), (PhoneHealth::Failing, Some(i64::from(code))), "{health:#?}");
        assert!(health.suppressed_at.is_some());

        let (status, body) = problem(app.send(text_message(phone)).await).await;
        assert_eq!(status, 422, "{body:?}");
        let errors = field_errors(&body);
        assert_eq!(errors[0].0, "to");
        assert!(errors[0].1.contains(&format!("Twilio refused this number with {code}")), "{}", errors[0].1);
        assert!(errors[0].1.contains("\"force\": true"), "{}", errors[0].1);
    }

    // Forced, a send is tried (and refused by Twilio again).
    let (phone, _) = refused[0];
    let creates = app.emulator.counters().creates_rejected_4xx;
    let forced = app.send_ok(json!({"to": phone, "body": "are you there?", "force": true})).await.id;
    let done = app.wait_for_status(forced, MessageStatus::Failed).await;
    assert_eq!(done.message.error_code, Some(21211));
    assert_eq!(app.emulator.counters().creates_rejected_4xx, creates + 1);

    // A message from the contact shows the number works: no longer suppressed.
    app.emulator.set_behaviour(phone, Behaviour::default());
    let hello = InboundMessage { from: phone.into(), body: "it is me".into(), ..Default::default() };
    assert_eq!(app.emulator.inject_inbound(hello).await.unwrap().status, 200);
    assert_eq!(performance(&app, phone).await.suppressed_code, None);
    let id = app.send_ok(text_message(phone)).await.id;
    app.wait_for_status(id, MessageStatus::Read).await;
    app.finish().await;
}

#[tokio::test]
async fn other_permanent_errors_do_not_suppress_the_number() {
    let app = TestApp::spawn().await;
    let phone = "+14155550184";
    app.open_window(phone);
    app.emulator.set_behaviour(phone, Behaviour { fail: Some(Failure::undelivered(30003)), ..Default::default() });
    let id = app.send_ok(text_message(phone)).await.id;
    app.wait_for_status(id, MessageStatus::Undelivered).await;
    assert_eq!(performance(&app, phone).await.suppressed_code, None);
    app.send_ok(text_message(phone)).await;
    app.finish().await;
}

#[tokio::test]
async fn a_marketing_message_meta_holds_back_waits_hours_but_never_for_a_us_number() {
    let app = TestApp::spawn().await;
    // A UK and a US recipient: Meta's per-user marketing limit (63049) for both.
    let (uk, us) = ("+447911123456", "+14155575555");
    for to in [uk, us] {
        let limit = RestError { status: 400, code: 63049, message: "Meta chose not to deliver this message".into() };
        app.emulator.set_behaviour(to, Behaviour { rest_error: Some(limit), ..Default::default() });
        app.open_window(to);
    }
    let held = app.send_ok(text_message(uk)).await;
    let refused = app.send_ok(text_message(us)).await;
    let us_status = app.wait_for_status(refused.id, MessageStatus::Failed).await;
    assert_eq!(us_status.message.error_code, Some(63049));
    let uk_status = app.wait_for_status(held.id, MessageStatus::Retrying).await;
    assert_eq!(uk_status.message.error_code, Some(63049));
    let next =
        time::OffsetDateTime::parse(uk_status.message.next_attempt_at.as_deref().unwrap(), &time::format_description::well_known::Rfc3339)
            .unwrap();
    let wait = next - time::OffsetDateTime::now_utc();
    assert!(wait > time::Duration::minutes(55) && wait <= time::Duration::minutes(60), "tried again in {wait}");
    assert_eq!(app.emulator.counters().creates_rejected_4xx, 2, "one try each so far");
    app.finished_without_checks();
}
