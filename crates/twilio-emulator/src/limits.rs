//! Account-wide limits on create requests: the concurrency cap, the per-sender rate cap and the
//! random share of 500s.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::behaviour::lock;
use crate::error::TwilioError;

/// Creates in flight and recent creates per sender.
#[derive(Debug)]
pub(crate) struct Limits {
    max_concurrent: u32,
    rate_per_sec: u32,
    error_500_share: f64,
    in_flight: Arc<AtomicU32>,
    recent: Mutex<HashMap<String, VecDeque<Instant>>>,
}

/// Holds one concurrency slot until dropped.
#[derive(Debug)]
pub(crate) struct Slot(Arc<AtomicU32>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Limits {
    pub fn new(max_concurrent: u32, rate_per_sec: u32, error_500_share: f64) -> Self {
        Self { max_concurrent, rate_per_sec, error_500_share, in_flight: Arc::default(), recent: Mutex::default() }
    }

    /// Takes a concurrency slot, or 429 when `max_concurrent` creates are already in flight.
    pub fn acquire(&self) -> Result<Slot, TwilioError> {
        let previous = self.in_flight.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.in_flight.clone());
        if self.max_concurrent > 0 && previous >= self.max_concurrent {
            return Err(TwilioError::too_many_requests());
        }
        Ok(slot)
    }

    /// 500 for the configured share of requests.
    pub fn random_server_error(&self) -> Result<(), TwilioError> {
        if self.error_500_share > 0.0 && fastrand::f64() < self.error_500_share {
            return Err(TwilioError::internal());
        }
        Ok(())
    }

    /// Counts a create from `sender`, or 429 when it already made `rate_per_sec` in the last
    /// second (a sliding window; rejected requests do not count).
    pub fn check_sender_rate(&self, sender: &str) -> Result<(), TwilioError> {
        if self.rate_per_sec == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut recent = lock(&self.recent);
        let times = recent.entry(sender.to_owned()).or_default();
        while times.front().is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1)) {
            times.pop_front();
        }
        if times.len() >= self.rate_per_sec as usize {
            return Err(TwilioError::too_many_requests());
        }
        times.push_back(now);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_slots_are_returned_on_drop() {
        let limits = Limits::new(1, 0, 0.0);
        let first = limits.acquire().unwrap();
        assert_eq!(limits.acquire().unwrap_err().code, 20429);
        drop(first);
        assert!(limits.acquire().is_ok());
    }

    #[test]
    fn sender_rate_is_per_sender() {
        let limits = Limits::new(0, 2, 0.0);
        assert!(limits.check_sender_rate("+1").is_ok());
        assert!(limits.check_sender_rate("+1").is_ok());
        assert_eq!(limits.check_sender_rate("+1").unwrap_err().code, 20429);
        assert!(limits.check_sender_rate("+2").is_ok());
    }
}
