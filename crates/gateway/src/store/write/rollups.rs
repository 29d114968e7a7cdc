//! A batch's metrics deltas, summed in memory so that each rollup row is written once per batch.
//!
//! Rows: hour and day buckets (of the message's creation time) for all phones — one shard row
//! per writer, so that writers and instances do not queue on one hot row; a query sums the
//! shards —; the recipient's performance row; and a recent-errors entry per new failure. (A
//! recipient's buckets are computed from its messages when asked: see `store::metrics`.)
//! Keys are kept sorted, so every writer locks rollup rows in the same order.

use std::collections::BTreeMap;

use crate::domain::rollup::Delta;
use crate::domain::{Granularity, MessageId, UnixMillis};
use crate::store::records::MessageRecord;

/// The all-phones rollup rows are split into this many shards (phone key `*0` … `*15`).
pub const ALL_PHONES_SHARDS: u32 = 16;

/// A rollup row's key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct RollupKey {
    pub granularity: Granularity,
    pub bucket_start: UnixMillis,
    /// `*N`: shard N of all phones.
    pub phone: String,
}

/// The counters of one rollup row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub total: i64,
    pub sent: i64,
    pub delivered: i64,
    pub read: i64,
    pub failed: i64,
    pub undelivered: i64,
    pub time_sum_ms: i64,
    pub time_count: i64,
}

impl Counters {
    fn add(&mut self, d: &Delta) {
        self.total += d.total;
        self.sent += d.sent;
        self.delivered += d.delivered;
        self.read += d.read;
        self.failed += d.failed;
        self.undelivered += d.undelivered;
        self.time_sum_ms += d.time_sum_ms;
        self.time_count += d.time_count;
    }

    fn is_zero(&self) -> bool {
        *self == Self::default()
    }
}

/// A recipient's performance counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct PhoneCounters {
    pub total: i64,
    pub success: i64,
    pub failure: i64,
    pub read: i64,
    pub last_message_at: Option<UnixMillis>,
}

/// A new entry of a phone's recent errors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PhoneError {
    pub phone: String,
    pub message_id: MessageId,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub occurred_at: UnixMillis,
}

/// Every rollup change of one batch.
#[derive(Debug, Default)]
pub(crate) struct RollupBook {
    pub counters: BTreeMap<RollupKey, Counters>,
    pub histogram: BTreeMap<(RollupKey, i64), i64>,
    pub errors: BTreeMap<(RollupKey, i64), i64>,
    pub phones: BTreeMap<String, PhoneCounters>,
    pub phone_errors: Vec<PhoneError>,
}

impl RollupBook {
    /// Adds one message's change (`m` is the message after it).
    pub fn add(&mut self, shard: &str, m: &MessageRecord, d: &Delta) {
        if d.is_empty() {
            return;
        }
        let to = m.to.as_e164();
        for granularity in Granularity::ALL {
            let bucket_start = granularity.bucket_start(m.created_at);
            let key = RollupKey { granularity, bucket_start, phone: shard.to_owned() };
            for &(le, change) in &d.histogram {
                *self.histogram.entry((key.clone(), le)).or_default() += change;
            }
            for &(code, change) in &d.errors {
                *self.errors.entry((key.clone(), code)).or_default() += change;
            }
            self.counters.entry(key).or_default().add(d);
        }
        let phone = self.phones.entry(to.to_owned()).or_default();
        phone.total += d.total;
        phone.success += d.delivered;
        phone.failure += d.failed + d.undelivered;
        phone.read += d.read;
        if d.total > 0 {
            phone.last_message_at = phone.last_message_at.max(Some(m.created_at));
        }
        if d.newly_failed {
            self.phone_errors.push(PhoneError {
                phone: to.to_owned(),
                message_id: m.id,
                error_code: m.lifecycle.error_code,
                error_message: m.error_message.clone(),
                occurred_at: m.lifecycle.failed_at.unwrap_or(m.lifecycle.last_status_at),
            });
        }
    }

    /// Drops changes that cancelled out within the batch.
    pub fn prune(&mut self) {
        self.counters.retain(|_, c| !c.is_zero());
        self.histogram.retain(|_, v| *v != 0);
        self.errors.retain(|_, v| *v != 0);
        self.phones.retain(|_, p| *p != PhoneCounters::default());
    }
}
