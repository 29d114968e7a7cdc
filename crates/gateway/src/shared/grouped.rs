//! Concurrent takes from one rate-limit key, made one call to the shared store.
//!
//! Every API request counts against its token subject's key, so under load most requests of a
//! client hit one key at once, and one script call per request was most of the gateway's Redis
//! commands. Here a take that finds a call for its key already in flight waits for it, then goes
//! with every take that queued meanwhile in the next call, which asks for their summed cost. The
//! store grants a call's requests in order, so [`share`] can give each take exactly the answer it
//! would have had alone at that instant (one clock reading, one log, arrivals in queue order):
//! the limit stays exact. A take on an idle key goes at once, so nothing waits when there is no
//! load.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;

use super::gcra::micros;
use super::state::{RateDecision, SharedError};

/// At most this many takes go in one call (so one call's work in the store stays bounded).
const MAX_GROUP: usize = 256;

/// What the store answers to one call for `cost` requests: how many it granted (the first
/// `granted`, in order) and the window's state after them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Taken {
    pub granted: u32,
    /// How many more requests would be allowed after this call.
    pub remaining: u32,
    /// How long until one more request would be allowed (µs, 0 if one would be now).
    pub retry_us: i64,
    /// How long until the oldest counted request leaves the window (µs).
    pub reset_us: i64,
}

type Answer = oneshot::Sender<Result<RateDecision, SharedError>>;

/// Per key, the takes queued (with their cost) behind the call in flight.
type Waiting = HashMap<String, Vec<(u32, Answer)>>;

/// The takes waiting per key, while a call for that key is in flight.
#[derive(Debug, Clone, Default)]
pub(crate) struct Groups {
    waiting: Arc<Mutex<Waiting>>,
}

impl Groups {
    /// Takes `cost` requests from `key`: `call(total)` asks the store for a group's total,
    /// run on a task of its own (a caller that gives up does not strand the others).
    pub async fn take<F, Fut>(&self, key: String, cost: u32, call: F) -> Result<RateDecision, SharedError>
    where
        F: Fn(u32) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Taken, SharedError>> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let lead = match self.lock().entry(key.clone()) {
            Entry::Occupied(mut entry) => {
                entry.get_mut().push((cost, answer));
                false
            }
            Entry::Vacant(entry) => {
                entry.insert(vec![(cost, answer)]);
                true
            }
        };
        if lead {
            tokio::spawn(self.clone().drain(key, call));
        }
        answered.await.unwrap_or_else(|_| Err(SharedError::Corrupt("the rate-limit call ended without an answer".to_owned())))
    }

    /// Calls for `key`'s waiting takes, a group at a time, until none are left.
    async fn drain<F, Fut>(self, key: String, call: F)
    where
        F: Fn(u32) -> Fut,
        Fut: Future<Output = Result<Taken, SharedError>>,
    {
        loop {
            let group: Vec<(u32, Answer)> = {
                let mut waiting = self.lock();
                let Some(queued) = waiting.get_mut(&key) else { return };
                if queued.is_empty() {
                    waiting.remove(&key);
                    return;
                }
                let n = queued.len().min(MAX_GROUP);
                queued.drain(..n).collect()
            };
            let costs: Vec<u32> = group.iter().map(|(cost, _)| *cost).collect();
            let total = costs.iter().fold(0u32, |sum, &cost| sum.saturating_add(cost));
            match call(total).await {
                Ok(taken) => {
                    for ((_, answer), decision) in group.into_iter().zip(share(taken, &costs)) {
                        let _ = answer.send(Ok(decision));
                    }
                }
                Err(e) => {
                    for (_, answer) in group {
                        let _ = answer.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // The map is consistent between statements: a panic elsewhere cannot leave it torn.
        self.waiting.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Each take's answer from one call for their summed cost: grants go to the takes in order (the
/// one at the edge may get part of its cost), and each sees the allowance left right after its own
/// grant — what the store would have answered it alone, the takes before it already counted.
pub(crate) fn share(taken: Taken, costs: &[u32]) -> Vec<RateDecision> {
    let mut left = taken.granted;
    let grants: Vec<u32> = costs
        .iter()
        .map(|&cost| {
            let granted = cost.min(left);
            left -= granted;
            granted
        })
        .collect();
    let mut after = taken.remaining;
    let mut decisions: Vec<RateDecision> = costs
        .iter()
        .zip(&grants)
        .rev()
        .map(|(&cost, &granted)| {
            let decision = RateDecision {
                allowed: granted == cost,
                granted,
                remaining: after,
                retry_after: if granted == cost { Duration::ZERO } else { micros(taken.retry_us) },
                reset_after: micros(taken.reset_us),
            };
            after = after.saturating_add(granted);
            decision
        })
        .collect();
    decisions.reverse();
    decisions
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;
    use crate::shared::state::RateLimit;
    use crate::shared::window::Window;

    fn taken(granted: u32, remaining: u32) -> Taken {
        Taken { granted, remaining, retry_us: 2_500_000, reset_us: 60_000_000 }
    }

    #[test]
    fn grants_go_in_order_and_each_sees_what_was_left_after_it() {
        let decisions = share(taken(4, 0), &[1, 2, 3, 1]);
        let got: Vec<(bool, u32, u32)> = decisions.iter().map(|d| (d.allowed, d.granted, d.remaining)).collect();
        assert_eq!(got, vec![(true, 1, 3), (true, 2, 1), (false, 1, 0), (false, 0, 0)]);
        assert_eq!(decisions[0].retry_after, Duration::ZERO);
        assert_eq!(decisions[2].retry_after, Duration::from_millis(2_500));
        assert!(decisions.iter().all(|d| d.reset_after == Duration::from_secs(60)));
    }

    #[test]
    fn an_answer_for_a_group_is_the_answer_of_its_takes_one_by_one() {
        // The reference: the same takes made one at a time against the same log at one instant.
        let window = Window::new(RateLimit { per_period: 10, period: Duration::from_secs(60), burst: 0 });
        for costs in [vec![1; 12], vec![3, 3, 3, 3], vec![5, 1, 9, 1], vec![0, 1, 0], vec![11]] {
            let mut alone_log = std::collections::VecDeque::from(vec![0_i64; 2]);
            let alone: Vec<RateDecision> = costs.iter().map(|&c| window.take(&mut alone_log, 1_000, c)).collect();
            let mut group_log = std::collections::VecDeque::from(vec![0_i64; 2]);
            let total = window.take(&mut group_log, 1_000, costs.iter().sum());
            let shared = share(
                Taken {
                    granted: total.granted,
                    remaining: total.remaining,
                    retry_us: i64::try_from(total.retry_after.as_micros()).unwrap(),
                    reset_us: i64::try_from(total.reset_after.as_micros()).unwrap(),
                },
                &costs,
            );
            let key = |d: &RateDecision| (d.allowed, d.granted, d.remaining, d.reset_after);
            assert_eq!(shared.iter().map(key).collect::<Vec<_>>(), alone.iter().map(key).collect::<Vec<_>>(), "{costs:?}");
            for (s, a) in shared.iter().zip(&alone).filter(|(s, _)| !s.allowed) {
                // Alone, a refused take sees the full log; so does the group's answer.
                assert_eq!(s.retry_after, a.retry_after, "{costs:?}");
            }
        }
    }

    #[tokio::test]
    async fn takes_that_arrive_during_a_call_go_together_in_the_next() {
        let groups = Groups::default();
        let calls = Arc::new(AtomicU32::new(0));
        let (release, released) = tokio::sync::watch::channel(false);
        let call = {
            let calls = calls.clone();
            move |total: u32| {
                let calls = calls.clone();
                let mut released = released.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let _ = released.wait_for(|go| *go).await;
                    Ok(taken(total.min(5), 5 - total.min(5)))
                }
            }
        };
        let first = tokio::spawn({
            let (groups, call) = (groups.clone(), call.clone());
            async move { groups.take("k".to_owned(), 1, call).await }
        });
        while calls.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        let rest: Vec<_> = (0..6)
            .map(|_| {
                let (groups, call) = (groups.clone(), call.clone());
                tokio::spawn(async move { groups.take("k".to_owned(), 1, call).await })
            })
            .collect();
        while groups.lock().get("k").map_or(0, Vec::len) < 6 {
            tokio::task::yield_now().await;
        }
        release.send(true).unwrap();
        assert!(first.await.unwrap().unwrap().allowed);
        let mut allowed = 0;
        for take in rest {
            allowed += u32::from(take.await.unwrap().unwrap().allowed);
        }
        assert_eq!(calls.load(Ordering::SeqCst), 2, "one call for the first take, one for the six that queued behind it");
        assert_eq!(allowed, 5, "each call is answered as the store grants it");
        assert!(groups.lock().is_empty(), "an idle key leaves nothing behind");
    }

    #[tokio::test]
    async fn a_failed_call_fails_every_take_of_its_group() {
        let groups = Groups::default();
        let call = |_total: u32| async { Err(SharedError::Corrupt("boom".to_owned())) };
        let answer = groups.take("k".to_owned(), 1, call).await;
        assert!(matches!(answer, Err(SharedError::Corrupt(m)) if m == "boom"));
    }
}
