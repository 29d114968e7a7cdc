//! Throttling never kills a message: Twilio's 429 / 20429 / 63018 hold the sender back (longer
//! for each throttle in a row) and do not count against a message's attempts, so a throttling
//! storm that outlasts the allowance many times over ends with every message read, each created
//! once.

use std::time::Duration;

use serde_json::json;
use twilio_emulator::{ANY_RECIPIENT, Behaviour};
use whatsapp_gateway::domain::{AttemptOutcome, MessageStatus};

use crate::helpers::{TestApp, TestOptions, applied_history};

async fn storm_ends_with_every_message_read(code: u32, first: u32) {
    // Two attempts allowed: any throttled attempt counted against them would dead-letter.
    let app = TestApp::spawn_with(TestOptions { vars: vec![("MAX_ATTEMPTS", "2".into())], ..Default::default() }).await;
    let phones: Vec<String> = (0..12).map(|i| format!("+1415555{:04}", first + i)).collect();
    for phone in &phones {
        app.open_window(phone);
    }
    let storm = Duration::from_millis(2_000);
    let storm_ms = u64::try_from(storm.as_millis()).unwrap();
    app.emulator.set_behaviour(ANY_RECIPIENT, Behaviour { throttle_for_ms: storm_ms, throttle_code: Some(code), ..Default::default() });
    let started = tokio::time::Instant::now();
    let mut ids = Vec::new();
    for phone in &phones {
        ids.push(app.send_ok(json!({"to": phone, "body": format!("through the storm to {phone}")})).await.id);
    }

    let mut most_attempts = 0;
    for id in &ids {
        let done = app.wait_for_status(id, MessageStatus::Read).await;
        let history = applied_history(&done);
        assert!(!history.contains(&MessageStatus::DeadLettered) && !history.contains(&MessageStatus::Failed), "{history:?}");
        let attempts = &done.send_attempts;
        let (last, throttled) = attempts.split_last().expect("attempts were made");
        assert_eq!(last.outcome, AttemptOutcome::Accepted, "{attempts:#?}");
        assert!(throttled.iter().all(|a| a.outcome == AttemptOutcome::Retryable && a.error_code == Some(i64::from(code))), "{attempts:#?}");
        most_attempts = most_attempts.max(done.message.attempts);
        if !throttled.is_empty() {
            let retry = done.history.iter().find(|h| h.status == MessageStatus::Retrying).expect("a throttled attempt is a retry");
            let detail = retry.detail.as_deref().unwrap_or_default();
            assert!(detail.contains("the sender is throttled, not counted against the attempts allowed"), "{detail}");
        }
    }
    assert!(started.elapsed() >= storm, "nothing went through during the storm");
    assert!(most_attempts > 2, "the storm outlasted the allowance of 2 attempts (most attempts: {most_attempts})");

    app.drain().await;
    let counters = app.emulator.counters();
    for phone in &phones {
        assert_eq!(counters.created_to(phone), 1, "exactly one create to {phone}");
    }
    assert!(counters.creates_rejected_429 > 0);
    let totals = app.metrics("").await.totals;
    assert_eq!((totals.total, totals.failed, totals.read), (12, 0, 12));
    app.finish().await;
}

#[tokio::test]
async fn a_20429_storm_longer_than_the_allowance_fails_and_dead_letters_nothing() {
    storm_ends_with_every_message_read(20429, 3000).await;
}

#[tokio::test]
async fn a_63018_storm_is_throttling_too() {
    storm_ends_with_every_message_read(63018, 3100).await;
}
