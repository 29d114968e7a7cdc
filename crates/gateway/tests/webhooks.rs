//! Twilio's webhooks against the real application: signatures, incoming messages, contacts,
//! STOP/START, callbacks that arrive before the SID is known.

mod common;

use common::{TestApp, text_message};
use serde_json::json;
use twilio_emulator::InboundMessage;

const SID: &str = "SM0123456789abcdef0123456789abcdef";

fn status_params(sid: &str, status: &str) -> Vec<(String, String)> {
    [
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("AccountSid", "AC00000000000000000000000000000000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

async fn post_form(app: &TestApp, path: &str, params: &[(String, String)], signature: Option<String>) -> reqwest::Response {
    let mut request = app.http.post(app.url(path)).form(params);
    if let Some(signature) = signature {
        request = request.header("X-Twilio-Signature", signature);
    }
    request.send().await.unwrap()
}

fn sign(app: &TestApp, path: &str, params: &[(String, String)]) -> String {
    twilio_signature::compute(app.emulator.auth_token().as_bytes(), &app.url(path), params)
}

#[tokio::test]
async fn unsigned_or_wrongly_signed_webhooks_are_403_and_store_nothing() {
    let app = TestApp::spawn().await;
    let inbound: Vec<(String, String)> =
        [("MessageSid", SID), ("From", "whatsapp:+14155550140"), ("To", "whatsapp:+14155238886"), ("Body", "hi"), ("ProfileName", "Eve")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
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
        let body: serde_json::Value = response.json().await.unwrap();
        assert!(body["detail"].as_str().unwrap().contains(&app.url(path)), "the problem names the URL checked: {body}");
        assert!(!body.to_string().contains(app.emulator.auth_token()), "never the token");
    }
    let (_, list) = app.get_json("/api/v1/whatsapp/messages").await;
    assert_eq!(list["messages"].as_array().unwrap().len(), 0, "nothing stored");
    assert!(app.gateway.store().contact("+14155550140").await.unwrap().is_none());
    let metrics = app.metrics("").await;
    assert_eq!(metrics["totals"]["total"], 0);
    // The correctly signed one goes through.
    let ok = post_form(&app, "/api/v1/whatsapp/webhook", &inbound, Some(sign(&app, "/api/v1/whatsapp/webhook", &inbound))).await;
    assert_eq!(ok.status(), 200);
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
    let contact = app.gateway.store().contact("+14155550141").await.unwrap().unwrap();
    assert_eq!(contact.profile_name.as_deref(), Some("Ada"));
    assert_eq!(contact.wa_id.as_deref(), Some("14155550141"));
    assert!(contact.last_inbound_at.is_some());
    assert!(!contact.opted_out);
    let (_, list) = app.get_json("/api/v1/whatsapp/messages?direction=inbound").await;
    let messages = list["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 1);
    assert_eq!((messages[0]["status"].as_str(), messages[0]["body"].as_str()), (Some("received"), Some("hello there")));
    assert_eq!(messages[0]["message_sid"], delivery.message_sid.as_str());

    // Twilio retrying the same webhook changes nothing.
    let params: Vec<(String, String)> = [
        ("MessageSid", delivery.message_sid.as_str()),
        ("From", "whatsapp:+14155550141"),
        ("To", "whatsapp:+14155238886"),
        ("Body", "hello there"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    let again = post_form(&app, "/api/v1/whatsapp/webhook", &params, Some(sign(&app, "/api/v1/whatsapp/webhook", &params))).await;
    assert_eq!(again.status(), 200);
    let (_, list) = app.get_json("/api/v1/whatsapp/messages?direction=inbound").await;
    assert_eq!(list["messages"].as_array().unwrap().len(), 1);
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
    assert!(app.gateway.store().contact("+14155550142").await.unwrap().unwrap().opted_out);
    let id = app.send_ok(text_message("+14155550142")).await;
    let done = app.wait_for_status(&id, "failed").await;
    assert_eq!(done["error_code"], 21610);
    assert_eq!(done["attempts"], 0, "nothing was sent to Twilio");
    assert_eq!(app.emulator.counters().created_to("+14155550142"), 0);

    let start = app
        .emulator
        .inject_inbound(InboundMessage { from: "+14155550142".into(), body: "start".into(), ..Default::default() })
        .await
        .unwrap();
    assert!(start.body.contains("subscribed again"));
    let id = app.send_ok(text_message("+14155550142")).await;
    app.wait_for_status(&id, "read").await;
}

#[tokio::test]
async fn auto_reply_answers_with_twiml() {
    let app = common::TestApp::spawn_with(common::TestOptions {
        vars: vec![("AUTO_REPLY_TEXT", "Thanks <3 we'll answer soon".into())],
        ..Default::default()
    })
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
}

#[tokio::test]
async fn callback_for_an_unknown_sid_is_kept_until_the_sid_is_recorded() {
    use whatsapp_gateway::store::{AttemptOutcome, StatusSource, now_ms};

    let app = TestApp::spawn_with(common::TestOptions { vars: vec![("WORKER_CONCURRENCY", "1".into())], ..Default::default() }).await;
    let params = status_params(SID, "delivered");
    let response = post_form(&app, "/api/v1/whatsapp/status", &params, Some(sign(&app, "/api/v1/whatsapp/status", &params))).await;
    assert_eq!(response.status(), 200, "acknowledged: it is stored to apply later");

    // A message whose send is recorded by hand, as a worker would after Twilio's answer.
    let store = app.gateway.store();
    let (id, attempt) = common::in_flight(store, "+14155550144", "test-worker").await;
    store.record_accepted(id, attempt, AttemptOutcome::Accepted, SID, StatusSource::Worker, now_ms()).await.unwrap();

    let status = app.delivery_status(&id.to_string()).await;
    assert_eq!(status["status"], "delivered");
    let last = status["history"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["detail"], "arrived before the SID was recorded");
    let again = post_form(&app, "/api/v1/whatsapp/status", &params, Some(sign(&app, "/api/v1/whatsapp/status", &params))).await;
    assert_eq!(again.status(), 200);
    assert_eq!(app.metrics("").await["totals"]["delivered"], 1, "the replayed callback is not counted twice");
    let _ = json!({});
}

#[tokio::test]
async fn a_replayed_callback_is_acknowledged_and_not_applied_again() {
    let app = TestApp::spawn().await;
    app.open_window("+14155550145");
    let id = app.send_ok(text_message("+14155550145")).await;
    let done = app.wait_for_status(&id, "read").await;
    let sid = done["message_sid"].as_str().unwrap().to_owned();
    let logged = done["history"].as_array().unwrap().len();

    // An attacker (or Twilio retrying) replays a captured, validly signed callback.
    let params = status_params(&sid, "delivered");
    let signature = sign(&app, "/api/v1/whatsapp/status", &params);
    for token in ["b9f3a2c4-0000-4000-8000-000000000001", "b9f3a2c4-0000-4000-8000-000000000001"] {
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
    let after = app.delivery_status(&id).await;
    assert_eq!(after["status"], "read");
    assert_eq!(after["history"].as_array().unwrap().len(), logged + 1, "the second copy (same token) is not even logged");
    let metrics = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("result=\"replayed\""), "{metrics}");
    assert_eq!(app.metrics("").await["totals"]["delivered"], 1, "counted once");
}
