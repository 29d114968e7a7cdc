//! `RedisQueue` against a real Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`) and a store
//! of its own (the queue claims the messages it names). Each test uses its own random key prefix
//! and deletes its keys at the end; none touches other keys.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use whatsapp_gateway::domain::{MessageId, NewOutboundMessage, Priority, now_ms};
use whatsapp_gateway::queue::{Job, JobQueue, RedisQueue};
use whatsapp_gateway::shared::RedisConnection;
use whatsapp_gateway::store::{Store, StoreOptions};

use crate::support::{outbound, sender};

mod restart;

const LONG_LEASE: Duration = Duration::from_secs(60);

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A queue under a fresh prefix, over a store in a fresh SQLite file.
struct TestQueue {
    queue: RedisQueue,
    store: Store,
    prefix: String,
    dir: std::path::PathBuf,
}

async fn store_in(dir: &std::path::Path) -> Store {
    let store = Store::connect(&format!("sqlite://{}/q.db", dir.display()), &StoreOptions::default()).await.unwrap();
    store.migrate().await.unwrap();
    store
}

async fn queue_on(url: &str, prefix: &str, store: &Store) -> Result<RedisQueue, String> {
    let conn = RedisConnection::connect(url, false).await.map_err(|e| e.to_string())?;
    RedisQueue::new(conn, prefix, store.clone(), url).map_err(|e| e.to_string())
}

impl TestQueue {
    async fn new() -> Self {
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let dir = std::env::temp_dir().join(format!("wg-queue-{prefix}"));
        std::fs::create_dir_all(&dir).unwrap();
        let store = store_in(&dir).await;
        let queue = queue_on(&redis_url(), &prefix, &store).await.expect("connect to Redis");
        Self { queue, store, prefix, dir }
    }

    /// Stores a sendable message with `priority`, due `offset_ms` from now, and its job.
    async fn message(&self, priority: i64, offset_ms: i64) -> Job {
        let now = now_ms();
        let message = NewOutboundMessage { priority: Priority::new(priority).unwrap(), ..outbound("+14155550150") };
        let at = now + offset_ms.min(0);
        let message = NewOutboundMessage { send_at: (offset_ms > 0).then_some(now + offset_ms), ..message };
        let (stored, _) = self.store.insert_outbound(message, sender(), at).await.unwrap();
        Job { message_id: stored.id, priority: stored.priority, run_at: stored.next_attempt_at.unwrap() }
    }

    async fn enqueue(&self, job: &Job) {
        self.queue.enqueue(job.clone()).await.unwrap();
        self.queue.flush().await;
    }

    async fn claim(&self, worker: &str, limit: usize, lease: Duration) -> Vec<MessageId> {
        let claims = self.queue.claim(worker, limit, lease).await.unwrap();
        self.queue.flush().await;
        claims.into_iter().map(|c| c.message.id).collect()
    }

    /// Deletes every key of this queue (what a FLUSHALL would do to it), and nothing else.
    async fn delete_keys(&self) {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut conn = client.get_multiplexed_async_connection().await.unwrap();
        let pattern = format!("{{wg:{}}}:*", self.prefix);
        let mut cursor = 0u64;
        loop {
            let (next, keys): (u64, Vec<String>) =
                redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000).query_async(&mut conn).await.unwrap();
            if !keys.is_empty() {
                let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.unwrap();
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
}

/// Runs a test body with a time bound, then deletes its keys and its database.
async fn with_queue<F, Fut>(body: F)
where
    F: FnOnce(TestQueue) -> Fut,
    Fut: Future<Output = TestQueue>,
{
    let t = tokio::time::timeout(Duration::from_secs(60), body(TestQueue::new().await)).await.expect("test took over 60 s");
    t.delete_keys().await;
    t.store.close().await;
    let _ = std::fs::remove_dir_all(&t.dir);
}

#[tokio::test]
async fn claims_due_messages_by_priority_then_oldest_due_time() {
    with_queue(|t| async move {
        let low_old = t.message(10, -5_000).await;
        let normal = t.message(5, -3_000).await;
        let high_newer = t.message(1, -1_000).await;
        let high_older = t.message(1, -2_000).await;
        for j in [&low_old, &normal, &high_newer, &high_older] {
            t.enqueue(j).await;
        }
        let mut order = Vec::new();
        loop {
            let claimed = t.claim("w", 1, LONG_LEASE).await;
            if claimed.is_empty() {
                break;
            }
            order.extend(claimed);
        }
        assert_eq!(order, [high_older.message_id, high_newer.message_id, normal.message_id, low_old.message_id]);
        t
    })
    .await;
}

#[tokio::test]
async fn one_claim_takes_many_messages_in_one_call() {
    with_queue(|t| async move {
        let mut ids = HashSet::new();
        for n in 0..50 {
            let job = t.message(1 + n % 10, -n).await;
            ids.insert(job.message_id);
            t.queue.enqueue(job).await.unwrap();
        }
        t.queue.flush().await;
        let first = t.claim("w", 30, LONG_LEASE).await;
        assert_eq!(first.len(), 30);
        let rest = t.claim("w", 30, LONG_LEASE).await;
        assert_eq!(rest.len(), 20);
        assert_eq!(first.iter().chain(&rest).copied().collect::<HashSet<_>>(), ids);
        assert!(t.claim("w", 30, LONG_LEASE).await.is_empty());
        t
    })
    .await;
}

#[tokio::test]
async fn delayed_job_is_invisible_until_its_time() {
    with_queue(|t| async move {
        let delayed = t.message(1, 400).await;
        t.enqueue(&delayed).await;
        assert!(t.claim("w", 10, LONG_LEASE).await.is_empty());
        assert_eq!(t.queue.depth().await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(t.claim("w", 10, LONG_LEASE).await, [delayed.message_id]);
        t
    })
    .await;
}

#[tokio::test]
async fn enqueue_twice_keeps_one_job_and_only_moves_it_earlier() {
    with_queue(|t| async move {
        let job = t.message(5, -1_000).await;
        t.enqueue(&Job { run_at: now_ms() + 60_000, ..job.clone() }).await;
        t.enqueue(&Job { run_at: now_ms() + 120_000, ..job.clone() }).await;
        assert_eq!(t.queue.depth().await.unwrap(), 1);
        assert!(t.claim("w", 10, LONG_LEASE).await.is_empty(), "a later run_at must not replace an earlier one");
        t.enqueue(&job).await;
        t.enqueue(&Job { run_at: now_ms() + 60_000, ..job.clone() }).await;
        assert_eq!(t.queue.depth().await.unwrap(), 1);
        assert_eq!(t.claim("w", 10, LONG_LEASE).await, [job.message_id]);
        assert!(t.claim("w", 10, LONG_LEASE).await.is_empty());
        t
    })
    .await;
}

#[tokio::test]
async fn a_claimed_message_is_claimed_again_only_after_its_lease_expires() {
    with_queue(|t| async move {
        let job = t.message(5, 0).await;
        t.enqueue(&job).await;
        assert_eq!(t.claim("dead-worker", 10, Duration::from_millis(400)).await, [job.message_id]);
        assert!(t.claim("other", 10, LONG_LEASE).await.is_empty());
        t.enqueue(&job).await;
        assert!(t.claim("other", 10, LONG_LEASE).await.is_empty(), "re-enqueueing a leased job keeps its lease");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(t.claim("other", 10, LONG_LEASE).await, [job.message_id]);
        assert!(t.claim("third", 10, LONG_LEASE).await.is_empty());
        t
    })
    .await;
}

#[tokio::test]
async fn complete_removes_the_job_even_while_leased() {
    with_queue(|t| async move {
        let (a, b) = (t.message(5, 0).await, t.message(5, 60_000).await);
        t.enqueue(&a).await;
        t.enqueue(&b).await;
        assert_eq!(t.claim("w", 10, LONG_LEASE).await, [a.message_id]);
        t.queue.complete(a.message_id).await.unwrap();
        t.queue.complete(b.message_id).await.unwrap();
        t.queue.flush().await;
        assert_eq!(t.queue.depth().await.unwrap(), 0);
        t.queue.complete(a.message_id).await.unwrap();
        t.queue.flush().await;
        assert!(t.claim("w", 10, LONG_LEASE).await.is_empty());
        t
    })
    .await;
}

#[tokio::test]
async fn a_job_for_a_message_that_is_not_sendable_is_completed_by_the_claim() {
    with_queue(|t| async move {
        let job = t.message(5, 0).await;
        let ghost = Job { message_id: MessageId::new(), ..job.clone() };
        t.enqueue(&ghost).await;
        assert!(t.claim("w", 10, LONG_LEASE).await.is_empty(), "no such message");
        assert_eq!(t.queue.depth().await.unwrap(), 0, "its job is gone");
        // A job earlier than its message's due time is put back at that time.
        let later = t.message(5, 60_000).await;
        t.enqueue(&Job { run_at: now_ms() - 1, ..later.clone() }).await;
        assert!(t.claim("w", 10, LONG_LEASE).await.is_empty());
        assert_eq!(t.queue.depth().await.unwrap(), 1);
        t
    })
    .await;
}

#[tokio::test]
async fn reschedule_sets_the_time_and_releases_the_lease() {
    with_queue(|t| async move {
        let job = t.message(3, -10).await;
        t.enqueue(&job).await;
        assert_eq!(t.claim("w", 10, Duration::from_millis(300)).await, [job.message_id]);
        t.store.release(job.message_id, "w", None).await.unwrap();
        let later = now_ms() + 400;
        t.queue.reschedule(job.message_id, job.priority, later).await.unwrap();
        t.queue.flush().await;
        assert!(t.claim("w", 10, LONG_LEASE).await.is_empty());
        assert_eq!(t.queue.depth().await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(t.claim("w", 10, LONG_LEASE).await, [job.message_id]);
        t.queue.complete(job.message_id).await.unwrap();
        t.queue.reschedule(job.message_id, job.priority, now_ms()).await.unwrap();
        t.queue.flush().await;
        assert_eq!(t.queue.depth().await.unwrap(), 0, "rescheduling a finished job does not bring it back");
        t
    })
    .await;
}

#[tokio::test]
async fn concurrent_claims_hand_out_each_message_exactly_once() {
    with_queue(|t| async move {
        let mut ids = HashSet::new();
        for n in 0..300 {
            let job = t.message(1 + n % 10, -n).await;
            ids.insert(job.message_id);
            t.queue.enqueue(job).await.unwrap();
        }
        t.queue.flush().await;
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..8 {
            let queue = t.queue.clone();
            tasks.spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let claims = queue.claim(&format!("w{w}"), 7, LONG_LEASE).await.unwrap();
                    if claims.is_empty() {
                        break mine;
                    }
                    mine.extend(claims.into_iter().map(|c| c.message.id));
                }
            });
        }
        let claimed: Vec<MessageId> = tasks.join_all().await.into_iter().flatten().collect();
        assert_eq!(claimed.len(), 300);
        assert_eq!(claimed.iter().copied().collect::<HashSet<_>>(), ids);
        assert_eq!(t.queue.depth().await.unwrap(), 300, "claimed jobs stay held until completed");
        t
    })
    .await;
}

#[tokio::test]
async fn deleting_the_queue_keys_leaves_it_usable_and_empty() {
    with_queue(|t| async move {
        let (a, b) = (t.message(5, 0).await, t.message(5, 60_000).await);
        t.enqueue(&a).await;
        t.enqueue(&b).await;
        assert_eq!(t.claim("w", 1, Duration::from_millis(200)).await, [a.message_id]);
        t.delete_keys().await;
        assert_eq!(t.queue.depth().await.unwrap(), 0);
        assert!(t.claim("w", 10, LONG_LEASE).await.is_empty());
        t.queue.complete(a.message_id).await.unwrap();
        t.queue.flush().await;
        assert_eq!(t.queue.depth().await.unwrap(), 0);
        tokio::time::sleep(Duration::from_millis(250)).await;
        t.enqueue(&a).await;
        assert_eq!(t.claim("w", 10, LONG_LEASE).await, [a.message_id]);
        t
    })
    .await;
}

#[tokio::test]
async fn wait_for_work_wakes_on_an_enqueue_here_or_in_another_instance() {
    with_queue(|t| async move {
        let other = queue_on(&redis_url(), &t.prefix, &t.store).await.unwrap();
        // Let the subscriptions settle.
        tokio::time::sleep(Duration::from_millis(200)).await;
        for enqueuer in [&t.queue, &other] {
            let queue = t.queue.clone();
            let waiter = tokio::spawn(async move {
                let started = tokio::time::Instant::now();
                queue.wait_for_work(Duration::from_secs(30)).await;
                started.elapsed()
            });
            tokio::time::sleep(Duration::from_millis(50)).await;
            let job = t.message(5, 0).await;
            enqueuer.enqueue(job).await.unwrap();
            let waited = waiter.await.unwrap();
            assert!(waited < Duration::from_secs(1), "woke after {waited:?}");
        }
        t
    })
    .await;
}

#[tokio::test]
async fn an_idle_wait_sleeps_until_the_next_due_job() {
    with_queue(|t| async move {
        let job = t.message(5, 600).await;
        t.enqueue(&job).await;
        assert!(t.claim("w", 10, LONG_LEASE).await.is_empty(), "not due: the claim notes when it will be");
        let started = tokio::time::Instant::now();
        t.queue.wait_for_work(Duration::from_secs(30)).await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(400) && waited < Duration::from_secs(2), "waited {waited:?}");
        assert_eq!(t.claim("w", 10, LONG_LEASE).await, [job.message_id]);
        t
    })
    .await;
}

#[tokio::test]
async fn a_prefix_that_would_break_the_hash_tag_is_refused() {
    let dir = std::env::temp_dir().join(format!("wg-queue-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = store_in(&dir).await;
    let err = queue_on(&redis_url(), "a}b", &store).await.unwrap_err();
    assert!(err.contains("prefix"), "{err}");
    store.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
