//! The queue in Redis, for several instances (see [`super::scripts`] for its keys). Claims take
//! many jobs per script call; enqueues, completions and reschedules from every task of this
//! process are gathered by one feeder task and applied together in one script call, so the
//! number of Redis commands per message stays small whatever the load. Idle workers sleep until a
//! job is due or another instance publishes that jobs became ready; they do not poll.
//!
//! Losing the data (restart, flush) loses only jobs, which the sweeper re-queues from the
//! database. An enqueue is therefore not waited for: the message it names is already stored.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use ::redis::Script;
use async_trait::async_trait;
use futures_util::StreamExt as _;
use tokio::sync::{Notify, mpsc};

use super::job::{Job, JobQueue, QueueError};
use crate::domain::{MessageId, Priority, UnixMillis, now_ms};
use crate::shared::{RedisConnection, timed, valid_prefix};
use crate::store::{Claim, ClaimResult, Store};
use crate::telemetry::metrics;

/// How many expired leases, and how many newly due jobs, one claim moves to `ready` at most.
const BATCH: u32 = 1000;
/// The most operations one feeder call applies.
const MAX_OPS: usize = 2000;
/// The longest an idle worker sleeps without a wake-up (a safety net if a publish was missed).
const IDLE_LIMIT: Duration = Duration::from_secs(5);

enum Op {
    Enqueue(Job),
    Reschedule(MessageId, UnixMillis),
    Complete(MessageId),
    Flush(tokio::sync::oneshot::Sender<()>),
}

/// [`JobQueue`] in Redis.
#[derive(Clone)]
pub struct RedisQueue {
    conn: RedisConnection,
    keys: Arc<[String; 4]>,
    claim: Arc<Script>,
    store: Store,
    ops: mpsc::UnboundedSender<Op>,
    wake: Arc<Notify>,
    /// When the next job is due or a lease ends, as the last empty claim saw it (ms).
    next_due_at: Arc<AtomicI64>,
}

impl fmt::Debug for RedisQueue {
    // The connection's own Debug shows its connection info; keep credentials out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue").field("jobs_key", &self.keys[0]).finish_non_exhaustive()
    }
}

impl RedisQueue {
    /// A queue with keys `{wg:<prefix>}:…` (`prefix`: letters, digits, `_`, `-`, `.`) on `conn`,
    /// claiming messages in `store`. `url` is one node's URL, for the subscription that wakes
    /// idle workers when another instance enqueues.
    pub fn new(conn: RedisConnection, prefix: &str, store: Store, url: &str) -> Result<Self, QueueError> {
        valid_prefix(prefix).map_err(QueueError::Corrupt)?;
        let keys = ["jobs", "due", "ready", "leases"].map(|name| format!("{{wg:{prefix}}}:{name}"));
        let channel = format!("wg:{prefix}:wake");
        let (ops, rx) = mpsc::unbounded_channel();
        let wake = Arc::new(Notify::new());
        let queue = Self {
            conn,
            keys: Arc::new(keys),
            claim: Arc::new(Script::new(&super::scripts::claim())),
            store,
            ops,
            wake: wake.clone(),
            next_due_at: Arc::new(AtomicI64::new(0)),
        };
        tokio::spawn(feed(queue.conn.clone(), queue.keys.clone(), channel.clone(), rx, wake.clone()));
        tokio::spawn(listen(url.to_owned(), channel, wake));
        Ok(queue)
    }

    fn send(&self, op: Op) {
        // The feeder lives as long as any handle of the queue.
        let _ = self.ops.send(op);
    }

    /// Waits until every operation handed over so far has been applied (or has failed).
    pub async fn flush(&self) {
        let (done, wait) = tokio::sync::oneshot::channel();
        self.send(Op::Flush(done));
        let _ = wait.await;
    }

    /// Jobs held, due or not (for tests and inspection).
    pub async fn depth(&self) -> Result<i64, QueueError> {
        Ok(timed("depth", ::redis::cmd("HLEN").arg(&self.keys[0]).query_async(&mut self.conn.clone())).await?)
    }
}

#[async_trait]
impl JobQueue for RedisQueue {
    async fn enqueue(&self, job: Job) -> Result<(), QueueError> {
        if job.run_at <= now_ms() {
            self.wake.notify_waiters();
        }
        self.send(Op::Enqueue(job));
        Ok(())
    }

    async fn claim(&self, worker: &str, limit: usize, lease: Duration) -> Result<Vec<Claim>, QueueError> {
        let mut invocation = self.claim.prepare_invoke();
        for key in self.keys.iter() {
            invocation.key(key);
        }
        invocation.arg(lease.as_millis().to_string()).arg(limit).arg(BATCH);
        let (ids, hint): (Vec<String>, i64) = timed("claim", invocation.invoke_async(&mut self.conn.clone())).await?;
        if ids.is_empty() {
            self.next_due_at.store(if hint < 0 { 0 } else { now_ms() + hint }, Ordering::Relaxed);
            return Ok(Vec::new());
        }
        let ids = ids
            .iter()
            .map(|id| id.parse::<MessageId>().map_err(|_| QueueError::Corrupt(format!("bad message id {id:?} in the queue"))))
            .collect::<Result<Vec<_>, _>>()?;
        let mut claims = Vec::with_capacity(ids.len());
        for result in self.store.claim_ids(ids, worker, lease).await? {
            match result {
                ClaimResult::Claimed(claim) => claims.push(*claim),
                ClaimResult::Done { id } => self.send(Op::Complete(id)),
                ClaimResult::NotDue { id, at } => self.send(Op::Reschedule(id, at)),
                ClaimResult::Leased { id, until } => self.send(Op::Reschedule(id, until)),
            }
        }
        Ok(claims)
    }

    async fn complete(&self, message_id: MessageId) -> Result<(), QueueError> {
        self.send(Op::Complete(message_id));
        Ok(())
    }

    async fn reschedule(&self, message_id: MessageId, _priority: Priority, run_at: UnixMillis) -> Result<(), QueueError> {
        self.send(Op::Reschedule(message_id, run_at));
        Ok(())
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let notified = self.wake.notified();
        let next = self.next_due_at.load(Ordering::Relaxed);
        let until_due = if next > 0 { Duration::from_millis(u64::try_from(next - now_ms()).unwrap_or(0)) } else { IDLE_LIMIT };
        let wait = timeout.max(IDLE_LIMIT).min(until_due).max(Duration::from_millis(1));
        let _ = tokio::time::timeout(wait, notified).await;
    }

    async fn ping(&self) -> Result<(), QueueError> {
        let pong: String = timed("ping", ::redis::cmd("PING").query_async(&mut self.conn.clone())).await?;
        if pong == "PONG" { Ok(()) } else { Err(QueueError::Corrupt(format!("PING answered {pong:?}"))) }
    }
}

/// Applies the operations handed over, as many at a time as have arrived.
async fn feed(conn: RedisConnection, keys: Arc<[String; 4]>, channel: String, mut rx: mpsc::UnboundedReceiver<Op>, wake: Arc<Notify>) {
    let script = Script::new(&super::scripts::apply());
    let mut ops = Vec::with_capacity(MAX_OPS);
    while rx.recv_many(&mut ops, MAX_OPS).await > 0 {
        let (mut enqueue, mut reschedule, mut complete, mut flushed) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for op in ops.drain(..) {
            match op {
                Op::Enqueue(job) => enqueue.push(job),
                Op::Reschedule(id, at) => reschedule.push((id, at)),
                Op::Complete(id) => complete.push(id),
                Op::Flush(done) => flushed.push(done),
            }
        }
        if !(enqueue.is_empty() && reschedule.is_empty() && complete.is_empty()) {
            let mut invocation = script.prepare_invoke();
            for key in keys.iter() {
                invocation.key(key);
            }
            invocation.arg(&channel).arg(enqueue.len());
            for job in &enqueue {
                invocation.arg(job.message_id.to_string()).arg(job.priority.get()).arg(job.run_at);
            }
            invocation.arg(reschedule.len());
            for (id, at) in &reschedule {
                invocation.arg(id.to_string()).arg(*at);
            }
            invocation.arg(complete.len());
            for id in &complete {
                invocation.arg(id.to_string());
            }
            match timed("apply", invocation.invoke_async::<i64>(&mut conn.clone())).await {
                Ok(ready) if ready > 0 => wake.notify_waiters(),
                Ok(_) => {}
                Err(e) => {
                    // The messages are in the database: the sweeper queues them again.
                    tracing::warn!(error = %crate::telemetry::chain(&e), jobs = enqueue.len() + reschedule.len(), "the queue could not take jobs; the sweeper will");
                    for _ in 0..enqueue.len() + reschedule.len() {
                        metrics::enqueue_failed();
                    }
                }
            }
        }
        for done in flushed {
            let _ = done.send(());
        }
    }
}

/// Wakes idle workers when any instance publishes that jobs became ready; reconnects by itself.
async fn listen(url: String, channel: String, wake: Arc<Notify>) {
    loop {
        match subscribe(&url, &channel).await {
            Ok(mut pubsub) => {
                let mut messages = pubsub.on_message();
                while messages.next().await.is_some() {
                    wake.notify_waiters();
                }
            }
            Err(e) => tracing::debug!(error = %e, "cannot subscribe to the queue's wake-ups; retrying"),
        }
        // Wake anyone asleep: jobs may have become ready while the subscription was down.
        wake.notify_waiters();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn subscribe(url: &str, channel: &str) -> Result<::redis::aio::PubSub, ::redis::RedisError> {
    let client = ::redis::Client::open(url)?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    Ok(pubsub)
}
