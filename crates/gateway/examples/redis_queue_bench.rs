//! Throughput and claim latency of `RedisQueue`: enqueues 10,000 jobs, then 4 tasks claim and
//! complete them all; then claims with 10,000 delayed jobs waiting behind a few due ones.
//!
//! `cargo run --release -p whatsapp-gateway --example redis_queue_bench` (`REDIS_URL`, default
//! `redis://127.0.0.1:6379`; keys under a random prefix, deleted at the end).

use std::time::{Duration, Instant};

use whatsapp_gateway::domain::MessageId;
use whatsapp_gateway::queue::{Job, JobQueue, RedisQueue};
use whatsapp_gateway::store::now_ms;

const JOBS: usize = 10_000;
const TASKS: usize = 4;
const LEASE: Duration = Duration::from_secs(60);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let prefix = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let queue = RedisQueue::connect(&url, &prefix).await?;

    let started = Instant::now();
    let now = now_ms();
    for n in 0..JOBS {
        queue.enqueue(Job { message_id: MessageId::new(), priority: 1 + (n % 10) as i64, run_at: now - n as i64 }).await?;
    }
    let enqueue_time = started.elapsed();
    println!("enqueue: {JOBS} jobs in {enqueue_time:.2?} ({:.0} jobs/s, one at a time)", JOBS as f64 / enqueue_time.as_secs_f64());

    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..TASKS {
        let queue = queue.clone();
        tasks.spawn(async move { drain(&queue, &format!("bench-{t}")).await });
    }
    let mut by_order: Vec<(Instant, Duration)> = Vec::new();
    for result in tasks.join_all().await {
        by_order.extend(result?);
    }
    let elapsed = started.elapsed();
    assert_eq!(by_order.len(), JOBS, "every job claimed exactly once");
    println!("claim+complete: {JOBS} jobs with {TASKS} tasks in {elapsed:.2?} ({:.0} jobs/s)", JOBS as f64 / elapsed.as_secs_f64());
    by_order.sort_by_key(|(at, _)| *at);
    let all: Vec<Duration> = by_order.iter().map(|(_, d)| *d).collect();
    report("claim latency, all", &all);
    report("claim latency, first 1,000 (depth 10,000→9,000)", &all[..1000]);
    report("claim latency, last 1,000 (depth 1,000→0)", &all[JOBS - 1000..]);

    delayed_backlog(&queue).await?;
    cleanup(&url, &prefix).await?;
    Ok(())
}

/// Claims and completes until the queue is empty; returns (when, claim latency) per job.
async fn drain(queue: &RedisQueue, worker: &str) -> anyhow::Result<Vec<(Instant, Duration)>> {
    let mut latencies = Vec::new();
    loop {
        let started = Instant::now();
        let Some(job) = queue.claim(worker, LEASE).await? else { return Ok(latencies) };
        latencies.push((started, started.elapsed()));
        queue.complete(job.message_id).await?;
    }
}

/// Claim latency when 10,000 jobs wait for a later `run_at` and 1,000 are due.
async fn delayed_backlog(queue: &RedisQueue) -> anyhow::Result<()> {
    let now = now_ms();
    for n in 0..JOBS {
        queue.enqueue(Job { message_id: MessageId::new(), priority: 5, run_at: now + 3_600_000 + n as i64 }).await?;
    }
    for _ in 0..1000 {
        queue.enqueue(Job { message_id: MessageId::new(), priority: 5, run_at: now }).await?;
    }
    let mut latencies = Vec::new();
    for (_, latency) in drain(queue, "bench-delayed").await? {
        latencies.push(latency);
    }
    assert_eq!(latencies.len(), 1000);
    report("claim latency, 1 task, 1,000 due behind 10,000 delayed", &latencies);
    Ok(())
}

fn report(label: &str, latencies: &[Duration]) {
    let mut sorted = latencies.to_vec();
    sorted.sort();
    let pct = |p: f64| sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)];
    println!("{label}: p50 {:.0?} p99 {:.0?} max {:.0?}", pct(0.50), pct(0.99), sorted[sorted.len() - 1]);
}

async fn cleanup(url: &str, prefix: &str) -> anyhow::Result<()> {
    let mut conn = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    let keys: Vec<String> = ["jobs", "due", "ready", "leases", "owners"].iter().map(|k| format!("{{wg:{prefix}}}:{k}")).collect();
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
    Ok(())
}
