//! `RedisQueue` against a real Redis (`REDIS_URL`, default `redis://127.0.0.1:6379`). Each test
//! uses its own random key prefix and deletes its keys at the end; none touches other keys.

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use whatsapp_gateway::domain::MessageId;
use whatsapp_gateway::queue::{Job, JobQueue, RedisQueue};
use whatsapp_gateway::store::now_ms;

const LONG_LEASE: Duration = Duration::from_secs(60);

fn redis_url() -> String {
    std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A queue under a fresh prefix.
struct TestQueue {
    queue: RedisQueue,
    prefix: String,
}

impl TestQueue {
    async fn new() -> Self {
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let queue = RedisQueue::connect(&redis_url(), &prefix).await.expect("connect to Redis");
        Self { queue, prefix }
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

/// Runs a test body with a time bound, then deletes its keys.
async fn with_queue<F, Fut>(body: F)
where
    F: FnOnce(TestQueue) -> Fut,
    Fut: Future<Output = TestQueue>,
{
    let t = tokio::time::timeout(Duration::from_secs(60), body(TestQueue::new().await)).await.expect("test took over 60 s");
    t.delete_keys().await;
}

fn job(priority: i64, run_at: i64) -> Job {
    Job { message_id: MessageId::new(), priority, run_at }
}

#[tokio::test]
async fn claims_due_jobs_by_priority_then_oldest_run_at() {
    with_queue(|t| async move {
        let now = now_ms();
        let low_old = job(10, now - 5_000);
        let normal = job(5, now - 3_000);
        let high_newer = job(1, now - 1_000);
        let high_older = job(1, now - 2_000);
        for j in [&low_old, &normal, &high_newer, &high_older] {
            t.queue.enqueue(j.clone()).await.unwrap();
        }
        let mut order = Vec::new();
        while let Some(claimed) = t.queue.claim("w", LONG_LEASE).await.unwrap() {
            order.push(claimed);
        }
        assert_eq!(order, [high_older, high_newer, normal, low_old]);
        t
    })
    .await;
}

#[tokio::test]
async fn delayed_job_is_invisible_until_run_at() {
    with_queue(|t| async move {
        let delayed = job(1, now_ms() + 400);
        t.queue.enqueue(delayed.clone()).await.unwrap();
        assert_eq!(t.queue.claim("w", LONG_LEASE).await.unwrap(), None);
        assert_eq!(t.queue.depth().await.unwrap(), 1);
        tokio::time::sleep_until(tokio::time::Instant::now() + Duration::from_millis(500)).await;
        assert_eq!(t.queue.claim("w", LONG_LEASE).await.unwrap(), Some(delayed));
        t
    })
    .await;
}

#[tokio::test]
async fn enqueue_twice_keeps_one_job_and_only_moves_run_at_earlier() {
    with_queue(|t| async move {
        let now = now_ms();
        let first = job(5, now + 60_000);
        t.queue.enqueue(first.clone()).await.unwrap();
        t.queue.enqueue(Job { run_at: now + 120_000, ..first.clone() }).await.unwrap();
        assert_eq!(t.queue.depth().await.unwrap(), 1);
        assert_eq!(t.queue.claim("w", LONG_LEASE).await.unwrap(), None, "a later run_at must not replace an earlier one");

        let earlier = Job { priority: 2, run_at: now - 1_000, ..first.clone() };
        t.queue.enqueue(earlier.clone()).await.unwrap();
        t.queue.enqueue(Job { priority: 2, run_at: now + 60_000, ..first }).await.unwrap();
        assert_eq!(t.queue.depth().await.unwrap(), 1);
        assert_eq!(t.queue.claim("w", LONG_LEASE).await.unwrap(), Some(earlier));
        assert_eq!(t.queue.claim("w", LONG_LEASE).await.unwrap(), None);
        t
    })
    .await;
}

#[tokio::test]
async fn claimed_job_is_claimed_again_only_after_its_lease_expires() {
    with_queue(|t| async move {
        let j = job(5, now_ms());
        t.queue.enqueue(j.clone()).await.unwrap();
        assert_eq!(t.queue.claim("dead-worker", Duration::from_millis(400)).await.unwrap(), Some(j.clone()));
        assert_eq!(t.queue.claim("other", LONG_LEASE).await.unwrap(), None);
        t.queue.enqueue(j.clone()).await.unwrap();
        assert_eq!(t.queue.claim("other", LONG_LEASE).await.unwrap(), None, "re-enqueueing a leased job keeps its lease");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(t.queue.claim("other", LONG_LEASE).await.unwrap(), Some(j));
        assert_eq!(t.queue.claim("third", LONG_LEASE).await.unwrap(), None);
        t
    })
    .await;
}

#[tokio::test]
async fn complete_removes_the_job_even_while_leased() {
    with_queue(|t| async move {
        let (a, b) = (job(5, now_ms()), job(5, now_ms() + 60_000));
        t.queue.enqueue(a.clone()).await.unwrap();
        t.queue.enqueue(b.clone()).await.unwrap();
        assert_eq!(t.queue.claim("w", LONG_LEASE).await.unwrap(), Some(a.clone()));
        t.queue.complete(a.message_id).await.unwrap();
        t.queue.complete(b.message_id).await.unwrap();
        assert_eq!(t.queue.depth().await.unwrap(), 0);
        t.queue.complete(a.message_id).await.unwrap();
        assert_eq!(t.queue.claim("w", LONG_LEASE).await.unwrap(), None);
        t
    })
    .await;
}

#[tokio::test]
async fn reschedule_sets_run_at_and_releases_the_lease() {
    with_queue(|t| async move {
        let j = job(3, now_ms() - 10);
        t.queue.enqueue(j.clone()).await.unwrap();
        assert!(t.queue.claim("w", LONG_LEASE).await.unwrap().is_some());

        let later = now_ms() + 400;
        t.queue.reschedule(j.message_id, later).await.unwrap();
        assert_eq!(t.queue.claim("w", LONG_LEASE).await.unwrap(), None);
        assert_eq!(t.queue.depth().await.unwrap(), 1);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(t.queue.claim("w", LONG_LEASE).await.unwrap(), Some(Job { run_at: later, ..j.clone() }));

        let now = now_ms();
        t.queue.reschedule(j.message_id, now).await.unwrap();
        assert_eq!(t.queue.claim("w", LONG_LEASE).await.unwrap(), Some(Job { run_at: now, ..j.clone() }), "lease cleared");

        t.queue.complete(j.message_id).await.unwrap();
        t.queue.reschedule(j.message_id, now).await.unwrap();
        assert_eq!(t.queue.depth().await.unwrap(), 0, "rescheduling a finished job does not bring it back");
        t
    })
    .await;
}

#[tokio::test]
async fn depth_counts_due_delayed_and_leased_jobs() {
    with_queue(|t| async move {
        assert_eq!(t.queue.depth().await.unwrap(), 0);
        t.queue.enqueue(job(5, now_ms())).await.unwrap();
        t.queue.enqueue(job(5, now_ms())).await.unwrap();
        t.queue.enqueue(job(5, now_ms() + 60_000)).await.unwrap();
        let claimed = t.queue.claim("w", LONG_LEASE).await.unwrap().unwrap();
        assert_eq!(t.queue.depth().await.unwrap(), 3);
        t.queue.complete(claimed.message_id).await.unwrap();
        assert_eq!(t.queue.depth().await.unwrap(), 2);
        t
    })
    .await;
}

#[tokio::test]
async fn concurrent_claims_hand_out_each_job_exactly_once() {
    with_queue(|t| async move {
        let now = now_ms();
        let mut ids = HashSet::new();
        for n in 0..500 {
            let j = job(1 + n % 10, now - n);
            ids.insert(j.message_id);
            t.queue.enqueue(j).await.unwrap();
        }
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..8 {
            let queue = t.queue.clone();
            tasks.spawn(async move {
                let mut mine = Vec::new();
                while let Some(j) = queue.claim(&format!("w{w}"), LONG_LEASE).await.unwrap() {
                    mine.push(j.message_id);
                }
                mine
            });
        }
        let claimed: Vec<MessageId> = tasks.join_all().await.into_iter().flatten().collect();
        assert_eq!(claimed.len(), 500);
        assert_eq!(claimed.iter().copied().collect::<HashSet<_>>(), ids);
        assert_eq!(t.queue.depth().await.unwrap(), 500, "claimed jobs stay held until completed");
        t
    })
    .await;
}

#[tokio::test]
async fn deleting_the_queue_keys_leaves_it_usable_and_empty() {
    with_queue(|t| async move {
        let (a, b) = (job(5, now_ms()), job(5, now_ms() + 60_000));
        t.queue.enqueue(a.clone()).await.unwrap();
        t.queue.enqueue(b.clone()).await.unwrap();
        assert!(t.queue.claim("w", LONG_LEASE).await.unwrap().is_some());
        t.delete_keys().await;

        assert_eq!(t.queue.depth().await.unwrap(), 0);
        assert_eq!(t.queue.claim("w", LONG_LEASE).await.unwrap(), None);
        t.queue.reschedule(a.message_id, now_ms()).await.unwrap();
        t.queue.complete(a.message_id).await.unwrap();
        assert_eq!(t.queue.depth().await.unwrap(), 0);

        t.queue.enqueue(a.clone()).await.unwrap();
        assert_eq!(t.queue.claim("w", LONG_LEASE).await.unwrap(), Some(a));
        t
    })
    .await;
}

#[tokio::test]
async fn wait_for_work_wakes_on_an_enqueue_in_this_process() {
    with_queue(|t| async move {
        let queue = t.queue.clone();
        let waiter = tokio::spawn(async move {
            let started = tokio::time::Instant::now();
            queue.wait_for_work(Duration::from_secs(30)).await;
            started.elapsed()
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        t.queue.enqueue(job(5, now_ms())).await.unwrap();
        let waited = waiter.await.unwrap();
        assert!(waited < Duration::from_secs(1), "woke after {waited:?}");
        t
    })
    .await;
}

#[tokio::test]
async fn wait_for_work_returns_soon_without_an_enqueue_so_other_instances_are_seen() {
    with_queue(|t| async move {
        let started = tokio::time::Instant::now();
        t.queue.wait_for_work(Duration::from_secs(30)).await;
        assert!(started.elapsed() < Duration::from_secs(1), "waited {:?}", started.elapsed());
        t
    })
    .await;
}

#[tokio::test]
async fn connect_rejects_a_prefix_that_would_break_the_hash_tag() {
    let err = RedisQueue::connect(&redis_url(), "a}b").await.unwrap_err();
    assert!(err.to_string().contains("prefix"), "{err}");
}

/// A private `redis-server` on a free port, killed on drop (the shared server is never restarted).
struct PrivateRedis {
    port: u16,
    child: std::process::Child,
}

impl PrivateRedis {
    fn start_on(port: u16) -> Self {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--logfile", ""])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server must be on PATH for this test");
        Self { port, child }
    }

    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self::start_on(port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test]
async fn queue_reconnects_by_itself_after_redis_restarts_and_starts_empty() {
    let body = async {
        let mut server = PrivateRedis::start();
        let url = format!("redis://127.0.0.1:{}", server.port);
        let queue = loop {
            match RedisQueue::connect(&url, "restart").await {
                Ok(queue) => break queue,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        queue.enqueue(job(5, now_ms())).await.unwrap();
        assert_eq!(queue.depth().await.unwrap(), 1);

        server.stop();
        assert!(queue.depth().await.is_err(), "a stopped server answers with an error, not a hang");
        let _server = PrivateRedis::start_on(server.port);
        let depth = loop {
            match queue.depth().await {
                Ok(depth) => break depth,
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        assert_eq!(depth, 0, "the restarted server holds nothing; the sweeper re-queues from the database");
        let j = job(5, now_ms());
        queue.enqueue(j.clone()).await.unwrap();
        assert_eq!(queue.claim("w", LONG_LEASE).await.unwrap(), Some(j), "scripts are loaded again after the restart");
    };
    tokio::time::timeout(Duration::from_secs(60), body).await.expect("test took over 60 s");
}
