//! `GET /delivery-metrics` and `GET /phones/{phone}/performance`, computed from rollups.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::auth::Claims;
use super::dto::{parse_rfc3339, rfc3339};
use crate::domain::{PhoneHealth, PhoneNumber};
use crate::error::{ApiError, FieldError};
use crate::store::{Granularity, MetricsBucket, now_ms};

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/whatsapp/delivery-metrics", get(delivery_metrics))
        .route("/api/v1/whatsapp/phones/{phone}/performance", get(phone_performance))
}

#[derive(Debug, Deserialize)]
struct MetricsQuery {
    from: Option<String>,
    to: Option<String>,
    granularity: Option<String>,
    to_phone: Option<String>,
}

/// Counts and rates of a set of buckets.
#[derive(Debug, Serialize, PartialEq)]
struct Summary {
    /// Messages that left `pending` (accepted by Twilio, or failed before).
    total: i64,
    sent: i64,
    delivered: i64,
    read: i64,
    failed: i64,
    undelivered: i64,
    /// Percent of `total` delivered (or read).
    delivery_rate: f64,
    /// Percent of delivered messages that were read.
    read_rate: f64,
    /// Percent of `total` failed or undelivered.
    failure_rate: f64,
    average_delivery_time_ms: Option<f64>,
    p50_delivery_time_ms: Option<f64>,
    p95_delivery_time_ms: Option<f64>,
    error_breakdown: BTreeMap<String, i64>,
}

#[derive(Debug, Serialize)]
struct BucketView {
    start: String,
    #[serde(flatten)]
    summary: Summary,
}

#[derive(Debug, Serialize)]
struct MetricsReport {
    from: String,
    to: String,
    granularity: &'static str,
    to_phone: Option<String>,
    totals: Summary,
    buckets: Vec<BucketView>,
}

fn percent(part: i64, whole: i64) -> f64 {
    if whole == 0 { 0.0 } else { (part as f64 * 10_000.0 / whole as f64).round() / 100.0 }
}

/// The `q` quantile of a histogram of (upper bound, count), interpolated inside its bucket.
fn quantile(histogram: &BTreeMap<i64, i64>, q: f64) -> Option<f64> {
    let total: i64 = histogram.values().sum();
    if total == 0 {
        return None;
    }
    let target = q * total as f64;
    let (mut seen, mut lower) = (0i64, 0i64);
    for (&upper, &count) in histogram {
        if (seen + count) as f64 >= target && count > 0 {
            if upper == i64::MAX {
                return Some(lower as f64);
            }
            let within = (target - seen as f64) / count as f64;
            return Some(lower as f64 + within * (upper - lower) as f64);
        }
        seen += count;
        lower = upper;
    }
    Some(lower as f64)
}

fn summarize<'a>(buckets: impl IntoIterator<Item = &'a MetricsBucket>) -> Summary {
    let mut s = Summary {
        total: 0,
        sent: 0,
        delivered: 0,
        read: 0,
        failed: 0,
        undelivered: 0,
        delivery_rate: 0.0,
        read_rate: 0.0,
        failure_rate: 0.0,
        average_delivery_time_ms: None,
        p50_delivery_time_ms: None,
        p95_delivery_time_ms: None,
        error_breakdown: BTreeMap::new(),
    };
    let (mut time_sum, mut time_count) = (0i64, 0i64);
    let mut histogram = BTreeMap::new();
    for b in buckets {
        s.total += b.total;
        s.sent += b.sent;
        s.delivered += b.delivered;
        s.read += b.read;
        s.failed += b.failed;
        s.undelivered += b.undelivered;
        time_sum += b.delivery_time_sum_ms;
        time_count += b.delivery_time_count;
        for (le, count) in &b.histogram {
            *histogram.entry(*le).or_insert(0) += count;
        }
        for (code, count) in &b.errors {
            *s.error_breakdown.entry(code.to_string()).or_insert(0) += count;
        }
    }
    s.delivery_rate = percent(s.delivered, s.total);
    s.read_rate = percent(s.read, s.delivered);
    s.failure_rate = percent(s.failed + s.undelivered, s.total);
    s.average_delivery_time_ms = (time_count > 0).then(|| time_sum as f64 / time_count as f64);
    s.p50_delivery_time_ms = quantile(&histogram, 0.5);
    s.p95_delivery_time_ms = quantile(&histogram, 0.95);
    s
}

async fn delivery_metrics(
    State(state): State<AppState>,
    _claims: Claims,
    Query(q): Query<MetricsQuery>,
) -> Result<Json<MetricsReport>, ApiError> {
    let mut errors = Vec::new();
    let granularity = match q.granularity.as_deref() {
        None | Some("hour") => Granularity::Hour,
        Some("day") => Granularity::Day,
        Some(other) => {
            errors.push(FieldError::new("granularity", format!("must be `hour` or `day`, got {other:?}")));
            Granularity::Hour
        }
    };
    let now = now_ms();
    let to = q.to.and_then(|v| parse_rfc3339("to", &v).map_err(|e| errors.push(e)).ok()).unwrap_or(now + 1);
    let default_span = match granularity {
        Granularity::Hour => 24 * 3_600_000,
        Granularity::Day => 30 * 86_400_000,
    };
    let from = q.from.and_then(|v| parse_rfc3339("from", &v).map_err(|e| errors.push(e)).ok()).unwrap_or(to - default_span);
    if from >= to {
        errors.push(FieldError::new("from", "must be earlier than `to`"));
    }
    if (to - from) / granularity.millis() > 10_000 {
        errors.push(FieldError::new("from", "the range holds more than 10,000 buckets; use a coarser granularity"));
    }
    let phone = q
        .to_phone
        .map(|p| PhoneNumber::parse(&p).map_err(|e| errors.push(FieldError::new("to_phone", e.to_string()))))
        .transpose()
        .ok()
        .flatten();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    let phone_key = phone.as_ref().map(|p| p.as_e164().to_owned()).unwrap_or_default();
    let buckets = state.gateway.store().metrics_buckets(granularity, from, to, &phone_key).await?;
    Ok(Json(MetricsReport {
        from: rfc3339(from),
        to: rfc3339(to),
        granularity: granularity.as_str(),
        to_phone: phone.map(|p| p.as_e164().to_owned()),
        totals: summarize(&buckets),
        buckets: buckets.iter().map(|b| BucketView { start: rfc3339(b.bucket_start), summary: summarize([b]) }).collect(),
    }))
}

#[derive(Debug, Serialize)]
struct PhoneErrorView {
    message_id: String,
    error_code: Option<i64>,
    error_message: Option<String>,
    at: String,
}

#[derive(Debug, Serialize)]
struct PhonePerformanceView {
    phone: String,
    total_messages: i64,
    delivered: i64,
    read: i64,
    failed: i64,
    delivery_rate: f64,
    health: PhoneHealth,
    last_message_at: Option<String>,
    recent_errors: Vec<PhoneErrorView>,
}

async fn phone_performance(
    State(state): State<AppState>,
    _claims: Claims,
    Path(phone): Path<String>,
) -> Result<Json<PhonePerformanceView>, ApiError> {
    let phone = PhoneNumber::parse(&phone).map_err(|e| ApiError::field("phone", e.to_string()))?;
    let perf = state
        .gateway
        .store()
        .phone_performance(phone.as_e164())
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no message has been sent to {phone}")))?;
    Ok(Json(PhonePerformanceView {
        delivery_rate: percent(perf.success_count, perf.total_messages),
        health: PhoneHealth::assess(perf.success_count, perf.failure_count),
        phone: perf.phone,
        total_messages: perf.total_messages,
        delivered: perf.success_count,
        read: perf.read_count,
        failed: perf.failure_count,
        last_message_at: perf.last_message_at.map(rfc3339),
        recent_errors: perf
            .recent_errors
            .into_iter()
            .map(|e| PhoneErrorView {
                message_id: e.message_id,
                error_code: e.error_code,
                error_message: e.error_message,
                at: rfc3339(e.occurred_at),
            })
            .collect(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_buckets() {
        let h: BTreeMap<i64, i64> = [(1_000, 50), (2_000, 50)].into_iter().collect();
        assert_eq!(quantile(&h, 0.5), Some(1_000.0));
        assert_eq!(quantile(&h, 0.25), Some(500.0));
        assert_eq!(quantile(&h, 0.95), Some(1_900.0));
        assert_eq!(quantile(&BTreeMap::new(), 0.5), None);
    }

    #[test]
    fn rates_are_percentages_of_the_right_base() {
        let b = MetricsBucket { total: 4, sent: 4, delivered: 3, read: 1, failed: 1, ..Default::default() };
        let s = summarize([&b]);
        assert_eq!((s.delivery_rate, s.read_rate, s.failure_rate), (75.0, 33.33, 25.0));
    }
}
