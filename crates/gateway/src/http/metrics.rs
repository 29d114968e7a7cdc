//! `GET /delivery-metrics` and `GET /phones/{phone}/performance`, computed from rollups.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;

use super::auth::{Authorized, ReadMetrics};
use super::dto::metrics::{BucketView, MetricsReport, PhoneErrorView, PhonePerformanceView, Summary};
use super::dto::{GranularityName, parse_rfc3339, rfc3339};
use super::extract::{Path, Query};
use super::paths;
use super::problem::{ApiError, FieldError, ProblemDetails};
use crate::domain::{Granularity, PhoneHealth, PhoneNumber, now_ms};
use crate::state::AppState;
use crate::store::MetricsBucket;

pub(super) fn router() -> Router<AppState> {
    Router::new().route(paths::DELIVERY_METRICS, get(delivery_metrics)).route(paths::PHONE_PERFORMANCE, get(phone_performance))
}

/// The time range, bucket size and recipient of a metrics report (all optional).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct MetricsQuery {
    /// Start of the range, RFC 3339; default `to` minus 24 hours (hour buckets) or 30 days (day
    /// buckets). The range is `[from, to)`: a `from` at or after `to` is an empty range. Only
    /// buckets with traffic are listed.
    #[param(format = DateTime)]
    from: Option<String>,
    /// End of the range, RFC 3339; default now.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Bucket size: `hour` (default) or `day`.
    #[param(value_type = Option<GranularityName>)]
    granularity: Option<String>,
    /// Only messages to this number (E.164, `whatsapp:` optional).
    to_phone: Option<String>,
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

/// Delivery metrics: totals, rates, delivery times and error codes, per hour or day bucket.
#[utoipa::path(
    get,
    path = "/api/v1/whatsapp/delivery-metrics",
    tag = "metrics",
    operation_id = "delivery_metrics",
    security(("bearer" = ["metrics:read"])),
    params(MetricsQuery),
    responses(
        (status = 200, description = "The metrics report.", body = MetricsReport),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Invalid parameters; every bad parameter is named.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn delivery_metrics(
    State(state): State<AppState>,
    _claims: Authorized<ReadMetrics>,
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
    let phone = q
        .to_phone
        .map(|p| PhoneNumber::parse_exact(&p).map_err(|e| errors.push(FieldError::new("to_phone", e.to_string()))))
        .transpose()
        .ok()
        .flatten();
    if !errors.is_empty() {
        return Err(ApiError::Validation(errors));
    }
    // `[from, to)` with `from` at or after `to` is empty: nothing to read.
    let buckets = if from < to { state.gateway.metrics(granularity, from, to, phone.as_ref()).await? } else { Vec::new() };
    Ok(Json(MetricsReport {
        from: rfc3339(from),
        to: rfc3339(to),
        granularity: granularity.as_str().to_owned(),
        to_phone: phone.map(|p| p.as_e164().to_owned()),
        totals: summarize(&buckets),
        buckets: buckets.iter().map(|b| BucketView { start: rfc3339(b.bucket_start), summary: summarize([b]) }).collect(),
    }))
}

/// Per-phone totals, delivery rate, health and the last 5 errors.
#[utoipa::path(
    get,
    path = "/api/v1/whatsapp/phones/{phone}/performance",
    tag = "metrics",
    operation_id = "phone_performance",
    security(("bearer" = ["metrics:read"])),
    params(("phone" = String, Path, description = "The phone number, E.164 (`+` may be percent-encoded as `%2B`; `whatsapp:` optional).", example = "+14155550123")),
    responses(
        (status = 200, description = "The phone's performance.", body = PhonePerformanceView),
        (status = 401, description = "No valid bearer token.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 404, description = "No message has been sent to this number.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 422, description = "Not a valid phone number.", body = ProblemDetails, content_type = "application/problem+json"),
        (status = 429, description = "Rate limited; see `Retry-After`.", body = ProblemDetails, content_type = "application/problem+json"),
    )
)]
async fn phone_performance(
    State(state): State<AppState>,
    _claims: Authorized<ReadMetrics>,
    Path(phone): Path<String>,
) -> Result<Json<PhonePerformanceView>, ApiError> {
    let phone = PhoneNumber::parse_exact(&phone).map_err(|e| ApiError::field("phone", e.to_string()))?;
    let perf = state.gateway.phone_performance(&phone).await?;
    Ok(Json(PhonePerformanceView {
        delivery_rate: percent(perf.success_count, perf.total_messages),
        // A number Twilio refused for good is failing whatever its history.
        health: if perf.suppressed.is_some() { PhoneHealth::Failing } else { PhoneHealth::assess(perf.success_count, perf.failure_count) },
        suppressed_code: perf.suppressed.map(|(code, _)| code),
        suppressed_at: perf.suppressed.map(|(_, at)| rfc3339(at)),
        phone: perf.phone.as_e164().to_owned(),
        total_messages: perf.total_messages,
        delivered: perf.success_count,
        read: perf.read_count,
        failed: perf.failure_count,
        last_message_at: perf.last_message_at.map(rfc3339),
        recent_errors: perf
            .recent_errors
            .into_iter()
            .map(|e| PhoneErrorView {
                message_id: e.message_id.to_string(),
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
