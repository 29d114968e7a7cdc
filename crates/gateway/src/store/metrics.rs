//! Reading the delivery-metrics rollups (written by the batch writer, see
//! [`super::write::rollups`]): a query costs the number of buckets, not of messages.

use sqlx::AssertSqlSafe;

use super::db::{Store, on_pool};
use super::error::StoreError;
use super::records::{BucketCounters, BucketEntry, MetricsBucket, PhoneErrorRecord, PhonePerformance};
use super::write::rollups::ALL_PHONES_SHARDS;
use crate::domain::{Granularity, PhoneNumber, UnixMillis};

impl Store {
    /// Rollup buckets in `[from, to)`, oldest first, for all phones (`phone = None`, the shards
    /// summed) or one. Reads at most `buckets × shards` rows, whatever the number of messages.
    pub async fn metrics_buckets(
        &self,
        granularity: Granularity,
        from: UnixMillis,
        to: UnixMillis,
        phone: Option<&PhoneNumber>,
    ) -> Result<Vec<MetricsBucket>, StoreError> {
        // The all-phones shards are listed by name (constants), so no collation is involved.
        let phones = match phone {
            None => (0..ALL_PHONES_SHARDS).map(|shard| format!("'*{shard}'")).collect::<Vec<_>>().join(", "),
            Some(_) => "$4".to_owned(),
        };
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
        let one_phone = phone.is_some();
        let phone = phone.map(|p| p.as_e164().to_owned()).unwrap_or_default();
        // The same binds for the three queries.
        macro_rules! query {
            ($sql:expr) => {{
                let query = sqlx::query_as(AssertSqlSafe($sql)).bind(granularity.as_str()).bind(start).bind(to);
                if one_phone { query.bind(phone.clone()) } else { query }
            }};
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

    /// A recipient's performance, if any message was sent to it.
    pub async fn phone_performance(&self, phone: &PhoneNumber) -> Result<Option<PhonePerformance>, StoreError> {
        let (row, errors): (Option<PhonePerformance>, Vec<PhoneErrorRecord>) = on_pool!(self, pool => (
            sqlx::query_as("SELECT * FROM phone_performance WHERE phone = $1").bind(phone).fetch_optional(pool).await?,
            sqlx::query_as("SELECT * FROM phone_errors WHERE phone = $1 ORDER BY id DESC LIMIT 5").bind(phone).fetch_all(pool).await?,
        ));
        Ok(row.map(|perf| PhonePerformance { recent_errors: errors, ..perf }))
    }
}
