//! Delivery metrics, maintained incrementally: each applied report adds to hour and day rollup
//! rows (for all phones and for the recipient), a delivery-time histogram, an error breakdown and
//! the recipient's performance row. A message is counted at most once per counter: the message
//! row keeps a bit set of what it has been counted in. Queries read rollups only, so their cost is
//! the number of buckets, not of messages.

use sqlx::AssertSqlSafe;

use super::rows::{int, opt_int, opt_text};
use super::{MessageRecord, Store, StoreError};
use crate::domain::MessageStatus;
use crate::domain::status::{Lifecycle, UnixMillis};

const TOTAL: i64 = 1;
const SENT: i64 = 2;
const DELIVERED: i64 = 4;
const READ: i64 = 8;
const FAILED: i64 = 16;
const UNDELIVERED: i64 = 32;
/// The message's delivery time is in the sum and the histogram (and is corrected whenever a
/// later report moves its start or its delivery time).
const TIMED: i64 = 64;

/// From Twilio's acceptance to the delivery receipt. (`sent_at` is no start: a delivery receipt
/// implies it, with the receipt's own time.)
fn delivery_ms(l: &Lifecycle) -> Option<i64> {
    l.delivered_at.zip(l.queued_at).map(|(delivered, accepted)| (delivered - accepted).max(0))
}

fn histogram_bucket(ms: i64) -> i64 {
    HISTOGRAM_BOUNDS_MS.into_iter().find(|bound| ms <= *bound).unwrap_or(i64::MAX)
}

/// The all-phones rollup rows are split into this many shards (phone key `*0` … `*15`, chosen by
/// message id) so that concurrent transitions do not all queue on one hot row; a query sums them.
/// Per-recipient rows (phone key `+E164`) are naturally spread already.
pub const ALL_PHONES_SHARDS: u128 = 16;

fn all_phones_key(message: &MessageRecord) -> String {
    format!("*{}", message.id.as_uuid().as_u128() % ALL_PHONES_SHARDS)
}

/// Upper bounds (ms) of the delivery-time histogram buckets; the last bucket is open-ended.
pub const HISTOGRAM_BOUNDS_MS: [i64; 16] = [
    250,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    1_800_000,
    3_600_000,
    21_600_000,
    86_400_000,
    i64::MAX,
];

/// The counters a lifecycle deserves, as a bit set.
pub(super) fn counted_flags(l: &Lifecycle) -> i64 {
    let mut flags = 0;
    if l.status.rank() >= 1 {
        flags |= TOTAL;
    }
    if l.queued_at.is_some() || l.sent_at.is_some() {
        flags |= SENT;
    }
    if delivery_ms(l).is_some() {
        flags |= TIMED;
    }
    if l.delivered_at.is_some() {
        flags |= DELIVERED;
    }
    if l.read_at.is_some() {
        flags |= READ;
    }
    if l.status == MessageStatus::Failed {
        flags |= FAILED;
    }
    if l.status == MessageStatus::Undelivered {
        flags |= UNDELIVERED;
    }
    flags
}

/// Rollup granularity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granularity {
    /// One bucket per hour.
    Hour,
    /// One bucket per day (UTC).
    Day,
}

impl Granularity {
    /// Its name in the database and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// Bucket length in milliseconds.
    pub fn millis(self) -> i64 {
        match self {
            Self::Hour => 3_600_000,
            Self::Day => 86_400_000,
        }
    }

    /// Start of the bucket holding `at`.
    pub fn bucket_start(self, at: UnixMillis) -> UnixMillis {
        at - at.rem_euclid(self.millis())
    }
}

/// Adds a message's newly earned counters to every rollup it belongs to.
pub(super) async fn record_counts(
    conn: &mut sqlx::AnyConnection,
    message: &MessageRecord,
    next: &Lifecycle,
    newly: i64,
    error_message: Option<&str>,
) -> Result<(), StoreError> {
    // A delivery time enters the rollups once, and moves with later corrections of its ends
    // (a `read` that overtook its `delivered`, a `delivered` that overtook the worker's answer).
    let recorded = (message.counted & TIMED != 0).then(|| delivery_ms(&message.lifecycle)).flatten();
    let (time_sum, time_count, histogram) = match (recorded, delivery_ms(next)) {
        (None, Some(ms)) => (ms, 1, vec![(histogram_bucket(ms), 1)]),
        (Some(old), Some(new)) if old != new => {
            let moved = histogram_bucket(old) != histogram_bucket(new);
            (new - old, 0, if moved { vec![(histogram_bucket(old), -1), (histogram_bucket(new), 1)] } else { Vec::new() })
        }
        _ => (0, 0, Vec::new()),
    };
    if newly & !TIMED == 0 && time_sum == 0 && histogram.is_empty() {
        return Ok(());
    }
    let bit = |flag: i64| i64::from(newly & flag != 0);
    let newly_failed = newly & (FAILED | UNDELIVERED) != 0 && message.counted & (FAILED | UNDELIVERED) == 0;
    for granularity in [Granularity::Hour, Granularity::Day] {
        let bucket = granularity.bucket_start(message.created_at);
        let all_phones = all_phones_key(message);
        for phone in [all_phones.as_str(), message.to.as_str()] {
            sqlx::query(
                "INSERT INTO delivery_metrics (granularity, bucket_start, phone, total, sent, delivered, read, failed, undelivered, \
                 delivery_time_sum_ms, delivery_time_count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
                 ON CONFLICT (granularity, phone, bucket_start) DO UPDATE SET total = delivery_metrics.total + excluded.total, \
                 sent = delivery_metrics.sent + excluded.sent, delivered = delivery_metrics.delivered + excluded.delivered, \
                 read = delivery_metrics.read + excluded.read, failed = delivery_metrics.failed + excluded.failed, \
                 undelivered = delivery_metrics.undelivered + excluded.undelivered, \
                 delivery_time_sum_ms = delivery_metrics.delivery_time_sum_ms + excluded.delivery_time_sum_ms, \
                 delivery_time_count = delivery_metrics.delivery_time_count + excluded.delivery_time_count",
            )
            .bind(granularity.as_str().to_owned())
            .bind(bucket)
            .bind(phone.to_owned())
            .bind(bit(TOTAL))
            .bind(bit(SENT))
            .bind(bit(DELIVERED))
            .bind(bit(READ))
            .bind(bit(FAILED))
            .bind(bit(UNDELIVERED))
            .bind(time_sum)
            .bind(time_count)
            .execute(&mut *conn)
            .await?;
            for (le, delta) in &histogram {
                upsert_count(conn, "delivery_time_histogram", "le_ms", granularity, bucket, phone, *le, *delta).await?;
            }
            if newly_failed {
                upsert_count(conn, "delivery_errors", "error_code", granularity, bucket, phone, next.error_code.unwrap_or(0), 1).await?;
            }
        }
    }
    sqlx::query(
        "INSERT INTO phone_performance (phone, total_messages, success_count, failure_count, read_count, last_message_at) \
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (phone) DO UPDATE SET \
         total_messages = phone_performance.total_messages + excluded.total_messages, \
         success_count = phone_performance.success_count + excluded.success_count, \
         failure_count = phone_performance.failure_count + excluded.failure_count, \
         read_count = phone_performance.read_count + excluded.read_count, \
         last_message_at = CASE WHEN excluded.last_message_at IS NULL THEN phone_performance.last_message_at \
             WHEN phone_performance.last_message_at IS NULL OR phone_performance.last_message_at < excluded.last_message_at \
             THEN excluded.last_message_at ELSE phone_performance.last_message_at END",
    )
    .bind(message.to.clone())
    .bind(bit(TOTAL))
    .bind(bit(DELIVERED))
    .bind(i64::from(newly_failed))
    .bind(bit(READ))
    .bind((newly & TOTAL != 0).then_some(message.created_at))
    .execute(&mut *conn)
    .await?;
    if newly_failed {
        sqlx::query("INSERT INTO phone_errors (phone, message_id, error_code, error_message, occurred_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(message.to.clone())
            .bind(message.id.to_string())
            .bind(next.error_code)
            .bind(error_message.map(str::to_owned))
            .bind(next.failed_at.unwrap_or(next.last_status_at))
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn upsert_count(
    conn: &mut sqlx::AnyConnection,
    table: &str,
    key: &str,
    granularity: Granularity,
    bucket: i64,
    phone: &str,
    value: i64,
    delta: i64,
) -> Result<(), StoreError> {
    sqlx::query(AssertSqlSafe(format!(
        "INSERT INTO {table} (granularity, bucket_start, phone, {key}, count) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (granularity, phone, bucket_start, {key}) DO UPDATE SET count = {table}.count + excluded.count"
    )))
    .bind(granularity.as_str().to_owned())
    .bind(bucket)
    .bind(phone.to_owned())
    .bind(value)
    .bind(delta)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// One rollup bucket with its histogram and error breakdown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MetricsBucket {
    /// Bucket start (ms).
    pub bucket_start: UnixMillis,
    /// Messages that left `pending` (accepted by Twilio or failed).
    pub total: i64,
    /// Accepted by Twilio.
    pub sent: i64,
    /// Delivered (or read).
    pub delivered: i64,
    /// Read.
    pub read: i64,
    /// Failed.
    pub failed: i64,
    /// Undelivered.
    pub undelivered: i64,
    /// Sum of delivery times (ms).
    pub delivery_time_sum_ms: i64,
    /// Number of delivery times summed.
    pub delivery_time_count: i64,
    /// Delivery-time histogram: (upper bound ms, count).
    pub histogram: Vec<(i64, i64)>,
    /// Error code → count.
    pub errors: Vec<(i64, i64)>,
}

/// A recipient's performance row and its latest errors.
#[derive(Debug, Clone, PartialEq)]
pub struct PhonePerformance {
    /// The recipient.
    pub phone: String,
    /// Messages that left `pending`.
    pub total_messages: i64,
    /// Delivered (or read).
    pub success_count: i64,
    /// Failed or undelivered.
    pub failure_count: i64,
    /// Read.
    pub read_count: i64,
    /// When the latest message was created.
    pub last_message_at: Option<UnixMillis>,
    /// The 5 latest errors, newest first.
    pub recent_errors: Vec<PhoneErrorRecord>,
}

/// One failed message in a phone's history.
#[derive(Debug, Clone, PartialEq)]
pub struct PhoneErrorRecord {
    /// The message.
    pub message_id: String,
    /// Error code.
    pub error_code: Option<i64>,
    /// Error text.
    pub error_message: Option<String>,
    /// When.
    pub occurred_at: UnixMillis,
}

impl Store {
    /// Rollup buckets in `[from, to)`, oldest first, for all phones (`phone = ""`, the shards
    /// summed) or one. Reads at most `buckets × shards` rows, whatever the number of messages.
    pub async fn metrics_buckets(
        &self,
        granularity: Granularity,
        from: UnixMillis,
        to: UnixMillis,
        phone: &str,
    ) -> Result<Vec<MetricsBucket>, StoreError> {
        // The all-phones shards are listed by name (constants), so no collation is involved.
        let (phones, one_phone) = if phone.is_empty() {
            ((0..ALL_PHONES_SHARDS).map(|shard| format!("'*{shard}'")).collect::<Vec<_>>().join(", "), None)
        } else {
            ("$4".to_owned(), Some(phone.to_owned()))
        };
        let filter = format!("granularity = $1 AND bucket_start >= $2 AND bucket_start < $3 AND phone IN ({phones})");
        let bind = |query: sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>| {
            let query = query.bind(granularity.as_str().to_owned()).bind(granularity.bucket_start(from)).bind(to);
            match &one_phone {
                Some(p) => query.bind(p.clone()),
                None => query,
            }
        };
        let rows = bind(sqlx::query(AssertSqlSafe(format!(
            "SELECT bucket_start, CAST(SUM(total) AS BIGINT) AS total, CAST(SUM(sent) AS BIGINT) AS sent, \
             CAST(SUM(delivered) AS BIGINT) AS delivered, CAST(SUM(read) AS BIGINT) AS read, CAST(SUM(failed) AS BIGINT) AS failed, \
             CAST(SUM(undelivered) AS BIGINT) AS undelivered, CAST(SUM(delivery_time_sum_ms) AS BIGINT) AS delivery_time_sum_ms, \
             CAST(SUM(delivery_time_count) AS BIGINT) AS delivery_time_count FROM delivery_metrics \
             WHERE {filter} GROUP BY bucket_start ORDER BY bucket_start"
        ))))
        .fetch_all(&self.pool)
        .await?;
        let mut buckets = rows
            .iter()
            .map(|row| {
                Ok(MetricsBucket {
                    bucket_start: int(row, "bucket_start")?,
                    total: int(row, "total")?,
                    sent: int(row, "sent")?,
                    delivered: int(row, "delivered")?,
                    read: int(row, "read")?,
                    failed: int(row, "failed")?,
                    undelivered: int(row, "undelivered")?,
                    delivery_time_sum_ms: int(row, "delivery_time_sum_ms")?,
                    delivery_time_count: int(row, "delivery_time_count")?,
                    ..Default::default()
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        for (table, key) in [("delivery_time_histogram", "le_ms"), ("delivery_errors", "error_code")] {
            let rows = bind(sqlx::query(AssertSqlSafe(format!(
                "SELECT bucket_start, {key} AS k, CAST(SUM(count) AS BIGINT) AS count FROM {table} \
                 WHERE {filter} GROUP BY bucket_start, {key} ORDER BY bucket_start, {key}"
            ))))
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                let start = int(&row, "bucket_start")?;
                let entry = (int(&row, "k")?, int(&row, "count")?);
                if let Some(bucket) = buckets.iter_mut().find(|b| b.bucket_start == start) {
                    if table == "delivery_errors" { bucket.errors.push(entry) } else { bucket.histogram.push(entry) }
                }
            }
        }
        Ok(buckets)
    }

    /// A recipient's performance, if any message was sent to it.
    pub async fn phone_performance(&self, phone: &str) -> Result<Option<PhonePerformance>, StoreError> {
        let Some(row) = sqlx::query(
            "SELECT phone, total_messages, success_count, failure_count, read_count, last_message_at FROM phone_performance WHERE phone = $1",
        )
        .bind(phone.to_owned())
        .fetch_optional(&self.pool)
        .await?
        else {
            return Ok(None);
        };
        let errors = sqlx::query(
            "SELECT message_id, error_code, error_message, occurred_at FROM phone_errors WHERE phone = $1 ORDER BY id DESC LIMIT 5",
        )
        .bind(phone.to_owned())
        .fetch_all(&self.pool)
        .await?;
        Ok(Some(PhonePerformance {
            phone: phone.to_owned(),
            total_messages: int(&row, "total_messages")?,
            success_count: int(&row, "success_count")?,
            failure_count: int(&row, "failure_count")?,
            read_count: int(&row, "read_count")?,
            last_message_at: opt_int(&row, "last_message_at")?,
            recent_errors: errors
                .iter()
                .map(|e| {
                    Ok(PhoneErrorRecord {
                        message_id: super::rows::text(e, "message_id")?,
                        error_code: opt_int(e, "error_code")?,
                        error_message: opt_text(e, "error_message")?,
                        occurred_at: int(e, "occurred_at")?,
                    })
                })
                .collect::<Result<_, StoreError>>()?,
        }))
    }
}
