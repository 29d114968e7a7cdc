//! Reading the delivery metrics. For all phones from the rollups (written by the batch writer, see
//! [`super::write::rollups`]): a query costs the number of buckets, not of messages. For one
//! recipient from the recipient's own messages (through `messages_to`), each adding what
//! [`standing`] says it has added to the rollups: a recipient has few messages, and keeping hour
//! and day rows per recipient would cost more writes per message than the message itself.

use std::collections::BTreeMap;

use sqlx::AssertSqlSafe;

use super::db::{Store, on_pool};
use super::error::StoreError;
use super::records::{BucketCounters, BucketEntry, CountedMessage, MetricsBucket, PhoneErrorRecord, PhonePerformance, SenderStats};
use super::write::rollups::ALL_PHONES_SHARDS;
use crate::domain::rollup::{Delta, standing};
use crate::domain::{Granularity, Origin, PhoneNumber, UnixMillis};

impl Store {
    /// Metrics buckets in `[from, to)`, oldest first (only buckets with messages), for all phones
    /// (`phone = None`: the rollup shards summed, at most `buckets × shards` rows read whatever
    /// the number of messages) or for one recipient (from its messages).
    pub async fn metrics_buckets(
        &self,
        granularity: Granularity,
        from: UnixMillis,
        to: UnixMillis,
        phone: Option<&PhoneNumber>,
    ) -> Result<Vec<MetricsBucket>, StoreError> {
        match phone {
            Some(phone) => self.recipient_buckets(granularity, from, to, phone).await,
            None => self.rollup_buckets(granularity, from, to).await,
        }
    }

    async fn recipient_buckets(
        &self,
        granularity: Granularity,
        from: UnixMillis,
        to: UnixMillis,
        phone: &PhoneNumber,
    ) -> Result<Vec<MetricsBucket>, StoreError> {
        let sql = "SELECT created_at, counted, status, queued_at, sent_at, delivered_at, read_at, failed_at, error_code, \
                   last_status_at FROM messages WHERE to_addr = $1 AND created_at >= $2 AND created_at < $3 AND counted <> 0";
        let start = granularity.bucket_start(from);
        let rows: Vec<CountedMessage> = on_pool!(self, pool => sqlx::query_as(sql).bind(phone).bind(start).bind(to).fetch_all(pool).await?);
        let mut buckets: BTreeMap<UnixMillis, Delta> = BTreeMap::new();
        for row in rows {
            *buckets.entry(granularity.bucket_start(row.created_at)).or_default() += &standing(&row.lifecycle, row.counted);
        }
        Ok(buckets
            .into_iter()
            .map(|(bucket_start, mut d)| {
                d.histogram.sort_unstable();
                d.errors.sort_unstable();
                MetricsBucket {
                    bucket_start,
                    total: d.total,
                    sent: d.sent,
                    delivered: d.delivered,
                    read: d.read,
                    failed: d.failed,
                    undelivered: d.undelivered,
                    delivery_time_sum_ms: d.time_sum_ms,
                    delivery_time_count: d.time_count,
                    histogram: d.histogram,
                    errors: d.errors,
                }
            })
            .collect())
    }

    async fn rollup_buckets(&self, granularity: Granularity, from: UnixMillis, to: UnixMillis) -> Result<Vec<MetricsBucket>, StoreError> {
        // The all-phones shards are listed by name (constants), so no collation is involved.
        let phones = (0..ALL_PHONES_SHARDS).map(|shard| format!("'*{shard}'")).collect::<Vec<_>>().join(", ");
        let filter = format!("granularity = $1 AND bucket_start >= $2 AND bucket_start < $3 AND phone IN ({phones})");
        let start = granularity.bucket_start(from);
        let counters_sql = format!(
            "SELECT bucket_start, CAST(SUM(total) AS BIGINT) AS total, CAST(SUM(sent) AS BIGINT) AS sent, \
             CAST(SUM(delivered) AS BIGINT) AS delivered, CAST(SUM(read) AS BIGINT) AS read, CAST(SUM(failed) AS BIGINT) AS failed, \
             CAST(SUM(undelivered) AS BIGINT) AS undelivered, CAST(SUM(delivery_time_sum_ms) AS BIGINT) AS delivery_time_sum_ms, \
             CAST(SUM(delivery_time_count) AS BIGINT) AS delivery_time_count FROM delivery_metrics \
             WHERE {filter} GROUP BY bucket_start ORDER BY bucket_start"
        );
        let entries_sql = |table: &str, key: &str| {
            format!(
                "SELECT bucket_start, {key} AS k, CAST(SUM(count) AS BIGINT) AS count FROM {table} \
                 WHERE {filter} GROUP BY bucket_start, {key} HAVING SUM(count) <> 0 ORDER BY bucket_start, {key}"
            )
        };
        let (histogram_sql, errors_sql) = (entries_sql("delivery_time_histogram", "le_ms"), entries_sql("delivery_errors", "error_code"));
        // The same binds for the three queries.
        macro_rules! query {
            ($sql:expr) => {{ sqlx::query_as(AssertSqlSafe($sql)).bind(granularity.as_str()).bind(start).bind(to) }};
        }
        let (counters, histogram, errors): (Vec<BucketCounters>, Vec<BucketEntry>, Vec<BucketEntry>) = on_pool!(self, pool => (
            query!(counters_sql).fetch_all(pool).await?,
            query!(histogram_sql).fetch_all(pool).await?,
            query!(errors_sql).fetch_all(pool).await?,
        ));
        let mut buckets: Vec<MetricsBucket> = counters
            .into_iter()
            .map(|c| MetricsBucket {
                bucket_start: c.bucket_start,
                total: c.total,
                sent: c.sent,
                delivered: c.delivered,
                read: c.read,
                failed: c.failed,
                undelivered: c.undelivered,
                delivery_time_sum_ms: c.delivery_time_sum_ms,
                delivery_time_count: c.delivery_time_count,
                ..MetricsBucket::default()
            })
            .collect();
        for (entries, is_histogram) in [(histogram, true), (errors, false)] {
            for e in entries {
                if let Some(bucket) = buckets.iter_mut().find(|b| b.bucket_start == e.bucket_start) {
                    if is_histogram { bucket.histogram.push((e.k, e.count)) } else { bucket.errors.push((e.k, e.count)) }
                }
            }
        }
        Ok(buckets)
    }

    /// What the outbound messages from `sender` created since `since` came to (a number, or the
    /// Messaging Service).
    pub async fn sender_stats(&self, sender: &Origin, since: UnixMillis) -> Result<SenderStats, StoreError> {
        // Through `messages_from` (from_addr, created_at), then each message's attempts by key.
        let counts = "SELECT COUNT(*) AS total, \
             COALESCE(SUM(CASE WHEN (counted & 2) <> 0 THEN 1 ELSE 0 END), 0) AS sent, \
             COALESCE(SUM(CASE WHEN (counted & 4) <> 0 THEN 1 ELSE 0 END), 0) AS delivered, \
             COALESCE(SUM(CASE WHEN (counted & 8) <> 0 THEN 1 ELSE 0 END), 0) AS read, \
             COALESCE(SUM(CASE WHEN (counted & 48) <> 0 THEN 1 ELSE 0 END), 0) AS failed, \
             MAX(CASE WHEN error_code = 63051 THEN last_status_at END) AS locked_at, \
             MAX(delivered_at) AS last_delivered_at \
             FROM messages WHERE from_addr = $1 AND direction = 'outbound' AND created_at >= $2";
        let throttled = "SELECT COUNT(*) FROM send_attempts a JOIN messages m ON m.id = a.message_id \
             WHERE m.from_addr = $1 AND m.direction = 'outbound' AND m.created_at >= $2 \
             AND (a.http_status = 429 OR a.error_code IN (20429, 63018))";
        // Through `messages_to` (to_addr, created_at).
        let received = "SELECT COUNT(*) FROM messages WHERE to_addr = $1 AND direction = 'inbound' AND created_at >= $2";
        let (mut stats, throttled, received): (SenderStats, i64, i64) = on_pool!(self, pool => {
            let stats = sqlx::query_as(counts).bind(sender).bind(since).fetch_one(pool).await?;
            let throttled = sqlx::query_scalar(throttled).bind(sender).bind(since).fetch_one(pool).await?;
            let received = sqlx::query_scalar(received).bind(sender).bind(since).fetch_one(pool).await?;
            (stats, throttled, received)
        });
        stats.throttled = throttled;
        stats.received = received;
        Ok(stats)
    }

    /// A recipient's performance, if any message was sent to it.
    pub async fn phone_performance(&self, phone: &PhoneNumber) -> Result<Option<PhonePerformance>, StoreError> {
        let (row, errors): (Option<PhonePerformance>, Vec<PhoneErrorRecord>) = on_pool!(self, pool => (
            sqlx::query_as("SELECT * FROM phone_performance WHERE phone = $1").bind(phone).fetch_optional(pool).await?,
            sqlx::query_as("SELECT * FROM phone_errors WHERE phone = $1 ORDER BY id DESC LIMIT 5").bind(phone).fetch_all(pool).await?,
        ));
        Ok(row.map(|perf| PhonePerformance { recent_errors: errors, ..perf }))
    }
}
