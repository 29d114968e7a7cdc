//! Shared state for one process (the embedded default). Every entry carries an expiry; expired
//! entries are dropped when read and swept whenever a map has doubled since its last sweep, so
//! memory stays proportional to the entries alive within their TTLs.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::gcra::{self, reserve};
use super::state::{IdempotencyState, RateDecision, RateLimit, Reservation, SharedError, SharedState};
use super::window::Window;

/// Smallest map size at which a sweep of expired entries is considered.
const MIN_SWEEP_LEN: usize = 1024;

/// In-process [`SharedState`].
#[derive(Debug)]
pub struct MemoryState {
    origin: Instant,
    maps: Mutex<Maps>,
}

#[derive(Debug, Default)]
struct Maps {
    pace: Expiring<i64>,
    idempotency: Expiring<Idempotency>,
    rates: Expiring<VecDeque<i64>>,
}

#[derive(Debug, Clone)]
enum Idempotency {
    InFlight,
    Completed { fingerprint: String, status: u16, body: Vec<u8> },
}

impl MemoryState {
    /// An empty state.
    pub fn new() -> Self {
        Self { origin: Instant::now(), maps: Mutex::new(Maps::default()) }
    }

    fn with_maps<T>(&self, f: impl FnOnce(&mut Maps, Instant) -> T) -> T {
        // A panic while holding the lock cannot leave the maps half-updated in a harmful way.
        let mut maps = self.maps.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut maps, Instant::now())
    }
}

impl Default for MemoryState {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl SharedState for MemoryState {
    async fn idempotency_begin(&self, key: &str, _fingerprint: &str, ttl: Duration) -> Result<IdempotencyState, SharedError> {
        Ok(self.with_maps(|maps, now| match maps.idempotency.get(key, now) {
            Some(Idempotency::InFlight) => IdempotencyState::InFlight,
            Some(Idempotency::Completed { fingerprint, status, body }) => {
                IdempotencyState::Completed { fingerprint: fingerprint.clone(), status: *status, body: body.clone() }
            }
            None => {
                maps.idempotency.insert(key, Idempotency::InFlight, now + ttl, now);
                IdempotencyState::New
            }
        }))
    }

    async fn idempotency_complete(&self, key: &str, fingerprint: &str, status: u16, body: &[u8], ttl: Duration) -> Result<(), SharedError> {
        let record = Idempotency::Completed { fingerprint: fingerprint.to_owned(), status, body: body.to_vec() };
        self.with_maps(|maps, now| maps.idempotency.insert(key, record, now + ttl, now));
        Ok(())
    }

    async fn idempotency_abandon(&self, key: &str) -> Result<(), SharedError> {
        self.with_maps(|maps, now| {
            if matches!(maps.idempotency.get(key, now), Some(Idempotency::InFlight)) {
                maps.idempotency.remove(key);
            }
        });
        Ok(())
    }

    async fn rate_limit(&self, key: &str, limit: RateLimit, cost: u32) -> Result<RateDecision, SharedError> {
        let window = Window::new(limit);
        Ok(self.with_maps(|maps, now| {
            let now_us = i64::try_from(now.duration_since(self.origin).as_micros()).unwrap_or(i64::MAX / 4);
            let mut log = maps.rates.take(key, now).unwrap_or_default();
            let decision = window.take(&mut log, now_us, cost);
            if !log.is_empty() {
                maps.rates.insert(key, log, now + decision.reset_after, now);
            }
            decision
        }))
    }

    async fn reserve(&self, key: &str, spacing: Duration, count: u32, ahead: Duration) -> Result<Reservation, SharedError> {
        let us = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4);
        Ok(self.with_maps(|maps, now| {
            let now_us = us(now.duration_since(self.origin));
            let (reservation, tat) = reserve(us(spacing), count, us(ahead), now_us, maps.pace.get(key, now).copied());
            if let Some(tat) = tat {
                maps.pace.insert(
                    key,
                    tat,
                    now + Duration::from_micros(u64::try_from(tat - now_us).unwrap_or(0)) + Duration::from_secs(1),
                    now,
                );
            }
            reservation
        }))
    }

    async fn hold(&self, key: &str, hold: Duration) -> Result<(), SharedError> {
        let us = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4);
        self.with_maps(|maps, now| {
            let now_us = us(now.duration_since(self.origin));
            let tat = gcra::hold(us(hold), now_us, maps.pace.get(key, now).copied());
            let expiry = now + Duration::from_micros(u64::try_from(tat - now_us).unwrap_or(0)) + Duration::from_secs(1);
            maps.pace.insert(key, tat, expiry, now);
        });
        Ok(())
    }

    async fn ping(&self) -> Result<(), SharedError> {
        Ok(())
    }
}

/// A map whose entries vanish at their expiry.
#[derive(Debug)]
struct Expiring<V> {
    entries: HashMap<String, (Instant, V)>,
    sweep_at_len: usize,
}

impl<V> Default for Expiring<V> {
    fn default() -> Self {
        Self { entries: HashMap::new(), sweep_at_len: MIN_SWEEP_LEN }
    }
}

impl<V> Expiring<V> {
    /// The live value for `key`, dropping it if it has expired.
    fn get(&mut self, key: &str, now: Instant) -> Option<&V> {
        if self.entries.get(key).is_some_and(|(expires, _)| *expires <= now) {
            self.entries.remove(key);
        }
        self.entries.get(key).map(|(_, value)| value)
    }

    /// Sets `key` until `expires`; sweeps expired entries once the map has doubled since the last
    /// sweep, which keeps the cost amortised constant per insert.
    fn insert(&mut self, key: &str, value: V, expires: Instant, now: Instant) {
        if self.entries.len() >= self.sweep_at_len {
            self.entries.retain(|_, (at, _)| *at > now);
            self.sweep_at_len = (self.entries.len() * 2).max(MIN_SWEEP_LEN);
        }
        self.entries.insert(key.to_owned(), (expires, value));
    }

    /// Removes and returns the live value for `key`.
    fn take(&mut self, key: &str, now: Instant) -> Option<V> {
        self.entries.remove(key).filter(|(expires, _)| *expires > now).map(|(_, value)| value)
    }

    fn remove(&mut self, key: &str) {
        self.entries.remove(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_entries_are_swept_as_the_map_grows() {
        let mut map = Expiring::default();
        let start = Instant::now();
        for n in 0..10 * MIN_SWEEP_LEN {
            let now = start + Duration::from_millis(n as u64);
            map.insert(&n.to_string(), (), now + Duration::from_millis(5), now);
        }
        assert!(map.entries.len() <= MIN_SWEEP_LEN + 1, "{} entries kept", map.entries.len());
    }
}
