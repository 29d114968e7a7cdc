//! Retry delays: exponential, capped, with jitter so that retries of a burst spread out.

use std::time::Duration;

/// Delay before attempt `attempt + 1`, after `attempt` failed (1-based): `base · 2^(attempt-1)`
/// capped at `max`, of which the upper half is random ("equal jitter": never less than half the
/// exponential step, so a throttled sender really backs off).
pub fn backoff_delay(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32.checked_shl(attempt.saturating_sub(1).min(30)).unwrap_or(u32::MAX));
    let cap = exp.min(max);
    let half = cap / 2;
    half + half.mul_f64(fastrand::f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_exponentially_within_bounds() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(10);
        for attempt in 1..=12u32 {
            let cap = (base * 2u32.pow(attempt - 1)).min(max);
            for _ in 0..50 {
                let d = backoff_delay(attempt, base, max);
                assert!(d >= cap / 2 && d <= cap, "attempt {attempt}: {d:?} outside [{:?}, {cap:?}]", cap / 2);
            }
        }
        assert!(backoff_delay(500, base, max) <= max);
    }
}
