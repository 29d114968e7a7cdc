//! Rollup arithmetic: what one change of a message's lifecycle adds to (or moves between) the
//! delivery-metrics counters. Pure: the store sums these deltas per batch and writes each rollup
//! row once.
//!
//! A message is counted at most once per counter, and in exactly one outcome: `delivered` (read
//! or not), `failed` or `undelivered`, whichever its current status says. When the outcome
//! changes (an `undelivered` later reported `failed`), the count moves; it is never in two. The
//! message row keeps what it has been counted in ([`Counted`]), so a repeated or late report adds
//! nothing. A delivery time enters the sum and the histogram once both of its ends are known, and
//! moves with later corrections of either end.

use super::status::{Lifecycle, MessageStatus};

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

/// The histogram bucket (its upper bound) a delivery time falls in.
pub fn histogram_bucket(ms: i64) -> i64 {
    HISTOGRAM_BOUNDS_MS.into_iter().find(|bound| ms <= *bound).unwrap_or(i64::MAX)
}

/// What a message has been counted in, as the bit set stored on its row.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counted(pub i64);

impl Counted {
    /// Left `pending`: accepted by Twilio, or failed before.
    pub const TOTAL: i64 = 1;
    /// Accepted by Twilio.
    pub const SENT: i64 = 2;
    /// Outcome: delivered (or read).
    pub const DELIVERED: i64 = 4;
    /// Read (only with [`DELIVERED`](Self::DELIVERED)).
    pub const READ: i64 = 8;
    /// Outcome: failed.
    pub const FAILED: i64 = 16;
    /// Outcome: undelivered.
    pub const UNDELIVERED: i64 = 32;
    /// Its delivery time is in the sum and the histogram.
    pub const TIMED: i64 = 64;

    /// What a lifecycle deserves to be counted in.
    pub fn of(l: &Lifecycle) -> Self {
        let mut bits = 0;
        // A message withdrawn before it was sent is no message sent: it counts nowhere.
        if l.status.rank() >= 1 && l.status != MessageStatus::Canceled {
            bits |= Self::TOTAL;
        }
        if l.queued_at.is_some() || l.sent_at.is_some() {
            bits |= Self::SENT;
        }
        match l.status {
            status if status.is_failed() => bits |= Self::FAILED,
            MessageStatus::Undelivered => bits |= Self::UNDELIVERED,
            _ if l.delivered_at.is_some() => {
                bits |= Self::DELIVERED;
                if l.read_at.is_some() {
                    bits |= Self::READ;
                }
            }
            _ => {}
        }
        if delivery_ms(l).is_some() {
            bits |= Self::TIMED;
        }
        Self(bits)
    }

    /// Whether `flag` is set.
    pub fn has(self, flag: i64) -> bool {
        self.0 & flag != 0
    }

    fn delta(self, after: Self, flag: i64) -> i64 {
        i64::from(after.has(flag)) - i64::from(self.has(flag))
    }

    fn is_failure(self) -> bool {
        self.has(Self::FAILED) || self.has(Self::UNDELIVERED)
    }
}

impl From<i64> for Counted {
    fn from(bits: i64) -> Self {
        Self(bits)
    }
}

/// From Twilio's acceptance to the delivery receipt. (`sent_at` is no start: a delivery receipt
/// implies it, with the receipt's own time.)
pub fn delivery_ms(l: &Lifecycle) -> Option<i64> {
    l.delivered_at.zip(l.queued_at).map(|(delivered, accepted)| (delivered - accepted).max(0))
}

/// What one change adds to every rollup the message belongs to (negative numbers move a count).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delta {
    /// Messages that left `pending`.
    pub total: i64,
    /// Accepted by Twilio.
    pub sent: i64,
    /// Outcome delivered.
    pub delivered: i64,
    /// Read.
    pub read: i64,
    /// Outcome failed.
    pub failed: i64,
    /// Outcome undelivered.
    pub undelivered: i64,
    /// Change of the delivery-time sum (ms).
    pub time_sum_ms: i64,
    /// Change of the number of delivery times summed.
    pub time_count: i64,
    /// Histogram changes: (bucket upper bound, change).
    pub histogram: Vec<(i64, i64)>,
    /// Error-breakdown changes: (error code, 0 for none; change).
    pub errors: Vec<(i64, i64)>,
    /// The message newly counted as a failure (for the phone's list of recent errors).
    pub newly_failed: bool,
}

impl Delta {
    /// Whether the change touches no counter.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Sums two changes: counters added, histogram and error entries merged by key.
impl std::ops::AddAssign<&Delta> for Delta {
    fn add_assign(&mut self, d: &Delta) {
        self.total += d.total;
        self.sent += d.sent;
        self.delivered += d.delivered;
        self.read += d.read;
        self.failed += d.failed;
        self.undelivered += d.undelivered;
        self.time_sum_ms += d.time_sum_ms;
        self.time_count += d.time_count;
        for (sum, changes) in [(&mut self.histogram, &d.histogram), (&mut self.errors, &d.errors)] {
            for &(key, change) in changes {
                match sum.iter_mut().find(|(k, _)| *k == key) {
                    Some(entry) => entry.1 += change,
                    None => sum.push((key, change)),
                }
            }
        }
        self.newly_failed |= d.newly_failed;
    }
}

/// The change of counters when a message counted as `counted` with lifecycle `before` moves to
/// `after`; returns it with what the message is counted in afterwards.
pub fn transition(before: &Lifecycle, counted: Counted, after: &Lifecycle) -> (Delta, Counted) {
    let next = Counted::of(after);
    let mut delta = Delta {
        total: counted.delta(next, Counted::TOTAL).max(0),
        sent: counted.delta(next, Counted::SENT).max(0),
        delivered: counted.delta(next, Counted::DELIVERED),
        read: counted.delta(next, Counted::READ),
        failed: counted.delta(next, Counted::FAILED),
        undelivered: counted.delta(next, Counted::UNDELIVERED),
        ..Delta::default()
    };
    // TOTAL and SENT never go back: a message that left `pending` stays counted.
    let next = Counted(next.0 | (counted.0 & (Counted::TOTAL | Counted::SENT)));
    let recorded = if counted.has(Counted::TIMED) { delivery_ms(before) } else { None };
    match (recorded, delivery_ms(after)) {
        (None, Some(ms)) => {
            delta.time_sum_ms = ms;
            delta.time_count = 1;
            delta.histogram.push((histogram_bucket(ms), 1));
        }
        (Some(old), Some(new)) if old != new => {
            delta.time_sum_ms = new - old;
            if histogram_bucket(old) != histogram_bucket(new) {
                delta.histogram.push((histogram_bucket(old), -1));
                delta.histogram.push((histogram_bucket(new), 1));
            }
        }
        _ => {}
    }
    let old_code = counted.is_failure().then(|| before.error_code.unwrap_or(0));
    let new_code = next.is_failure().then(|| after.error_code.unwrap_or(0));
    if old_code != new_code {
        delta.errors.extend(old_code.map(|code| (code, -1)));
        delta.errors.extend(new_code.map(|code| (code, 1)));
    }
    delta.newly_failed = !counted.is_failure() && next.is_failure();
    (delta, next)
}

/// What a message counted as `counted`, with lifecycle `l`, has added to its rollups so far: the
/// sum of the deltas of every transition that brought it here. A query about one recipient sums
/// these over the recipient's messages instead of keeping rollup rows per recipient.
pub fn standing(l: &Lifecycle, counted: Counted) -> Delta {
    let flag = |f: i64| i64::from(counted.has(f));
    let mut delta = Delta {
        total: flag(Counted::TOTAL),
        sent: flag(Counted::SENT),
        delivered: flag(Counted::DELIVERED),
        read: flag(Counted::READ),
        failed: flag(Counted::FAILED),
        undelivered: flag(Counted::UNDELIVERED),
        ..Delta::default()
    };
    if counted.has(Counted::TIMED)
        && let Some(ms) = delivery_ms(l)
    {
        delta.time_sum_ms = ms;
        delta.time_count = 1;
        delta.histogram.push((histogram_bucket(ms), 1));
    }
    if counted.is_failure() {
        delta.errors.push((l.error_code.unwrap_or(0), 1));
    }
    delta
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::status::StatusEvent;

    fn apply(l: &Lifecycle, status: MessageStatus, at: i64, code: Option<i64>) -> Lifecycle {
        l.apply(&StatusEvent { status, at, error_code: code }).next
    }

    /// Applies reports one by one, summing every delta, as the store does.
    fn run(events: &[(MessageStatus, i64, Option<i64>)]) -> (Delta, Counted) {
        let (sum, counted, _) = run_to(events);
        (sum, counted)
    }

    /// [`run`], with the lifecycle reached.
    fn run_to(events: &[(MessageStatus, i64, Option<i64>)]) -> (Delta, Counted, Lifecycle) {
        let mut lifecycle = Lifecycle::pending(0);
        let mut counted = Counted::default();
        let mut sum = Delta::default();
        for &(status, at, code) in events {
            let after = apply(&lifecycle, status, at, code);
            let (d, next) = transition(&lifecycle, counted, &after);
            sum += &d;
            lifecycle = after;
            counted = next;
        }
        sum.histogram.retain(|(_, v)| *v != 0);
        sum.errors.retain(|(_, v)| *v != 0);
        (sum, counted, lifecycle)
    }

    use MessageStatus::*;

    #[test]
    fn a_read_message_counts_once_in_each_counter_with_its_delivery_time() {
        let (d, counted) = run(&[(Queued, 100, None), (Sent, 200, None), (Delivered, 1_100, None), (Read, 2_000, None)]);
        assert_eq!((d.total, d.sent, d.delivered, d.read, d.failed, d.undelivered), (1, 1, 1, 1, 0, 0));
        assert_eq!((d.time_sum_ms, d.time_count), (1_000, 1));
        assert_eq!(d.histogram, vec![(1_000, 1)]);
        assert!(d.errors.is_empty());
        assert!(counted.has(Counted::TIMED | Counted::READ | Counted::DELIVERED));
    }

    #[test]
    fn undelivered_then_failed_counts_in_failed_only() {
        let (d, _) = run(&[(Queued, 1, None), (Undelivered, 5, Some(63016)), (Failed, 9, Some(30008))]);
        assert_eq!((d.total, d.failed, d.undelivered), (1, 1, 0));
        assert_eq!(d.errors, vec![(30008, 1)], "the code moves with the outcome");
        assert!(d.newly_failed);
    }

    #[test]
    fn a_dead_letter_counts_as_failed_and_its_redrive_takes_the_failure_out_again() {
        let (dead, counted, lifecycle) = run_to(&[(Retrying, 1, None), (DeadLettered, 5, Some(20500))]);
        assert_eq!((dead.total, dead.failed, dead.sent), (1, 1, 0));
        assert_eq!(dead.errors, vec![(20500, 1)]);
        assert!(dead.newly_failed);
        let redriven = lifecycle.redriven(9);
        assert_eq!((redriven.status, redriven.failed_at, redriven.error_code, redriven.last_status_at), (Pending, None, None, 9));
        let (undo, after) = transition(&lifecycle, counted, &redriven);
        assert_eq!((undo.total, undo.failed), (0, -1), "still counted as having left pending; no longer failed");
        assert_eq!(undo.errors, vec![(20500, -1)]);
        assert!(after.has(Counted::TOTAL) && !after.has(Counted::FAILED));
        let delivered = apply(&apply(&redriven, Queued, 20, None), Delivered, 30, None);
        let (d, _) = transition(&redriven, after, &delivered);
        assert_eq!((d.total, d.sent, d.delivered, d.failed), (0, 1, 1, 0), "counted once in total over both lives");
    }

    #[test]
    fn failed_after_delivered_leaves_delivered() {
        let (d, _) = run(&[(Queued, 1, None), (Delivered, 50, None), (Read, 60, None), (Failed, 90, Some(30008))]);
        assert_eq!((d.delivered, d.read, d.failed), (0, 0, 1));
        assert_eq!(d.errors, vec![(30008, 1)]);
    }

    #[test]
    fn a_delivery_that_beats_the_answer_is_timed_once_the_answer_comes() {
        // The receipt arrives before Twilio's answer is recorded: no start yet, no 0 ms time.
        let (early, counted) = run(&[(Delivered, 700, None)]);
        assert_eq!((early.delivered, early.time_count), (1, 0));
        assert!(!counted.has(Counted::TIMED));
        let (d, _) = run(&[(Delivered, 700, None), (Queued, 200, None)]);
        assert_eq!((d.time_sum_ms, d.time_count), (500, 1));
        assert_eq!(d.histogram, vec![(500, 1)]);
    }

    #[test]
    fn a_late_delivered_receipt_corrects_the_time_and_moves_its_histogram_bucket() {
        let (d, _) = run(&[(Queued, 0, None), (Read, 3_000, None), (Delivered, 400, None)]);
        assert_eq!((d.delivered, d.read, d.time_sum_ms, d.time_count), (1, 1, 400, 1));
        assert_eq!(d.histogram, vec![(500, 1)], "the 3 s entry moved to the 500 ms bucket");
    }

    #[test]
    fn duplicates_add_nothing() {
        let lifecycle = apply(&apply(&Lifecycle::pending(0), Queued, 1, None), Delivered, 9, None);
        let counted = Counted::of(&lifecycle);
        let again = apply(&lifecycle, Delivered, 9, None);
        let (d, next) = transition(&lifecycle, counted, &again);
        assert!(d.is_empty());
        assert_eq!(next, counted);
    }

    #[test]
    fn a_failure_before_twilio_counts_in_total_and_failed_but_not_sent() {
        let (d, _) = run(&[(Failed, 5, Some(21211))]);
        assert_eq!((d.total, d.sent, d.failed), (1, 0, 1));
        assert_eq!(d.errors, vec![(21211, 1)]);
    }

    #[test]
    fn legacy_rows_counted_in_two_outcomes_are_corrected() {
        let failed = apply(&apply(&Lifecycle::pending(0), Queued, 1, None), Failed, 5, Some(30008));
        let both = Counted(Counted::TOTAL | Counted::SENT | Counted::FAILED | Counted::UNDELIVERED);
        let again = apply(&failed, Failed, 5, Some(30008));
        let (d, next) = transition(&failed, both, &again);
        assert_eq!((d.failed, d.undelivered), (0, -1));
        assert_eq!(next, Counted(Counted::TOTAL | Counted::SENT | Counted::FAILED));
    }

    #[test]
    fn a_message_standing_is_the_sum_of_its_transitions_whatever_the_order_of_its_reports() {
        let reports = [
            (Queued, 100, None),
            (Sent, 300, None),
            (Delivered, 1_400, None),
            (Read, 9_000, None),
            (Undelivered, 2_000, Some(63016)),
            (Failed, 2_500, Some(30008)),
            (Delivered, 700, None),
            (Queued, 100, None),
        ];
        // Every ordered selection of up to four reports (duplicates included).
        let mut sequences: Vec<Vec<(MessageStatus, i64, Option<i64>)>> = vec![vec![]];
        for _ in 0..4 {
            let longer: Vec<_> = sequences
                .iter()
                .filter(|s| s.len() == sequences.last().map_or(0, Vec::len))
                .flat_map(|s| reports.iter().map(move |r| [s.clone(), vec![*r]].concat()))
                .collect();
            sequences.extend(longer);
        }
        assert!(sequences.len() > 4_000);
        for events in &sequences {
            let (mut sum, counted, lifecycle) = run_to(events);
            sum.newly_failed = false;
            sum.histogram.sort_unstable();
            sum.errors.sort_unstable();
            assert_eq!(standing(&lifecycle, counted), sum, "{events:?}");
        }
    }
}
