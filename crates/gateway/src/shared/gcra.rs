//! Pacing arithmetic in integer microseconds, shared by both backends (the Redis script does the
//! same arithmetic): GCRA-style slot reservations.
//!
//! The state of a key is one number, the theoretical arrival time (TAT): when the next free slot
//! is if slots keep being taken at the key's rate.

use std::time::Duration;

use super::state::Reservation;

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

/// The theoretical arrival time after holding a key back until `now_us + hold_us`: never earlier
/// than it was.
pub(crate) fn hold(hold_us: i64, now_us: i64, stored_tat_us: Option<i64>) -> i64 {
    stored_tat_us.unwrap_or(now_us).max(now_us + hold_us.max(0))
}

/// A non-negative microsecond count as a `Duration`.
pub(crate) fn micros(us: i64) -> Duration {
    Duration::from_micros(u64::try_from(us).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_hold_pushes_slots_back_and_never_brings_them_forward() {
        assert_eq!(hold(1_000, 10, None), 1_010);
        assert_eq!(hold(1_000, 10, Some(5_000)), 5_000);
        assert_eq!(hold(1_000, 10, Some(2)), 1_010, "a stale TAT is not a hold");
        let (held, tat) = reserve(100, 5, 200, 10, Some(hold(1_000, 10, None)));
        assert_eq!((held.granted, tat), (0, None));
        assert_eq!(held.start_in, micros(1_010 + 100 - 10 - 200));
    }
}
