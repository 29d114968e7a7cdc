//! The same behaviours checked against `MemoryState` and `RedisState` (a real Redis at `REDIS_URL`,
//! default `redis://127.0.0.1:6379`, under a random prefix whose keys are deleted afterwards).

use std::future::Future;
use std::time::Duration;

use whatsapp_gateway::shared::{IdempotencyState, MemoryState, RateLimit, RedisConnection, RedisState, SharedState};

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn random_key(name: &str) -> String {
    format!("{name}-{}", uuid::Uuid::new_v4().simple())
}

async fn bounded(body: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(30), body).await.expect("test took over 30 s");
}

/// Runs `body` against a `RedisState` under a fresh prefix, then deletes that prefix's keys.
async fn with_redis<F, Fut>(body: F)
where
    F: FnOnce(RedisState) -> Fut,
    Fut: Future<Output = ()>,
{
    let prefix = random_key("test");
    let conn = RedisConnection::connect(&redis_url(), false).await.expect("connect to Redis");
    let state = RedisState::new(conn, &prefix).expect("a valid prefix");
    bounded(body(state)).await;
    let mut conn = redis::Client::open(redis_url()).unwrap().get_multiplexed_async_connection().await.unwrap();
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(format!("wg:{prefix}:*"))
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.unwrap();
        }
        if next == 0 {
            break;
        }
        cursor = next;
    }
}

async fn idempotency_records_go_new_in_flight_completed(state: impl SharedState) {
    let key = random_key("idem");
    let ttl = Duration::from_secs(30);
    assert_eq!(state.idempotency_begin(&key, "fp-1", ttl).await.unwrap(), IdempotencyState::New);
    assert_eq!(state.idempotency_begin(&key, "fp-1", ttl).await.unwrap(), IdempotencyState::InFlight);
    assert_eq!(state.idempotency_begin(&key, "fp-2", ttl).await.unwrap(), IdempotencyState::InFlight);

    let body = b"{\"id\":1}\x00\xff".to_vec();
    state.idempotency_complete(&key, "fp-1", 202, &body, ttl).await.unwrap();
    let stored = IdempotencyState::Completed { fingerprint: "fp-1".to_owned(), status: 202, body };
    assert_eq!(state.idempotency_begin(&key, "fp-2", ttl).await.unwrap(), stored, "the stored answer, with its fingerprint");
    state.idempotency_abandon(&key).await.unwrap();
    assert_eq!(state.idempotency_begin(&key, "fp-1", ttl).await.unwrap(), stored, "abandon keeps a completed record");
}

async fn abandoned_or_expired_in_flight_keys_can_be_taken_again(state: impl SharedState) {
    let key = random_key("idem");
    assert_eq!(state.idempotency_begin(&key, "fp", Duration::from_secs(30)).await.unwrap(), IdempotencyState::New);
    state.idempotency_abandon(&key).await.unwrap();
    assert_eq!(state.idempotency_begin(&key, "fp", Duration::from_millis(300)).await.unwrap(), IdempotencyState::New);
    assert_eq!(state.idempotency_begin(&key, "fp", Duration::from_millis(300)).await.unwrap(), IdempotencyState::InFlight);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(state.idempotency_begin(&key, "fp", Duration::from_secs(30)).await.unwrap(), IdempotencyState::New, "marker expired");
    state.idempotency_abandon(&random_key("never-seen")).await.unwrap();
}

/// 5 in any 2 s, at most 3 in any second.
const LIMIT: RateLimit = RateLimit { per_period: 5, period: Duration::from_secs(2), burst: 3 };

async fn rate_limit_counts_a_sliding_window_with_a_burst_bound(state: impl SharedState) {
    let key = random_key("rate");
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let d = state.rate_limit(&key, LIMIT, 1).await.unwrap();
        assert!(d.allowed && d.granted == 1, "{d:?}");
        assert_eq!(d.retry_after, Duration::ZERO);
        remaining.push(d.remaining);
    }
    assert_eq!(remaining, [2, 1, 0], "the burst bound is the tighter one");

    let refused = state.rate_limit(&key, LIMIT, 1).await.unwrap();
    assert!(!refused.allowed && refused.granted == 0, "{refused:?}");
    assert_eq!(refused.remaining, 0);
    assert!(refused.retry_after > Duration::from_millis(800) && refused.retry_after <= Duration::from_secs(1), "{refused:?}");
    assert!(refused.reset_after > Duration::from_millis(1800) && refused.reset_after <= Duration::from_secs(2), "{refused:?}");
    assert!(state.rate_limit(&random_key("rate"), LIMIT, 1).await.unwrap().allowed, "keys are independent");

    // Out of the burst second, but still inside the 2 s window: two more fit the allowance.
    tokio::time::sleep(refused.retry_after + Duration::from_millis(20)).await;
    let fourth = state.rate_limit(&key, LIMIT, 1).await.unwrap();
    assert!(fourth.allowed && fourth.remaining == 1, "{fourth:?}");
    let fifth = state.rate_limit(&key, LIMIT, 1).await.unwrap();
    assert!(fifth.allowed && fifth.remaining == 0, "{fifth:?}");
    let over = state.rate_limit(&key, LIMIT, 1).await.unwrap();
    assert!(!over.allowed, "{over:?}");
    assert!(over.retry_after <= Duration::from_secs(1), "the first three leave the 2 s window first: {over:?}");

    tokio::time::sleep(LIMIT.period).await;
    let refilled = state.rate_limit(&key, LIMIT, 1).await.unwrap();
    assert!(refilled.allowed && refilled.remaining == 2, "everything has left the window: {refilled:?}");

    let batch = state.rate_limit(&random_key("rate"), LIMIT, 4).await.unwrap();
    assert_eq!((batch.allowed, batch.granted, batch.remaining), (false, 3, 0), "a batch is granted what fits: {batch:?}");
    assert!(batch.retry_after > Duration::from_millis(900), "{batch:?}");
}

async fn reservations_hand_out_spaced_slots_one_block_ahead(state: impl SharedState) {
    let key = random_key("pace");
    let spacing = Duration::from_millis(10);
    let first = state.reserve(&key, spacing, 5, Duration::from_millis(50)).await.unwrap();
    assert_eq!((first.granted, first.spacing), (5, spacing));
    assert!(first.start_in <= Duration::from_millis(1), "{first:?}");
    let second = state.reserve(&key, spacing, 5, Duration::from_millis(50)).await.unwrap();
    assert_eq!(second.granted, 0, "the next block is more than 50 ms ahead: {second:?}");
    assert!(second.start_in > Duration::ZERO && second.start_in <= spacing, "ask again once a slot is within reach: {second:?}");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let third = state.reserve(&key, spacing, 5, Duration::from_millis(50)).await.unwrap();
    assert!((2..=4).contains(&third.granted), "slots resume where the first block ended: {third:?}");
    assert!(third.start_in <= Duration::from_millis(20), "{third:?}");
    let other = state.reserve(&random_key("pace"), spacing, 5, Duration::from_millis(50)).await.unwrap();
    assert_eq!(other.granted, 5, "keys are independent");
}

async fn a_hold_keeps_every_slot_back_until_it_ends(state: impl SharedState) {
    let key = random_key("pace");
    let spacing = Duration::from_millis(10);
    state.hold(&key, Duration::from_millis(300)).await.unwrap();
    let held = state.reserve(&key, spacing, 5, Duration::from_millis(50)).await.unwrap();
    assert_eq!(held.granted, 0, "{held:?}");
    assert!(held.start_in > Duration::from_millis(200), "ask again near the end of the hold: {held:?}");
    // A shorter hold never brings the slots forward.
    state.hold(&key, Duration::from_millis(10)).await.unwrap();
    assert_eq!(state.reserve(&key, spacing, 5, Duration::from_millis(50)).await.unwrap().granted, 0);
    tokio::time::sleep(Duration::from_millis(320)).await;
    let after = state.reserve(&key, spacing, 5, Duration::from_millis(50)).await.unwrap();
    assert_eq!(after.granted, 5, "{after:?}");
}

/// Many takes at once from one key (which the Redis backend sends as few grouped calls): exactly
/// the limit is granted, and the `remaining` each was told are all different.
async fn concurrent_takes_grant_exactly_the_limit(state: impl SharedState) {
    let state = std::sync::Arc::new(state);
    let key = random_key("rate");
    let limit = RateLimit { per_period: 50, period: Duration::from_secs(60), burst: 0 };
    let takes: Vec<_> = (0..80)
        .map(|_| {
            let (state, key) = (state.clone(), key.clone());
            tokio::spawn(async move { state.rate_limit(&key, limit, 1).await.unwrap() })
        })
        .collect();
    let mut remaining = Vec::new();
    for take in takes {
        let decision = take.await.unwrap();
        if decision.allowed {
            remaining.push(decision.remaining);
        } else {
            assert!(decision.retry_after > Duration::ZERO, "{decision:?}");
        }
    }
    remaining.sort_unstable();
    assert_eq!(remaining, (0..50).collect::<Vec<u32>>(), "each granted take saw the allowance left after it");
}

async fn ping_answers(state: impl SharedState) {
    state.ping().await.unwrap();
}

macro_rules! both_backends {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $name() {
                super::bounded(super::$name(super::MemoryState::new())).await;
            })*
        }
        mod redis_backend {
            $(#[tokio::test]
            async fn $name() {
                super::with_redis(super::$name).await;
            })*
        }
    };
}

both_backends!(
    idempotency_records_go_new_in_flight_completed,
    abandoned_or_expired_in_flight_keys_can_be_taken_again,
    rate_limit_counts_a_sliding_window_with_a_burst_bound,
    reservations_hand_out_spaced_slots_one_block_ahead,
    a_hold_keeps_every_slot_back_until_it_ends,
    concurrent_takes_grant_exactly_the_limit,
    ping_answers,
);

#[tokio::test]
async fn redis_state_rejects_a_prefix_with_pattern_characters() {
    let conn = RedisConnection::connect(&redis_url(), false).await.expect("connect to Redis");
    let err = RedisState::new(conn, "a*b").unwrap_err();
    assert!(err.to_string().contains("prefix"), "{err}");
}
