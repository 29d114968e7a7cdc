//! What the metrics endpoints answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::request::GranularityName;
use crate::domain::PhoneHealth;

/// Counts and rates of a set of buckets. Rates are percentages (0 … 100, two decimals).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Summary {
    /// Messages that left `pending` (accepted by Twilio, or failed before).
    pub total: i64,
    /// Messages WhatsApp accepted.
    pub sent: i64,
    /// Messages delivered (or read).
    pub delivered: i64,
    /// Messages read.
    pub read: i64,
    /// Messages that failed.
    pub failed: i64,
    /// Messages WhatsApp could not deliver.
    pub undelivered: i64,
    /// Percent of `total` delivered (or read).
    pub delivery_rate: f64,
    /// Percent of delivered messages that were read.
    pub read_rate: f64,
    /// Percent of `total` failed or undelivered.
    pub failure_rate: f64,
    /// Average time from Twilio's acceptance to the delivery receipt, in milliseconds.
    pub average_delivery_time_ms: Option<f64>,
    /// Median delivery time in milliseconds (from a histogram, interpolated within a bucket).
    pub p50_delivery_time_ms: Option<f64>,
    /// 95th percentile delivery time in milliseconds.
    pub p95_delivery_time_ms: Option<f64>,
    /// Number of failed or undelivered messages per Twilio error code.
    #[schema(example = json!({"63016": 2}))]
    pub error_breakdown: BTreeMap<String, i64>,
}

/// One bucket: its start and the summary of the messages created in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BucketView {
    /// Start of the bucket, RFC 3339.
    #[schema(format = DateTime)]
    pub start: String,
    /// The bucket's counts and rates, at the top level.
    #[serde(flatten)]
    pub summary: Summary,
}

/// Delivery metrics over a time range: totals and one entry per bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct MetricsReport {
    /// Start of the range, RFC 3339.
    #[schema(format = DateTime)]
    pub from: String,
    /// End of the range, RFC 3339.
    #[schema(format = DateTime)]
    pub to: String,
    /// Bucket size.
    #[schema(value_type = GranularityName)]
    pub granularity: String,
    /// The recipient the report is restricted to, E.164, if any.
    pub to_phone: Option<String>,
    /// The whole range.
    pub totals: Summary,
    /// Buckets that hold messages, oldest first.
    pub buckets: Vec<BucketView>,
}

/// One recent failure of a message to a phone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhoneErrorView {
    /// The message's id.
    #[schema(format = "uuid")]
    pub message_id: String,
    /// Twilio's error code, if any.
    pub error_code: Option<i64>,
    /// The error, if any.
    pub error_message: Option<String>,
    /// When it failed, RFC 3339.
    #[schema(format = DateTime)]
    pub at: String,
}

/// How messages to one phone number are doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PhonePerformanceView {
    /// The phone number, E.164.
    #[schema(example = "+14155550123")]
    pub phone: String,
    /// Messages to it that left `pending` (accepted by Twilio, or failed before).
    pub total_messages: i64,
    /// Messages delivered (or read).
    pub delivered: i64,
    /// Messages read.
    pub read: i64,
    /// Messages that failed or went undelivered.
    pub failed: i64,
    /// Percent of `total_messages` delivered (0 … 100, two decimals).
    pub delivery_rate: f64,
    /// `healthy`, `degraded` (over 10% failures) or `failing` (over 50%, or suppressed).
    pub health: PhoneHealth,
    /// While the number is suppressed: the Twilio error that suppressed it (63024, 21211,
    /// 21614). Sends to it are refused unless forced, until the contact writes.
    #[serde(default)]
    pub suppressed_code: Option<i64>,
    /// When it was suppressed, RFC 3339.
    #[serde(default)]
    #[schema(format = DateTime)]
    pub suppressed_at: Option<String>,
    /// When the latest message to it was created, RFC 3339.
    #[schema(format = DateTime)]
    pub last_message_at: Option<String>,
    /// The last 5 errors, newest first.
    #[schema(max_items = 5)]
    pub recent_errors: Vec<PhoneErrorView>,
}
