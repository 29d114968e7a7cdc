//! Missed callbacks are recovered: Twilio does not promise a status callback, so messages whose
//! callbacks never come are asked about (`GET …/Messages/{Sid}.json`) once they have had no news
//! for `POLL_AFTER_MS`, and what Twilio says is applied through the state machine
//! (`source = poll`), counted in `/metrics`.

use std::collections::HashMap;
use std::time::Duration;

use serde_json::json;
use twilio_emulator::{Behaviour, Failure};
use whatsapp_gateway::domain::{MessageStatus, StatusSource};

use crate::helpers::{TestApp, TestOptions, applied_history};

/// `gateway_poll_recovered_total` by status, from `/metrics`.
async fn recovered(app: &TestApp) -> HashMap<String, u64> {
    let text = app.http.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    text.lines()
        .filter_map(|line| line.strip_prefix("gateway_poll_recovered_total{status=\""))
        .filter_map(|rest| {
            let (status, value) = rest.split_once("\"} ")?;
            Some((status.to_owned(), value.trim().parse().ok()?))
        })
        .collect()
}

#[tokio::test]
async fn messages_whose_callbacks_never_come_reach_their_true_final_status() {
    let vars = vec![("POLL_AFTER_MS", "400".into()), ("POLL_RATE_PER_SEC", "50".into())];
    let app = TestApp::spawn_with(TestOptions { vars, ..Default::default() }).await;
    // 30 messages; 3 of them (10%) get no callback at all: two are read, one is undelivered.
    let mut expected = Vec::new();
    for i in 0..30 {
        let phone = format!("+1415556{i:04}");
        app.open_window(&phone);
        let (behaviour, last) = match i {
            7 | 19 => (Behaviour { drop_callbacks: true, ..Default::default() }, MessageStatus::Read),
            25 => (
                Behaviour { drop_callbacks: true, fail: Some(Failure::undelivered(30003)), ..Default::default() },
                MessageStatus::Undelivered,
            ),
            _ => (Behaviour::default(), MessageStatus::Read),
        };
        let dropped = behaviour.drop_callbacks;
        app.emulator.set_behaviour(&phone, behaviour);
        let id = app.send_ok(json!({"to": phone, "body": format!("message {i}")})).await.id;
        expected.push((id, last, dropped));
    }
    for (id, last, dropped) in &expected {
        let done = app.wait_for_status(id, *last).await;
        let final_entry = done.history.iter().rev().find(|h| h.applied).expect("a history");
        assert_eq!(final_entry.status, *last);
        if *dropped {
            assert_eq!(final_entry.source, StatusSource::Poll, "{:#?}", done.history);
            assert!(done.history.iter().all(|h| h.source != StatusSource::Callback), "no callback came: {:#?}", done.history);
            // Asked about until it settled, never logged while nothing changed.
            assert_eq!(done.history.iter().filter(|h| h.source == StatusSource::Poll).count(), 1, "{:#?}", done.history);
            if *last == MessageStatus::Undelivered {
                assert_eq!(done.message.error_code, Some(30003));
            }
        } else {
            assert!(done.history.iter().all(|h| h.source != StatusSource::Poll), "its callbacks came: {:#?}", done.history);
            assert_eq!(applied_history(&done).last(), Some(&MessageStatus::Read));
        }
    }
    let counted = recovered(&app).await;
    assert_eq!(counted.get("read"), Some(&2), "{counted:?}");
    assert_eq!(counted.get("undelivered"), Some(&1), "{counted:?}");
    let totals = app.metrics("").await.totals;
    assert_eq!((totals.total, totals.read, totals.undelivered, totals.failed), (30, 29, 1, 0), "{totals:?}");
    app.finish().await;
}

#[tokio::test]
async fn a_message_that_stays_silent_is_asked_about_again_without_a_log_entry_each_time() {
    // A message whose callbacks never come, delivered and never read.
    let vars = vec![("POLL_AFTER_MS", "300".into()), ("POLL_RATE_PER_SEC", "50".into())];
    let app = TestApp::spawn_with(TestOptions { vars, ..Default::default() }).await;
    let phone = "+14155569000";
    app.open_window(phone);
    app.emulator.set_behaviour(phone, Behaviour { drop_callbacks: true, read_receipts: Some(false), ..Default::default() });
    let id = app.send_ok(json!({"to": phone, "body": "never read"})).await.id;
    let done = app.wait_for_status(&id, MessageStatus::Delivered).await;
    assert_eq!(done.history.last().map(|h| h.source), Some(StatusSource::Poll));
    // It stays `delivered`: polled again while silent, without a log entry each time.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let later = app.delivery_status(&id).await;
    assert_eq!(later.message.status, MessageStatus::Delivered);
    assert_eq!(later.history.len(), done.history.len(), "{:#?}", later.history);
    app.finish().await;
}
