//! Delivery metrics are exact: a delivery time enters the rollups once, when both its ends are
//! known, and moves when a later report corrects either end; a message counts in one outcome.

use whatsapp_gateway::domain::{Granularity, MessageSid, MessageStatus, PhoneNumber, StatusEvent, StatusSource, now_ms};
use whatsapp_gateway::store::{StatusReport, Store};

use crate::helpers::TestApp;
use crate::support::in_flight;

/// The rollups (all phones) and the recipient's buckets (computed from its messages) agree: the
/// test database holds one recipient. Also checks a recipient with no messages has no buckets.
const RECIPIENT: &str = "+14155550180";

async fn same_for_recipient(store: &Store, t0: i64, phone: &str) {
    let phone = PhoneNumber::parse(phone).unwrap();
    let nobody = PhoneNumber::parse("+14155550999").unwrap();
    for granularity in [Granularity::Hour, Granularity::Day] {
        let (from, to) = (t0 - 86_400_000, t0 + 86_400_000);
        let all = store.metrics_buckets(granularity, from, to, None).await.unwrap();
        assert!(!all.is_empty());
        assert_eq!(store.metrics_buckets(granularity, from, to, Some(&phone)).await.unwrap(), all, "{granularity:?}");
        assert_eq!(store.metrics_buckets(granularity, from, to, Some(&nobody)).await.unwrap(), []);
    }
}

async fn totals(store: &Store, t0: i64) -> (i64, i64, i64, i64) {
    same_for_recipient(store, t0, RECIPIENT).await;
    let buckets = store.metrics_buckets(Granularity::Day, t0 - 86_400_000, t0 + 86_400_000, None).await.unwrap();
    let sum: i64 = buckets.iter().map(|b| b.delivery_time_sum_ms).sum();
    let count: i64 = buckets.iter().map(|b| b.delivery_time_count).sum();
    let histogram: i64 = buckets.iter().flat_map(|b| b.histogram.iter().map(|(_, n)| *n)).sum();
    let delivered: i64 = buckets.iter().map(|b| b.delivered).sum();
    (sum, count, histogram, delivered)
}

#[tokio::test]
async fn delivery_time_is_recorded_once_both_ends_are_known_and_follows_corrections() {
    let app = TestApp::spawn().await;
    let store = app.reopen_store().await;
    let t0 = now_ms();
    let (id, attempt) = in_flight(&store, RECIPIENT, "w").await;
    let sid = MessageSid::parse("SM00000000000000000000000000000180").unwrap();
    let report = |source, at| StatusReport {
        id: Some(id),
        sid: sid.clone(),
        event: StatusEvent { status: MessageStatus::Delivered, at, error_code: None },
        source,
        error_message: None,
    };

    // The delivery receipt overtakes Twilio's answer: delivered, but no start yet, so no time.
    store.apply_status(report(StatusSource::Callback, t0 + 60_000)).await.unwrap();
    assert_eq!(totals(&store, t0).await, (0, 0, 0, 1));

    // The worker records Twilio's answer: the start is known, the time enters once.
    store.record_accepted(id, "w", attempt, sid.clone(), false).await.unwrap();
    let record = store.message(id).await.unwrap().unwrap();
    let first = record.lifecycle.delivered_at.unwrap() - record.lifecycle.queued_at.unwrap();
    assert_eq!(totals(&store, t0).await, (first, 1, 1, 1));

    // A report of an earlier delivery (asking Twilio, say) corrects delivered_at: the time moves
    // (sum and histogram), it is not added again.
    store.apply_status(report(StatusSource::Reconcile, record.lifecycle.queued_at.unwrap() + 200)).await.unwrap();
    let corrected = store.message(id).await.unwrap().unwrap();
    assert_eq!(corrected.lifecycle.delivered_at.unwrap() - corrected.lifecycle.queued_at.unwrap(), 200);
    assert_eq!(totals(&store, t0).await, (200, 1, 1, 1));
    let buckets = store.metrics_buckets(Granularity::Hour, t0 - 3_600_000, t0 + 3_600_000, None).await.unwrap();
    let histogram: Vec<(i64, i64)> = buckets.iter().flat_map(|b| b.histogram.clone()).collect();
    assert_eq!(histogram, [(250, 1)], "the entry moved from its old bucket to the 250 ms one");

    // The same callback again changes nothing.
    store.apply_status(report(StatusSource::Callback, t0 + 90_000)).await.unwrap();
    assert_eq!(totals(&store, t0).await, (200, 1, 1, 1));
    store.close().await;
    app.finish().await;
}

#[tokio::test]
async fn undelivered_then_failed_counts_once_as_failed_with_the_last_code() {
    let app = TestApp::spawn().await;
    let store = app.reopen_store().await;
    let (id, attempt) = in_flight(&store, "+14155550181", "w").await;
    let sid = MessageSid::parse("SM00000000000000000000000000000181").unwrap();
    store.record_accepted(id, "w", attempt, sid.clone(), false).await.unwrap();
    for (status, code) in [(MessageStatus::Undelivered, 63016), (MessageStatus::Failed, 30008)] {
        let event = StatusEvent { status, at: now_ms(), error_code: Some(code) };
        store
            .apply_status(StatusReport { id: Some(id), sid: sid.clone(), event, source: StatusSource::Callback, error_message: None })
            .await
            .unwrap();
    }
    same_for_recipient(&store, now_ms(), "+14155550181").await;
    let report = app.metrics("").await.totals;
    assert_eq!((report.total, report.failed, report.undelivered), (1, 1, 0), "one message, one outcome");
    assert_eq!(report.error_breakdown.into_iter().collect::<Vec<_>>(), [("30008".to_owned(), 1)]);
    let perf: whatsapp_gateway::http::dto::metrics::PhonePerformanceView =
        app.get_ok("/api/v1/whatsapp/phones/+14155550181/performance").await;
    assert_eq!((perf.total_messages, perf.failed, perf.delivered), (1, 1, 0));
    assert_eq!(perf.recent_errors.len(), 1, "a failure enters the recent errors once");
    store.close().await;
    app.finish().await;
}
