//! Several senders: a pool of numbers (`TWILIO_WHATSAPP_FROM` as a list), each recipient keeping
//! its number; a Messaging Service (`TWILIO_MESSAGING_SERVICE_SID`, sent as `MessagingServiceSid`,
//! starting `accepted`); a request naming its `from`; and `GET /senders`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use twilio_emulator::{Behaviour, Failure, InboundMessage};
use whatsapp_gateway::domain::{MessageStatus, Origin, PhoneNumber, Route};
use whatsapp_gateway::http::senders::SendersView;

use crate::helpers::{SENDER, TestApp, TestOptions, applied_history, field_errors, problem, text_message};
use crate::support::outbound;

const POOL: [&str; 3] = [SENDER, "+14155238887", "+14155238888"];
const SERVICE: &str = "MG0123456789abcdef0123456789abcdef";

async fn pool_app() -> TestApp {
    TestApp::spawn_with(TestOptions { vars: vec![("TWILIO_WHATSAPP_FROM", POOL.join(","))], ..Default::default() }).await
}

#[tokio::test]
async fn each_recipient_keeps_its_number_and_the_pool_is_shared_out() {
    let app = pool_app().await;
    let mut first: BTreeMap<String, String> = BTreeMap::new();
    for i in 0..30 {
        let to = format!("+1415557{i:04}");
        app.open_window(&to);
        let m = app.send_ok(text_message(&to)).await;
        assert!(POOL.contains(&m.from.as_str()), "{}", m.from);
        first.insert(to, m.from);
    }
    let used: BTreeSet<&String> = first.values().collect();
    assert_eq!(used.len(), 3, "30 recipients over 3 numbers use all of them: {first:?}");
    // Again, in one batch, and while the first ones may still be in flight: the same number each.
    let again: Vec<_> = first.keys().map(|to| json!({"to": to, "body": "again"})).collect();
    let answer = app
        .http
        .post(app.url("/api/v1/whatsapp/send/batch"))
        .bearer_auth(&app.token)
        .json(&json!({"messages": again}))
        .send()
        .await
        .unwrap();
    assert!(answer.status().is_success(), "{}", answer.status());
    app.drain().await;
    for (to, from) in &first {
        let page = app.messages(&format!("?phone={}", to.replace('+', "%2B"))).await;
        assert_eq!(page.messages.len(), 2, "{to}");
        assert!(page.messages.iter().all(|m| m.from == *from), "{to} keeps {from}: {:?}", page.messages);
        assert!(page.messages.iter().all(|m| m.status == MessageStatus::Read), "{to}");
    }
    // The emulator saw each number send what the gateway says it sent.
    let counters = app.emulator.counters();
    for number in POOL {
        let ours = first.values().filter(|f| *f == number).count() as u64 * 2;
        assert_eq!(counters.created_by_sender.get(number).copied().unwrap_or(0), ours, "{number}");
    }
    app.finish().await;
}

#[tokio::test]
async fn a_reply_goes_out_from_the_number_the_contact_wrote_to() {
    let app = pool_app().await;
    let number = PhoneNumber::parse(POOL[2]).unwrap();
    let pool = Route::Pool(POOL.iter().map(|n| PhoneNumber::parse(n).unwrap()).collect::<Vec<_>>().into());
    // A contact the hash alone would give another number: it wrote to the third one.
    let contact = (0..100)
        .map(|i| format!("+1415557{i:04}"))
        .find(|c| pool.pick(&PhoneNumber::parse(c).unwrap(), None) != Origin::Number(number.clone()))
        .unwrap();
    let contact = contact.as_str();
    let inbound = InboundMessage { from: contact.into(), to: Some(POOL[2].into()), body: "hi".into(), ..Default::default() };
    assert_eq!(app.emulator.inject_inbound(inbound).await.unwrap().status, 200);
    app.open_window(contact);
    let reply = app.send_ok(text_message(contact)).await;
    assert_eq!(reply.from, number.as_e164());
    // The incoming message counts for the number it came to.
    let view: SendersView = app.get_ok("/api/v1/whatsapp/senders").await;
    let received: Vec<(&str, i64)> = view.senders.iter().map(|s| (s.sender.as_str(), s.received)).collect();
    assert_eq!(received, [(POOL[0], 0), (POOL[1], 0), (POOL[2], 1)]);
    app.finish().await;
}

#[tokio::test]
async fn a_request_may_name_its_sender_but_only_a_configured_one() {
    let app = pool_app().await;
    let to = "+14155572222";
    app.open_window(to);
    let named = app.send_ok(json!({"to": to, "body": "hi", "from": format!("whatsapp:{}", POOL[1])})).await;
    assert_eq!(named.from, POOL[1]);
    // The recipient now keeps the number it was sent from.
    assert_eq!(app.send_ok(text_message(to)).await.from, POOL[1]);
    for (from, why) in [
        ("+14155239999", "is not one of this gateway's senders"),
        (SERVICE, "is not one of this gateway's senders"),
        ("sender-1", "must be one of"),
    ] {
        let (status, body) = problem(app.send(json!({"to": to, "body": "hi", "from": from})).await).await;
        assert_eq!(status, 422, "{from}");
        let errors = field_errors(&body);
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].0, "from");
        assert!(errors[0].1.contains(why), "{from}: {}", errors[0].1);
    }
    app.drain().await;
    assert_eq!(app.messages(&format!("?phone={}", to.replace('+', "%2B"))).await.messages.len(), 2, "nothing stored for a refused sender");
    app.finish().await;
}

#[tokio::test]
async fn only_the_recipients_of_a_removed_number_move() {
    let app = pool_app().await;
    let store = app.reopen_store().await;
    let numbers: Vec<PhoneNumber> = POOL.iter().map(|n| PhoneNumber::parse(n).unwrap()).collect();
    let later = whatsapp_gateway::domain::now_ms() + 3_600_000;
    let mut before = BTreeMap::new();
    for i in 0..30 {
        let message = whatsapp_gateway::domain::NewOutboundMessage { send_at: Some(later), ..outbound(&format!("+1415558{i:04}")) };
        let to = message.to.clone();
        let (stored, _) = store.insert_outbound(message, Route::Pool(numbers.clone().into()), later).await.unwrap();
        before.insert(to, stored.from);
    }
    let smaller = Route::Pool(numbers[..2].to_vec().into());
    let mut moved = 0;
    for (to, was) in &before {
        let message = whatsapp_gateway::domain::NewOutboundMessage { send_at: Some(later), ..outbound(to.as_e164()) };
        let (stored, _) = store.insert_outbound(message, smaller.clone(), later).await.unwrap();
        if *was == Origin::Number(numbers[2].clone()) {
            assert_ne!(stored.from, *was);
            moved += 1;
        } else {
            assert_eq!(stored.from, *was, "{to} keeps its number");
        }
    }
    assert!(moved > 0, "some recipients were on the removed number");
    app.finished_without_checks();
}

#[tokio::test]
async fn a_messaging_service_sends_as_accepted_then_reaches_read() {
    let mut options = TestOptions {
        vars: vec![("TWILIO_MESSAGING_SERVICE_SID", SERVICE.into()), ("SENDER_RATES", format!("{SERVICE}=200"))],
        ..Default::default()
    };
    options.emulator.messaging_service_sid = Some(SERVICE.into());
    let app = TestApp::spawn_with(options).await;
    let to = "+14155573333";
    app.open_window(to);
    let message = app.send_ok(text_message(to)).await;
    assert_eq!(message.from, SERVICE, "the service is the default route");
    let status = app.wait_for_status(message.id, MessageStatus::Read).await;
    let history = applied_history(&status);
    assert_eq!(history[..2], [MessageStatus::Pending, MessageStatus::Accepted], "{history:?}");
    assert_eq!(history.last(), Some(&MessageStatus::Read));
    let counters = app.emulator.counters();
    assert_eq!(counters.created_by_sender.get(SERVICE).copied(), Some(1), "sent with MessagingServiceSid: {counters:?}");
    // A number may still be named: the configured one.
    let named = app.send_ok(json!({"to": to, "body": "from the number", "from": SENDER})).await;
    assert_eq!(named.from, SENDER);
    app.wait_for_status(named.id, MessageStatus::Read).await;

    let view: SendersView = app.get_ok("/api/v1/whatsapp/senders").await;
    let senders: Vec<(&str, &str, bool, u32)> =
        view.senders.iter().map(|s| (s.sender.as_str(), s.kind.as_str(), s.default, s.pace_per_sec)).collect();
    assert_eq!(senders, [(SENDER, "number", false, 80), (SERVICE, "messaging_service", true, 200)]);
    for s in &view.senders {
        assert_eq!((s.total, s.sent, s.delivered, s.read, s.failed, s.throttled), (1, 1, 1, 1, 0, 0), "{}", s.sender);
        assert_eq!(serde_json::to_value(s.health).unwrap(), "healthy");
    }
    let (status, body) = problem(app.get("/api/v1/whatsapp/senders?since=yesterday").await).await;
    assert_eq!((status, field_errors(&body)[0].0.as_str()), (422, "since"));
    // Counting goes back a week at most, and says so.
    let long_ago: SendersView = app.get_ok("/api/v1/whatsapp/senders?since=2020-01-01T00:00:00Z").await;
    let since = time::OffsetDateTime::parse(&long_ago.since, &time::format_description::well_known::Rfc3339).unwrap();
    let week_ago = time::OffsetDateTime::now_utc() - time::Duration::days(7);
    assert!((since - week_ago).abs() < time::Duration::minutes(1), "{}", long_ago.since);
    assert_eq!(long_ago.senders[1].total, 1);
    app.finish().await;
}

#[tokio::test]
async fn a_sender_twilio_reports_locked_shows_locked_until_it_delivers_again() {
    let app = pool_app().await;
    let (locked_to, later_to) = ("+14155574444", "+14155574445");
    app.emulator.set_behaviour(locked_to, Behaviour { fail: Some(Failure::failed(63051)), ..Default::default() });
    for to in [locked_to, later_to] {
        app.open_window(to);
    }
    let failed = app.send_ok(json!({"to": locked_to, "body": "hi", "from": POOL[1]})).await;
    let status = app.wait_for_status(failed.id, MessageStatus::Failed).await;
    assert_eq!(status.message.error_code, Some(63051));
    let health = |view: &SendersView| -> Vec<(String, String, bool)> {
        view.senders
            .iter()
            .map(|s| (s.sender.clone(), serde_json::to_value(s.health).unwrap().as_str().unwrap().to_owned(), s.locked_at.is_some()))
            .collect()
    };
    let view: SendersView = app.get_ok("/api/v1/whatsapp/senders").await;
    assert_eq!(
        health(&view),
        [(POOL[0].into(), "healthy".into(), false), (POOL[1].into(), "locked".into(), true), (POOL[2].into(), "healthy".into(), false)]
    );
    assert_eq!((view.senders[1].total, view.senders[1].failed), (1, 1));
    // A delivery from it afterwards: the account works again.
    let delivered = app.send_ok(json!({"to": later_to, "body": "hi", "from": POOL[1]})).await;
    app.wait_for_status(delivered.id, MessageStatus::Read).await;
    let view: SendersView = app.get_ok("/api/v1/whatsapp/senders").await;
    assert_eq!(health(&view)[1], (POOL[1].into(), "degraded".into(), false));
    app.finish().await;
}
