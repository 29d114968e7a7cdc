//! Delivery-time metrics follow corrections: a delivery time enters the rollups once, when both
//! its ends are known, and moves when a later report corrects either end.

mod common;

use common::TestApp;
use whatsapp_gateway::domain::MessageStatus;
use whatsapp_gateway::domain::status::StatusEvent;
use whatsapp_gateway::store::{AttemptOutcome, Granularity, MessageRef, StatusSource, now_ms};

#[tokio::test]
async fn delivery_time_is_recorded_once_both_ends_are_known_and_follows_corrections() {
    let app = TestApp::spawn_with(common::TestOptions { vars: vec![("WORKER_CONCURRENCY", "1".into())], ..Default::default() }).await;
    let store = app.gateway.store();
    let t0 = now_ms();
    let (id, attempt) = common::in_flight(store, "+14155550180", "w").await;
    let sid = "SM00000000000000000000000000000180";
    let target = MessageRef { id: Some(id), sid: sid.into() };
    let delivered = |at| StatusEvent { status: MessageStatus::Delivered, at, error_code: None };
    let totals = async || {
        let buckets = store.metrics_buckets(Granularity::Day, t0 - 86_400_000, t0 + 86_400_000, "").await.unwrap();
        let sum: i64 = buckets.iter().map(|b| b.delivery_time_sum_ms).sum();
        let count: i64 = buckets.iter().map(|b| b.delivery_time_count).sum();
        let histogram: i64 = buckets.iter().flat_map(|b| b.histogram.iter().map(|(_, n)| *n)).sum();
        let delivered: i64 = buckets.iter().map(|b| b.delivered).sum();
        (sum, count, histogram, delivered)
    };

    // The delivery receipt overtakes Twilio's answer: delivered, but no start yet, so no time.
    store.apply_status(&target, &delivered(t0 + 60_000), StatusSource::Callback, None).await.unwrap();
    assert_eq!(totals().await, (0, 0, 0, 1));

    // The worker records Twilio's answer: the start is known, the time enters once.
    store.record_accepted(id, attempt, AttemptOutcome::Accepted, sid, StatusSource::Worker, now_ms()).await.unwrap();
    let record = store.message(id).await.unwrap().unwrap();
    let first = record.lifecycle.delivered_at.unwrap() - record.lifecycle.queued_at.unwrap();
    assert_eq!(totals().await, (first, 1, 1, 1));

    // An earlier copy of the receipt corrects delivered_at: the time moves (sum and histogram), not added again.
    store.apply_status(&target, &delivered(record.lifecycle.queued_at.unwrap() + 200), StatusSource::Callback, None).await.unwrap();
    let corrected = store.message(id).await.unwrap().unwrap();
    assert_eq!(corrected.lifecycle.delivered_at.unwrap() - corrected.lifecycle.queued_at.unwrap(), 200);
    assert_eq!(totals().await, (200, 1, 1, 1));
    let buckets = store.metrics_buckets(Granularity::Hour, t0 - 3_600_000, t0 + 3_600_000, "").await.unwrap();
    let histogram: Vec<(i64, i64)> = buckets.iter().flat_map(|b| b.histogram.clone()).filter(|(_, n)| *n != 0).collect();
    assert_eq!(histogram, [(250, 1)], "the entry moved from its old bucket to the 250 ms one");
}
