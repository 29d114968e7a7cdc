//! Event webhooks (issue 11): a receiver that is down, then answers 500, then 200 gets every
//! event once; events are signed the Standard Webhooks way (two signatures during a rotation);
//! endpoints are managed over the API, given up on, redriven and disabled; the inbound handlers
//! run from the outbox; a crash between commit and delivery loses nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use twilio_emulator::InboundMessage;
use whatsapp_gateway::domain::MessageStatus;
use whatsapp_gateway::http::events::{EndpointSecret, EndpointView, EventDetailView, EventPage, EventRedriveResult};
use whatsapp_gateway::security::WebhookSecret;
use whatsapp_gateway::security::standard_webhooks::verify;

use crate::helpers::process::free_port;
use crate::helpers::{TestApp, TestOptions, field_errors, pairs, post_form, problem, sign, text_message};

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Seen {
    pub id: String,
    pub timestamp: i64,
    pub signature: String,
    pub body: String,
    pub answered: u16,
}

/// An application endpoint: records every request and answers with the status it is set to.
#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    answer: Arc<Mutex<u16>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: CancellationToken,
}

impl Receiver {
    /// Listens on `port` (any free one if 0), answering `answer`.
    pub async fn start(port: u16, answer: u16) -> Self {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let receiver = Self { url, answer: Arc::new(Mutex::new(answer)), seen: Arc::default(), stop: CancellationToken::new() };
        let app = axum::Router::new().route("/hook", axum::routing::post(record)).with_state(receiver.clone());
        let stop = receiver.stop.clone();
        tokio::spawn(async move { axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned()).await });
        receiver
    }

    pub fn answer(&self, status: u16) {
        *self.answer.lock().unwrap() = status;
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The ids of the events answered 2xx, with how many times each was.
    pub fn accepted(&self) -> BTreeMap<String, usize> {
        let mut ids = BTreeMap::new();
        for s in self.seen().into_iter().filter(|s| (200..300).contains(&s.answered)) {
            *ids.entry(s.id).or_default() += 1;
        }
        ids
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if Arc::strong_count(&self.seen) <= 2 {
            self.stop.cancel();
        }
    }
}

async fn record(State(receiver): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let answered = *receiver.answer.lock().unwrap();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    receiver.seen.lock().unwrap().push(Seen {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp").parse().unwrap_or_default(),
        signature: header("webhook-signature"),
        body: String::from_utf8_lossy(&body).into_owned(),
        answered,
    });
    StatusCode::from_u16(answered).unwrap()
}

pub async fn wait_until<F: AsyncFnMut() -> bool>(what: &str, limit: Duration, mut check: F) {
    let start = Instant::now();
    while !check().await {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn events(app: &TestApp, query: &str) -> EventPage {
    app.get_ok(&format!("/api/v1/events{query}")).await
}

fn fast_retries() -> Vec<(&'static str, String)> {
    vec![("EVENTS_RETRY_BASE_MS", "100".into()), ("EVENTS_RETRY_MAX_MS", "300".into())]
}

#[tokio::test(flavor = "multi_thread")]
async fn a_receiver_down_then_failing_then_up_gets_every_event_once() {
    let secret = WebhookSecret::generate();
    let port = free_port();
    let mut vars = fast_retries();
    vars.push(("EVENTS_URL", format!("http://127.0.0.1:{port}/hook")));
    vars.push(("EVENTS_SECRET", secret.to_text()));
    let app = TestApp::spawn_with(TestOptions { vars, ..Default::default() }).await;
    let mut ids = Vec::new();
    for n in 0..3 {
        let to = format!("+1415555020{n}");
        app.open_window(&to);
        ids.push(app.send_ok(text_message(&to)).await.id);
    }
    for id in &ids {
        app.wait_for_status(id, MessageStatus::Read).await;
    }
    // Down: nothing listens. Then up, answering 500 for a while, then 200.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let receiver = Receiver::start(port, 500).await;
    let stored: BTreeSet<String> = events(&app, "?limit=500").await.events.into_iter().map(|e| e.id).collect();
    wait_until("every event answered 500 at least once", Duration::from_secs(10), async || {
        let refused: BTreeSet<String> = receiver.seen().into_iter().filter(|s| s.answered == 500).map(|s| s.id).collect();
        refused.is_superset(&stored)
    })
    .await;
    receiver.answer(200);
    wait_until("every event delivered", Duration::from_secs(20), async || {
        events(&app, "?status=pending&limit=500").await.events.is_empty()
    })
    .await;

    let all = events(&app, "?limit=500").await.events;
    assert!(events(&app, "?status=failed").await.events.is_empty());
    // Every transition of every message, numbered in order, each once.
    for id in &ids {
        let mut mine: Vec<_> = all.iter().filter(|e| e.message_id == Some(*id)).collect();
        mine.sort_by_key(|e| e.sequence);
        let chain: Vec<(String, String)> = mine
            .iter()
            .map(|e| {
                (
                    e.payload["data"]["previous_status"].as_str().unwrap().to_owned(),
                    e.payload["data"]["status"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = [("pending", "queued"), ("queued", "sent"), ("sent", "delivered"), ("delivered", "read")]
            .map(|(a, b)| (a.into(), b.into()))
            .into();
        assert_eq!(chain, expected, "the status events of {id}");
        assert_eq!(mine.iter().map(|e| e.sequence).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert!(mine.iter().all(|e| e.payload["type"] == "message.status_changed" && e.deliveries[0].status == "delivered"));
        assert_eq!(app.get_ok::<Value>(&format!("/api/v1/whatsapp/messages/{id}")).await["event_sequence"], 4);
    }
    // The receiver's count of distinct ids is every event, and none was accepted twice.
    let accepted = receiver.accepted();
    assert_eq!(accepted.keys().cloned().collect::<BTreeSet<_>>(), all.iter().map(|e| e.id.clone()).collect::<BTreeSet<_>>());
    assert!(accepted.values().all(|n| *n == 1), "an event accepted twice: {accepted:?}");
    // Every request was signed with the secret, over its id, timestamp and body.
    for s in receiver.seen() {
        assert!(verify(&secret, &s.signature, &s.id, s.timestamp, s.body.as_bytes()), "bad signature on {s:?}");
        assert!((s.timestamp - time::OffsetDateTime::now_utc().unix_timestamp()).abs() < 120);
    }
    // The first event's attempts: refused connections, then 500s, then the 200.
    let first = all.iter().min_by_key(|e| e.id.clone()).unwrap();
    let detail: EventDetailView = app.get_ok(&format!("/api/v1/events/{}", first.id)).await;
    let codes: Vec<Option<i64>> = detail.attempts.iter().rev().map(|a| a.status_code).collect();
    assert_eq!(codes.first(), Some(&None), "the first attempt found nobody listening: {codes:?}");
    assert!(codes.contains(&Some(500)) && codes.last() == Some(&Some(200)), "{codes:?}");
    assert_eq!(all.len(), stored.len(), "no event came after the messages were read");
    // An endpoint added over the API may not point inside the gateway's network by default (the
    // configured one, here on loopback, may).
    for inside in ["http://127.0.0.1:9/x", "http://localhost/x", "http://169.254.169.254/latest", "http://[::1]:8080/"] {
        let refused =
            app.http.post(app.url("/api/v1/events/endpoints")).bearer_auth(&app.token).json(&json!({"url": inside})).send().await.unwrap();
        let (status, details) = problem(refused).await;
        assert_eq!((status, field_errors(&details)[0].0.as_str()), (422, "url"), "{inside}: {details:?}");
    }
    assert!(detail.attempts.iter().all(|a| a.latency_ms >= 0 && a.endpoint_id == "config-events"));
    assert!(detail.attempts.iter().rev().take_while(|a| a.status_code.is_none()).all(|a| a.error.is_some()));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endpoints_are_managed_over_the_api_and_sign_with_both_secrets_while_rotating() {
    let mut vars = fast_retries();
    vars.push(("EVENTS_ALLOW_PRIVATE_URLS", "true".into()));
    let app = TestApp::spawn_with(TestOptions { vars, ..Default::default() }).await;
    let receiver = Receiver::start(0, 204).await;
    let post = |path: &'static str, body: Value| {
        let request = app.http.post(app.url(path)).bearer_auth(&app.token).json(&body);
        async move { request.send().await.unwrap() }
    };
    // Each bad field named.
    let refused = post(
        "/api/v1/events/endpoints",
        json!({"url": "ftp://example.com/x", "event_types": ["message.received", "message.sent"], "secret": "nope"}),
    )
    .await;
    let (status, details) = problem(refused).await;
    let fields: Vec<String> = field_errors(&details).into_iter().map(|(f, _)| f).collect();
    assert_eq!((status, fields), (422, vec!["url".to_owned(), "event_types[1]".to_owned(), "secret".to_owned()]));

    let created = post(
        "/api/v1/events/endpoints",
        json!({"url": receiver.url, "event_types": ["message.received", "contact.opted_out", "contact.opted_in"], "description": "crm"}),
    )
    .await;
    assert_eq!(created.status(), 201);
    let endpoint: EndpointView = created.json().await.unwrap();
    let first_secret = WebhookSecret::parse(endpoint.secret.as_deref().expect("the secret is shown once created")).unwrap();
    assert!(endpoint.enabled && endpoint.id.starts_with("ep_"));
    let listed: Value = app.get_ok("/api/v1/events/endpoints").await;
    assert_eq!(listed["endpoints"].as_array().unwrap().len(), 1);
    assert!(listed["endpoints"][0].get("secret").is_none(), "lists never show secrets");

    // A token without `events:manage` may not look.
    let reader = whatsapp_gateway::security::mint_scoped_token(
        &crate::helpers::JWT_SECRET.to_owned().into(),
        "reader",
        3600,
        Some(&[whatsapp_gateway::security::Scope::MessagesRead]),
    )
    .unwrap();
    let forbidden = app.http.get(app.url("/api/v1/events/endpoints")).bearer_auth(reader).send().await.unwrap();
    assert_eq!(forbidden.status(), 403);

    // A rich incoming message: its details in the event and in the resource.
    let extra = [
        ("ButtonText", "Yes please"),
        ("ButtonPayload", "confirm-42"),
        ("ButtonType", "REPLY"),
        ("Latitude", "52.3676"),
        ("Longitude", "4.9041"),
        ("Address", "Dam 1, Amsterdam"),
        ("Label", "Office"),
        ("ReferralCtwaClid", "ARAkLkA8rmlFeiCktEJQ"),
        ("ReferralSourceType", "ad"),
        ("MessageType", "button"),
        ("ListId", "size-m"),
        ("ListTitle", "Medium"),
    ];
    let delivery = app
        .emulator
        .inject_inbound(InboundMessage {
            from: "+14155550210".into(),
            body: "Yes please".into(),
            media_urls: vec!["https://example.com/a.jpg".into()],
            extra: extra.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(delivery.status, 200);
    wait_until("message.received delivered", Duration::from_secs(10), async || receiver.accepted().len() == 1).await;
    let seen = receiver.seen().pop().unwrap();
    assert!(verify(&first_secret, &seen.signature, &seen.id, seen.timestamp, seen.body.as_bytes()));
    let body: Value = serde_json::from_str(&seen.body).unwrap();
    assert_eq!(body["type"], "message.received");
    let data = &body["data"];
    assert_eq!(
        (data["from"].as_str(), data["body"].as_str(), data["sequence"].as_i64()),
        (Some("+14155550210"), Some("Yes please"), Some(1))
    );
    assert_eq!(data["button"], json!({"text": "Yes please", "payload": "confirm-42", "kind": "REPLY"}));
    assert_eq!(data["location"], json!({"latitude": 52.3676, "longitude": 4.9041, "address": "Dam 1, Amsterdam", "label": "Office"}));
    assert_eq!(data["referral"], json!({"source_type": "ad", "ctwa_clid": "ARAkLkA8rmlFeiCktEJQ"}));
    assert_eq!(data["media"], json!([{"url": "https://example.com/a.jpg", "content_type": "image/jpeg"}]));
    assert_eq!(data["message_type"], "button");
    assert_eq!(data["list_reply"], json!({"id": "size-m", "title": "Medium"}));
    let message_id = data["message_id"].as_str().unwrap().to_owned();
    let resource: Value = app.get_ok(&format!("/api/v1/whatsapp/messages/{message_id}")).await;
    assert_eq!(resource["details"]["button"]["payload"], "confirm-42");
    assert_eq!(resource["details"]["location"]["label"], "Office");

    // Rotation: both secrets sign until the old one's grace ends.
    let rotated = post_path(&app, &format!("/api/v1/events/endpoints/{}/rotate-secret", endpoint.id), json!({"grace_s": 600})).await;
    assert_eq!(rotated.status(), 200);
    let rotated: EndpointView = rotated.json().await.unwrap();
    let second_secret = WebhookSecret::parse(rotated.secret.as_deref().unwrap()).unwrap();
    assert_ne!(first_secret, second_secret);
    let secrets: EndpointSecret = app.get_ok(&format!("/api/v1/events/endpoints/{}/secret", endpoint.id)).await;
    assert_eq!(secrets.previous_secret.as_deref(), Some(first_secret.to_text().as_str()));
    assert!(secrets.previous_secret_valid_until.is_some());
    let stop = app
        .emulator
        .inject_inbound(InboundMessage { from: "+14155550210".into(), body: "STOP".into(), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(stop.status, 200);
    wait_until("the STOP's events", Duration::from_secs(10), async || receiver.accepted().len() == 3).await;
    let types: BTreeSet<String> =
        receiver.seen().iter().map(|s| serde_json::from_str::<Value>(&s.body).unwrap()["type"].as_str().unwrap().to_owned()).collect();
    assert_eq!(types, ["contact.opted_out", "message.received"].map(String::from).into());
    for s in receiver.seen().iter().skip(1) {
        assert!(verify(&first_secret, &s.signature, &s.id, s.timestamp, s.body.as_bytes()), "the old secret still verifies");
        assert!(verify(&second_secret, &s.signature, &s.id, s.timestamp, s.body.as_bytes()), "the new one too");
        assert!(!verify(&second_secret, &s.signature, &s.id, s.timestamp, b"{\"altered\":true}"));
    }

    // Disabled, nothing goes to it (its START is not kept for it); enabled again, events flow.
    let disabled = patch(&app, &endpoint.id, json!({"enabled": false})).await;
    assert_eq!((disabled.enabled, disabled.disabled_reason.as_deref()), (false, Some("disabled by the application")));
    app.emulator.inject_inbound(InboundMessage { from: "+14155550210".into(), body: "START".into(), ..Default::default() }).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.accepted().len(), 3);
    let enabled = patch(&app, &endpoint.id, json!({"enabled": true, "event_types": ["contact.opted_in"]})).await;
    assert!(enabled.enabled && enabled.disabled_reason.is_none());
    assert_eq!(enabled.event_types.len(), 1);
    app.emulator.inject_inbound(InboundMessage { from: "+14155550210".into(), body: "STOP".into(), ..Default::default() }).await.unwrap();
    app.emulator.inject_inbound(InboundMessage { from: "+14155550210".into(), body: "START".into(), ..Default::default() }).await.unwrap();
    wait_until("the opt-in", Duration::from_secs(10), async || receiver.accepted().len() == 4).await;
    let last: Value = serde_json::from_str(&receiver.seen().last().unwrap().body).unwrap();
    assert_eq!((last["type"].as_str(), last["data"]["phone"].as_str()), (Some("contact.opted_in"), Some("+14155550210")));
    let missing = app.get("/api/v1/events/endpoints/ep_nope").await;
    assert_eq!(missing.status(), 404);
    app.finish().await;
}

async fn post_path(app: &TestApp, path: &str, body: Value) -> reqwest::Response {
    app.http.post(app.url(path)).bearer_auth(&app.token).json(&body).send().await.unwrap()
}

async fn patch(app: &TestApp, id: &str, body: Value) -> EndpointView {
    let response =
        app.http.patch(app.url(&format!("/api/v1/events/endpoints/{id}"))).bearer_auth(&app.token).json(&body).send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_endpoint_is_given_up_on_redriven_and_disabled_until_enabled_by_hand() {
    let mut vars = fast_retries();
    vars.push(("EVENTS_MAX_AGE_MS", "800".into()));
    vars.push(("EVENTS_DISABLE_AFTER_MS", "1500".into()));
    vars.push(("EVENTS_ALLOW_PRIVATE_URLS", "true".into()));
    let app = TestApp::spawn_with(TestOptions { vars, ..Default::default() }).await;
    let receiver = Receiver::start(0, 503).await;
    let created = post_path(&app, "/api/v1/events/endpoints", json!({"url": receiver.url, "event_types": ["message.received"]})).await;
    let endpoint: EndpointView = created.json().await.unwrap();
    let write = |body: &str| InboundMessage { from: "+14155550220".into(), body: body.into(), ..Default::default() };
    app.emulator.inject_inbound(write("first")).await.unwrap();
    wait_until("the first event given up", Duration::from_secs(10), async || events(&app, "?status=failed").await.events.len() == 1).await;
    let failed = events(&app, "?status=failed").await.events.remove(0);
    assert!(failed.deliveries[0].attempts >= 2, "retried before giving up: {:?}", failed.deliveries);
    assert_eq!(failed.deliveries[0].last_status_code, Some(503));

    // Still failing past EVENTS_DISABLE_AFTER_MS: disabled at its next failure.
    tokio::time::sleep(Duration::from_millis(900)).await;
    app.emulator.inject_inbound(write("second")).await.unwrap();
    wait_until("the endpoint disabled", Duration::from_secs(10), async || {
        !app.get_ok::<EndpointView>(&format!("/api/v1/events/endpoints/{}", endpoint.id)).await.enabled
    })
    .await;
    let disabled: EndpointView = app.get_ok(&format!("/api/v1/events/endpoints/{}", endpoint.id)).await;
    assert!(disabled.disabled_reason.as_deref().unwrap().contains("automatically"), "{disabled:?}");
    assert!(disabled.failing_since.is_some());
    let attempts: Value = app.get_ok(&format!("/api/v1/events/endpoints/{}/attempts?limit=5", endpoint.id)).await;
    assert_eq!(attempts["attempts"][0]["status_code"], 503);

    // Enabled by hand with the receiver well again; what was given up goes on a redrive: one
    // event, then the rest of the endpoint's.
    receiver.answer(200);
    let enabled = patch(&app, &endpoint.id, json!({"enabled": true})).await;
    assert!(enabled.enabled && enabled.failing_since.is_none());
    // The second event is delivered by its next attempt, or given up first (its 800 ms may have
    // passed while the endpoint was disabled); either way nothing is pending after a moment.
    wait_until("nothing pending", Duration::from_secs(10), async || events(&app, "?status=pending").await.events.is_empty()).await;
    let redriven = post_path(&app, &format!("/api/v1/events/{}/redrive", failed.id), json!({})).await;
    let redriven: EventRedriveResult = redriven.json().await.unwrap();
    assert_eq!(redriven.redriven, 1);
    wait_until("the redriven event delivered", Duration::from_secs(10), async || receiver.accepted().contains_key(&failed.id)).await;
    let rest = post_path(&app, &format!("/api/v1/events/endpoints/{}/redrive", endpoint.id), json!({})).await;
    assert!(rest.json::<EventRedriveResult>().await.unwrap().redriven <= 1);
    wait_until("both events delivered", Duration::from_secs(10), async || receiver.accepted().len() == 2).await;
    let again = post_path(&app, &format!("/api/v1/events/endpoints/{}/redrive", endpoint.id), json!({})).await;
    assert_eq!(again.json::<EventRedriveResult>().await.unwrap().redriven, 0, "nothing left failed");
    assert!(receiver.accepted().values().all(|n| *n == 1));
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn handlers_answer_once_and_twilios_redelivery_gets_the_same_answer() {
    let app = TestApp::spawn_with(TestOptions { vars: vec![("AUTO_REPLY_TEXT", "Thanks!".into())], ..Default::default() }).await;
    let delivery =
        app.emulator.inject_inbound(InboundMessage { from: "+14155550230".into(), body: "hi".into(), ..Default::default() }).await.unwrap();
    let twiml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Message>Thanks!</Message></Response>";
    assert_eq!(delivery.body, twiml);
    let params = pairs(&[
        ("MessageSid", delivery.message_sid.as_str()),
        ("From", "whatsapp:+14155550230"),
        ("To", "whatsapp:+14155238886"),
        ("Body", "hi"),
    ]);
    let again = post_form(&app, "/api/v1/whatsapp/webhook", &params, Some(sign(&app, "/api/v1/whatsapp/webhook", &params))).await;
    assert_eq!(again.text().await.unwrap(), twiml, "Twilio's retry gets the same answer");
    // The keyword confirmation is not the handlers' answer.
    let stop = app
        .emulator
        .inject_inbound(InboundMessage { from: "+14155550230".into(), body: "STOP".into(), ..Default::default() })
        .await
        .unwrap();
    assert!(stop.body.contains("unsubscribed"), "{}", stop.body);
    // No reply went out as a message: TwiML carried it.
    assert!(app.messages("?direction=outbound").await.messages.is_empty());
    app.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_typing_indicator_goes_to_twilio_for_an_incoming_message_only() {
    let app = TestApp::spawn().await;
    let delivery = app
        .emulator
        .inject_inbound(InboundMessage { from: "+14155550240".into(), body: "hello?".into(), ..Default::default() })
        .await
        .unwrap();
    let inbound = app.messages("?direction=inbound").await.messages.remove(0);
    let shown = post_path(&app, &format!("/api/v1/whatsapp/messages/{}/typing", inbound.id), json!({})).await;
    assert_eq!(shown.status(), 200);
    assert_eq!(app.emulator.counters().typing_indicators.get(&delivery.message_sid), Some(&1));
    let outbound = app.send_ok(text_message("+14155550240")).await;
    let refused = post_path(&app, &format!("/api/v1/whatsapp/messages/{}/typing", outbound.id), json!({})).await;
    let (status, details) = problem(refused).await;
    assert_eq!(status, 409);
    assert!(details.detail.contains("incoming"), "{details:?}");
    app.finish().await;
}

mod crash {
    //! The real binary, aborted right after committing an incoming message (before the webhook
    //! is answered, before any event is delivered or handler run): after a restart the event
    //! arrives, the handlers run from the outbox and their answer goes out once, as a message.

    use std::process::{Command, Stdio};

    use super::*;
    use crate::helpers::process::{BIN, Killed, emulator_url};

    const SECRET: &str = "events-crash-secret-0123456789";
    const TOKEN: &str = "emulator-token";

    fn gateway(dir: &std::path::Path, port: u16, emulator: &str, receiver: &str, secret: &str, fault: Option<&str>) -> Killed {
        let child = Command::new(BIN)
            .arg("serve")
            .current_dir(dir)
            .env("WG_FAULT_ABORT_AFTER_COMMIT", fault.unwrap_or_default())
            .envs([
                ("DATABASE_URL", format!("sqlite://{}/gateway.db", dir.display())),
                ("BIND_ADDR", format!("127.0.0.1:{port}")),
                ("TWILIO_ACCOUNT_SID", "AC00000000000000000000000000000000".into()),
                ("TWILIO_AUTH_TOKEN", TOKEN.into()),
                ("TWILIO_WHATSAPP_FROM", "+14155238886".into()),
                ("TWILIO_API_BASE_URL", emulator.to_owned()),
                ("JWT_SECRET", SECRET.into()),
                ("RUST_LOG", "warn".into()),
                ("EVENTS_URL", receiver.to_owned()),
                ("EVENTS_SECRET", secret.to_owned()),
                ("EVENTS_RETRY_BASE_MS", "100".into()),
                ("EVENTS_HANDLER_GRACE_MS", "500".into()),
                ("AUTO_REPLY_TEXT", "Thanks!".into()),
                ("WORKER_POLL_MS", "50".into()),
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Killed(child)
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_crash_between_commit_and_delivery_loses_no_event_and_the_handlers_still_answer_once() {
        let dir = std::env::temp_dir().join(format!("wg-events-crash-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        let token = whatsapp_gateway::security::mint_token(&SECRET.to_owned().into(), "crash-test", 600).unwrap();
        let mut emulator = Command::new(BIN)
            .arg("emulator")
            .envs([("EMULATOR_BIND_ADDR", "127.0.0.1:0"), ("EMULATOR_ENFORCE_WINDOW", "false"), ("RUST_LOG", "warn")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let emulator_url = emulator_url(&mut emulator);
        let _emulator = Killed(emulator);
        let receiver = Receiver::start(0, 200).await;
        let secret = WebhookSecret::generate();
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let sid = format!("SM{}", uuid::Uuid::new_v4().simple());
        let params: Vec<(String, String)> = pairs(&[
            ("MessageSid", sid.as_str()),
            ("From", "whatsapp:+14155550250"),
            ("To", "whatsapp:+14155238886"),
            ("Body", "are you there?"),
        ]);
        let webhook = format!("{base}/api/v1/whatsapp/webhook");
        let signature = twilio_signature::compute(TOKEN.as_bytes(), &webhook, &params);
        let post_webhook = async || http.post(&webhook).header("X-Twilio-Signature", &signature).form(&params).send().await;

        let mut first = gateway(&dir, port, &emulator_url, &receiver.url, &secret.to_text(), Some(&sid));
        wait_until("the gateway to start", Duration::from_secs(20), async || http.get(format!("{base}/healthz")).send().await.is_ok())
            .await;
        assert!(post_webhook().await.is_err(), "the process aborts before it answers");
        assert!(!first.0.wait().unwrap().success());
        drop(first);
        assert!(receiver.seen().is_empty(), "nothing was delivered before the crash");

        let _second = gateway(&dir, port, &emulator_url, &receiver.url, &secret.to_text(), None);
        wait_until("the restarted gateway", Duration::from_secs(20), async || http.get(format!("{base}/healthz")).send().await.is_ok())
            .await;
        let received = || receiver.seen().into_iter().find(|s| s.body.contains("\"type\":\"message.received\""));
        wait_until("the stored event delivered", Duration::from_secs(20), async || received().is_some()).await;
        let seen = received().unwrap();
        assert!(verify(&secret, &seen.signature, &seen.id, seen.timestamp, seen.body.as_bytes()));
        let body: Value = serde_json::from_str(&seen.body).unwrap();
        assert_eq!((body["type"].as_str(), body["data"]["message_sid"].as_str()), (Some("message.received"), Some(sid.as_str())));

        // The handlers ran from the outbox: their answer went out as a message, once.
        let replies = async || -> Vec<Value> {
            let page: Value = http
                .get(format!("{base}/api/v1/whatsapp/messages?direction=outbound&phone=%2B14155550250"))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            page["messages"].as_array().cloned().unwrap_or_default()
        };
        wait_until("the handlers' answer sent", Duration::from_secs(20), async || !replies().await.is_empty()).await;
        // Twilio's redelivery of the webhook: stored once, answered with nothing more.
        let again = post_webhook().await.unwrap();
        assert_eq!(again.status(), 200);
        assert_eq!(again.text().await.unwrap(), "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response />");
        tokio::time::sleep(Duration::from_millis(800)).await;
        let sent = replies().await;
        assert_eq!(sent.len(), 1, "one answer: {sent:?}");
        assert_eq!(sent[0]["body"], "Thanks!");
        assert!(receiver.accepted().values().all(|n| *n == 1));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
