//! Rate arithmetic in integer microseconds, shared by both backends (the Redis scripts do the
//! same arithmetic with the numbers computed here).
//!
//! The state of a key is one number, the theoretical arrival time (TAT): when the bucket would be
//! empty again if requests kept arriving at the long-run rate.

use std::time::Duration;

use super::state::{RateDecision, RateLimit, Reservation};

/// The generic cell rate algorithm (GCRA) for one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Gcra {
    /// Time between two requests at the long-run rate.
    pub emission_us: i64,
    /// How far ahead of now the TAT may run: `emission_us * burst`.
    pub burst_offset_us: i64,
}

impl Gcra {
    /// The parameters for `limit` (at least 1 µs per request, burst at least 1).
    pub fn new(limit: RateLimit) -> Self {
        let period_us = i64::try_from(limit.period.as_micros()).unwrap_or(i64::MAX / 4);
        let emission_us = (period_us / i64::from(limit.per_period.max(1))).max(1);
        Self { emission_us, burst_offset_us: emission_us.saturating_mul(i64::from(limit.burst.max(1))) }
    }

    /// Decides one request at `now_us` given the stored TAT; returns the decision and the TAT to
    /// store (`None`: leave the stored state as it is).
    pub fn decide(&self, now_us: i64, stored_tat_us: Option<i64>) -> (RateDecision, Option<i64>) {
        let tat = stored_tat_us.unwrap_or(now_us).max(now_us);
        let new_tat = tat + self.emission_us;
        let diff = now_us - (new_tat - self.burst_offset_us);
        if diff < 0 {
            let decision = RateDecision { allowed: false, remaining: 0, retry_after: micros(-diff), reset_after: micros(tat - now_us) };
            return (decision, None);
        }
        let remaining = u32::try_from(diff / self.emission_us).unwrap_or(u32::MAX);
        let decision = RateDecision { allowed: true, remaining, retry_after: Duration::ZERO, reset_after: micros(new_tat - now_us) };
        (decision, Some(new_tat))
    }
}

/// Reserves up to `count` consecutive slots, `emission_us` apart, no further than `ahead_us`
/// beyond now: the slots after the stored TAT. Returns the reservation and the TAT to store.
pub(crate) fn reserve(emission_us: i64, count: u32, ahead_us: i64, now_us: i64, stored_tat_us: Option<i64>) -> (Reservation, Option<i64>) {
    let emission_us = emission_us.max(1);
    let tat = stored_tat_us.unwrap_or(now_us).max(now_us);
    let room = (now_us + ahead_us - tat).max(0) / emission_us;
    let granted = u32::try_from(room.min(i64::from(count))).unwrap_or(0);
    let spacing = micros(emission_us);
    if granted == 0 {
        // Room for one more slot opens once the TAT is within `ahead` of now.
        let wait = micros(tat + emission_us - now_us - ahead_us);
        return (Reservation { granted: 0, start_in: wait, spacing }, None);
    }
    let reservation = Reservation { granted, start_in: micros(tat - now_us), spacing };
    (reservation, Some(tat + i64::from(granted) * emission_us))
}

/// A non-negative microsecond count as a `Duration`.
pub(crate) fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit() -> RateLimit {
        RateLimit { per_period: 10, period: Duration::from_secs(1), burst: 3 }
    }

    #[test]
    fn gcra_allows_a_burst_then_refuses_for_one_emission_interval() {
        let gcra = Gcra::new(limit());
        let mut tat = None;
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let (d, next) = gcra.decide(1_000_000, tat);
            assert!(d.allowed);
            remaining.push(d.remaining);
            tat = next;
        }
        assert_eq!(remaining, [2, 1, 0]);
        let (refused, next) = gcra.decide(1_000_000, tat);
        assert_eq!(next, None);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(100));
        assert_eq!(refused.reset_after, Duration::from_millis(300));
        let (later, _) = gcra.decide(1_100_000, tat);
        assert!(later.allowed);
        assert_eq!(later.remaining, 0);
    }

    #[test]
    fn gcra_is_full_again_after_the_burst_has_drained() {
        let gcra = Gcra::new(limit());
        let (_, tat) = gcra.decide(0, None);
        let (d, _) = gcra.decide(100_000, tat);
        assert_eq!(d.remaining, 2);
    }

    #[test]
    fn reservations_hand_out_consecutive_slots_and_never_more_than_ahead() {
        // 80 per second: 12.5 ms apart; reserve 8 at a time, at most 100 ms ahead.
        let (first, tat) = reserve(12_500, 8, 100_000, 0, None);
        assert_eq!((first.granted, first.start_in, first.spacing), (8, Duration::ZERO, Duration::from_micros(12_500)));
        let (second, unchanged) = reserve(12_500, 8, 100_000, 0, tat);
        assert_eq!(second.granted, 0, "the first block already fills the 100 ms ahead");
        assert_eq!(unchanged, None, "a refused reservation leaves the state as it is");
        assert_eq!(second.start_in, Duration::from_micros(12_500));
        let (third, _) = reserve(12_500, 8, 100_000, 50_000, tat);
        assert_eq!((third.granted, third.start_in), (4, Duration::from_micros(50_000)), "slots resume where the first block ended");
    }
}
