//! Rate-limit arithmetic: a sliding-window log, in integer microseconds, shared by both backends
//! (the Redis script does the same arithmetic on a sorted set).
//!
//! A key's state is the arrival time of every request it was allowed in the last `period`. A
//! request is allowed while fewer than `per_period` arrived in the `period` before it, and fewer
//! than `burst` in the [`BURST_WINDOW`] before it: so a client that keeps within its per-minute
//! allowance is never refused, however it spreads its requests, unless it also exceeds the burst
//! bound, a separate, documented limit. Refused requests are not recorded: hammering a limiter
//! does not push back the time it opens again.

use std::collections::VecDeque;
use std::time::Duration;

use super::gcra::micros;
use super::state::{RateDecision, RateLimit};

/// The window the burst bound counts over.
pub const BURST_WINDOW: Duration = Duration::from_secs(1);

/// One limit in microseconds (at least 1 request per window, windows at least 1 µs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Window {
    pub limit: i64,
    pub period_us: i64,
    pub burst: i64,
    pub burst_us: i64,
}

impl Window {
    pub fn new(limit: RateLimit) -> Self {
        let us = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4).max(1);
        let per_period = i64::from(limit.per_period.max(1));
        let burst = if limit.burst == 0 { per_period } else { i64::from(limit.burst) };
        Self { limit: per_period, period_us: us(limit.period), burst, burst_us: us(BURST_WINDOW) }
    }

    /// Counts up to `cost` requests at `now_us` against `log` (arrival times, oldest first, from
    /// earlier calls at times ≤ `now_us`): forgets arrivals older than the period, records the
    /// ones granted, and says how many were.
    pub fn take(&self, log: &mut VecDeque<i64>, now_us: i64, cost: u32) -> RateDecision {
        while log.front().is_some_and(|&at| at <= now_us - self.period_us) {
            log.pop_front();
        }
        let count = len(log);
        let recent = len(log) - len_up_to(log, now_us - self.burst_us);
        let granted = (self.limit - count).min(self.burst - recent).clamp(0, i64::from(cost));
        for _ in 0..granted {
            log.push_back(now_us);
        }
        let (count, recent) = (count + granted, recent + granted);
        // One more request is allowed once the arrival that keeps each window full has left it.
        let mut retry_us = 0;
        if count >= self.limit {
            retry_us = retry_us.max(log[index(count - self.limit)] + self.period_us - now_us);
        }
        if recent >= self.burst {
            let first_recent = count - recent;
            retry_us = retry_us.max(log[index(first_recent + recent - self.burst)] + self.burst_us - now_us);
        }
        let reset_us = log.front().map_or(0, |&oldest| oldest + self.period_us - now_us);
        let granted = u32::try_from(granted).unwrap_or(0);
        RateDecision {
            allowed: granted == cost,
            granted,
            remaining: u32::try_from((self.limit - count).min(self.burst - recent).max(0)).unwrap_or(0),
            retry_after: if granted == cost { Duration::ZERO } else { micros(retry_us) },
            reset_after: micros(reset_us),
        }
    }
}

fn len(log: &VecDeque<i64>) -> i64 {
    i64::try_from(log.len()).unwrap_or(i64::MAX)
}

/// How many arrivals are at or before `at`.
fn len_up_to(log: &VecDeque<i64>, at: i64) -> i64 {
    i64::try_from(log.partition_point(|&t| t <= at)).unwrap_or(i64::MAX)
}

fn index(i: i64) -> usize {
    usize::try_from(i).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: i64 = 1_000_000;

    fn per_minute(per_period: u32, burst: u32) -> Window {
        Window::new(RateLimit { per_period, period: Duration::from_secs(60), burst })
    }

    #[test]
    fn the_whole_allowance_is_granted_however_it_is_spread_then_the_next_is_refused_until_the_first_leaves() {
        let window = per_minute(1000, 0);
        let mut log = VecDeque::new();
        // 1,000 requests in 5 s, 200 per second.
        for n in 0..1000 {
            let decision = window.take(&mut log, n * 5 * SECOND / 1000, 1);
            assert!(decision.allowed, "request {n} refused");
            assert_eq!(decision.remaining, 999 - u32::try_from(n).unwrap());
        }
        let refused = window.take(&mut log, 6 * SECOND, 1);
        assert!(!refused.allowed);
        assert_eq!((refused.granted, refused.remaining), (0, 0));
        assert_eq!(refused.retry_after, Duration::from_secs(54), "the first request leaves the window at 60 s");
        assert_eq!(log.len(), 1000, "a refused request is not recorded");
        assert!(!window.take(&mut log, 60 * SECOND - 1, 1).allowed);
        assert!(window.take(&mut log, 60 * SECOND, 1).allowed, "the first request has left the window");
    }

    #[test]
    fn the_burst_bound_refuses_more_than_burst_in_one_second_but_not_in_the_next() {
        let window = per_minute(1000, 3);
        let mut log = VecDeque::new();
        for n in 0..3 {
            assert!(window.take(&mut log, SECOND + n * 100_000, 1).allowed);
        }
        let refused = window.take(&mut log, SECOND + 300_000, 1);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_millis(700), "the first of the three leaves the second at 2.0 s");
        assert!(window.take(&mut log, 2 * SECOND, 1).allowed);
    }

    #[test]
    fn a_batch_is_granted_what_fits_and_told_when_the_rest_will() {
        let window = per_minute(10, 0);
        let mut log = VecDeque::new();
        assert_eq!(window.take(&mut log, 0, 4).granted, 4);
        let partial = window.take(&mut log, 2 * SECOND, 8);
        assert_eq!((partial.allowed, partial.granted, partial.remaining), (false, 6, 0));
        assert_eq!(partial.retry_after, Duration::from_secs(58));
        assert_eq!(partial.reset_after, Duration::from_secs(58));
        let empty = window.take(&mut log, 2 * SECOND, 0);
        assert!(empty.allowed, "a call that asks for nothing is never refused");
    }

    #[test]
    fn arrivals_older_than_the_period_are_forgotten() {
        let window = per_minute(2, 0);
        let mut log = VecDeque::new();
        window.take(&mut log, 0, 2);
        let later = window.take(&mut log, 61 * SECOND, 1);
        assert!(later.allowed);
        assert_eq!(log.len(), 1);
        assert_eq!(later.remaining, 1);
    }
}
