//! Policy codes that come in a status callback, when Twilio already had the message: 63016 sends
//! it again as its fallback template, 63018 and 63049 send it again later; each resend is a new
//! create (a new SID), logged, and reports about the old SID no longer move the message.

use serde_json::json;
use twilio_emulator::{Behaviour, Failure};
use whatsapp_gateway::domain::{MessageStatus, StatusSource};

use crate::helpers::{TestApp, applied_history};

const TEMPLATE: &str = "HX0123456789abcdef0123456789abcdef";

fn wait_of(next_attempt_at: Option<&str>) -> time::Duration {
    let next = time::OffsetDateTime::parse(next_attempt_at.expect("due again"), &time::format_description::well_known::Rfc3339).unwrap();
    next - time::OffsetDateTime::now_utc()
}

#[tokio::test]
async fn a_63016_from_twilio_sends_the_message_again_as_its_fallback_template() {
    // The gateway's own window check is off (the tests' default), so the free-form message goes;
    // the emulator's window is closed for this recipient, so Twilio answers 63016 in a callback.
    let app = TestApp::spawn().await;
    let to = "+14155576666";
    // Every callback twice: the old SID's second `undelivered` must not undo the resend.
    app.emulator.set_behaviour(to, Behaviour { duplicate_callbacks: true, ..Default::default() });
    let body = json!({"to": to, "body": "Your code is 1234", "fallback": {"content_sid": TEMPLATE, "content_variables": {"1": "1234"}}});
    let sent = app.send_ok(body).await;
    let done = app.wait_for_status(sent.id, MessageStatus::Read).await;
    assert_eq!(done.message.content_sid.as_deref(), Some(TEMPLATE), "sent again as the template");
    assert_eq!(app.emulator.counters().created_to(to), 2, "two creates: the free-form one, then the template");
    let resend = done.history.iter().find(|e| e.status == MessageStatus::Retrying).expect("the resend is in the history");
    assert!(resend.applied && resend.source == StatusSource::Callback && resend.error_code == Some(63016), "{resend:?}");
    let why = resend.detail.as_deref().unwrap();
    assert!(why.contains("undelivered with 63016") && why.contains(&format!("sent again as its fallback template {TEMPLATE}")), "{why}");
    let applied = applied_history(&done);
    assert_eq!(applied.last(), Some(&MessageStatus::Read), "{applied:?}");
    assert!(!applied.contains(&MessageStatus::Undelivered), "the 63016 was never applied: {applied:?}");
    // Each create has its own SID; the message keeps the second.
    let sids: Vec<_> = done.send_attempts.iter().filter_map(|a| a.message_sid.clone()).collect();
    assert_eq!(sids.len(), 2, "{:?}", done.send_attempts);
    assert_ne!(sids[0], sids[1]);
    assert_eq!(done.message.message_sid.as_ref(), Some(&sids[1]));
    app.finish().await;
}

#[tokio::test]
async fn a_63018_or_63049_from_twilio_sends_the_message_again_later_but_63049_never_to_a_us_number() {
    let app = TestApp::spawn().await;
    let (throttled, marketing, us) = ("+14155577777", "+447911123457", "+14155578888");
    for (to, code) in [(throttled, 63018), (marketing, 63049), (us, 63049)] {
        app.emulator.set_behaviour(to, Behaviour { fail: Some(Failure::failed(code)), ..Default::default() });
        app.open_window(to);
    }
    let ids: Vec<_> = futures_util::future::join_all([throttled, marketing, us].map(|to| app.send_ok(json!({"to": to, "body": "Sale!"}))))
        .await
        .into_iter()
        .map(|m| m.id)
        .collect();
    let failed = app.wait_for_status(ids[2], MessageStatus::Failed).await;
    assert_eq!(failed.message.error_code, Some(63049), "a US number gets no marketing message: it fails");

    let throttled = app.wait_for_status(ids[0], MessageStatus::Retrying).await;
    let wait = wait_of(throttled.message.next_attempt_at.as_deref());
    assert!(wait > time::Duration::seconds(25) && wait <= time::Duration::seconds(30), "63018: again in {wait}");
    assert_eq!((throttled.message.error_code, throttled.message.attempts), (Some(63018), 1));
    let marketing = app.wait_for_status(ids[1], MessageStatus::Retrying).await;
    let wait = wait_of(marketing.message.next_attempt_at.as_deref());
    assert!(wait > time::Duration::minutes(55) && wait <= time::Duration::minutes(60), "63049: again in {wait}");
    for status in [&throttled, &marketing] {
        let resend = status.history.last().unwrap();
        assert_eq!((resend.status, resend.source, resend.applied), (MessageStatus::Retrying, StatusSource::Callback, true));
        assert!(!applied_history(status).contains(&MessageStatus::Failed));
    }
    app.finished_without_checks();
}
