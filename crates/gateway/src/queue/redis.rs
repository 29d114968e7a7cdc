//! The queue in Redis, for several instances. Every key of one queue shares the hash tag
//! `{wg:<prefix>}`, so the scripts below touch a single cluster slot:
//!
//! - `{wg:<prefix>}:jobs`   hash, message id → `"<priority>:<run_at>"`: every job held (the depth);
//! - `{wg:<prefix>}:due`    zset, id by `run_at`: jobs waiting for their time;
//! - `{wg:<prefix>}:ready`  zset, id by `priority * 2^42 + run_at`: due jobs, most urgent first;
//! - `{wg:<prefix>}:leases` zset, id by lease expiry: claimed jobs;
//! - `{wg:<prefix>}:owners` hash, id → worker holding the lease (for inspection).
//!
//! A job is in exactly one of `due`, `ready`, `leases`. Each operation is one Lua script, so it is
//! atomic; "now" is Redis `TIME` (one clock for every instance's leases; `run_at` itself comes from
//! the instance that computed it). `claim` first returns up to [`BATCH`] expired leases and
//! [`BATCH`] newly due jobs to `ready`, then pops the best of `ready`: its cost grows with the
//! number of jobs moved, never with the number held. Losing the data (restart, flush) loses only
//! jobs, which the sweeper re-queues from the database.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::{RedisError, Script};
use async_trait::async_trait;
use tokio::sync::Notify;

use super::{Job, JobQueue, QueueError};
use crate::domain::MessageId;
use crate::domain::status::UnixMillis;
use crate::shared::{RedisConnection, timed, valid_prefix};

/// How many expired leases, and how many newly due jobs, one claim moves to `ready` at most.
const BATCH: u32 = 100;
/// The longest an idle worker waits before looking again (other instances' enqueues do not wake it).
const IDLE_POLL: Duration = Duration::from_millis(200);
/// `run_at` is kept below 2^42 ms (year 2109) in the ready score, so priority * 2^42 + run_at is an
/// exact double for priorities 1…10.
const LUA_PRELUDE: &str = r"
local JOBS, DUE, READY, LEASES, OWNERS = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function parse(job)
  local sep = string.find(job, ':', 1, true)
  return string.sub(job, 1, sep - 1), string.sub(job, sep + 1)
end
local function place(id, job, now)
  local prio, run_at = parse(job)
  local at = tonumber(run_at)
  if at <= now then
    redis.call('ZREM', DUE, id)
    redis.call('ZADD', READY, tonumber(prio) * 4398046511104 + math.min(math.max(at, 0), 4398046511103), id)
  else
    redis.call('ZREM', READY, id)
    redis.call('ZADD', DUE, at, id)
  end
end
";

/// ARGV: id, priority, run_at. Upsert: run_at only moves earlier, priority is replaced; a leased
/// job keeps its lease.
const ENQUEUE: &str = r"
local id, run_at = ARGV[1], ARGV[3]
local current = redis.call('HGET', JOBS, id)
if current then
  local _, current_run_at = parse(current)
  if tonumber(current_run_at) < tonumber(run_at) then run_at = current_run_at end
end
local job = ARGV[2] .. ':' .. run_at
redis.call('HSET', JOBS, id, job)
if not redis.call('ZSCORE', LEASES, id) then place(id, job, now_ms()) end
return 0
";

/// ARGV: owner, lease ms, batch. Returns {id, priority, run_at} or nil.
const CLAIM: &str = r"
local now = now_ms()
local batch = tonumber(ARGV[3])
for _, id in ipairs(redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, batch)) do
  redis.call('ZREM', LEASES, id)
  redis.call('HDEL', OWNERS, id)
  local job = redis.call('HGET', JOBS, id)
  if job then place(id, job, now) end
end
for _, id in ipairs(redis.call('ZRANGEBYSCORE', DUE, '-inf', now, 'LIMIT', 0, batch)) do
  local job = redis.call('HGET', JOBS, id)
  if job then place(id, job, now) else redis.call('ZREM', DUE, id) end
end
while true do
  local top = redis.call('ZPOPMIN', READY)
  if #top == 0 then return false end
  local job = redis.call('HGET', JOBS, top[1])
  if job then
    redis.call('ZADD', LEASES, now + tonumber(ARGV[2]), top[1])
    redis.call('HSET', OWNERS, top[1], ARGV[1])
    local prio, run_at = parse(job)
    return {top[1], prio, run_at}
  end
end
";

/// ARGV: id.
const COMPLETE: &str = r"
local id = ARGV[1]
redis.call('HDEL', JOBS, id)
redis.call('HDEL', OWNERS, id)
redis.call('ZREM', DUE, id)
redis.call('ZREM', READY, id)
redis.call('ZREM', LEASES, id)
return 0
";

/// ARGV: id, run_at. Sets run_at (earlier or later) and clears the lease; a job no longer held is
/// left alone (like the SQL queue's `UPDATE`).
const RESCHEDULE: &str = r"
local id = ARGV[1]
local current = redis.call('HGET', JOBS, id)
if not current then return 0 end
local prio = parse(current)
local job = prio .. ':' .. ARGV[2]
redis.call('HSET', JOBS, id, job)
redis.call('ZREM', LEASES, id)
redis.call('HDEL', OWNERS, id)
place(id, job, now_ms())
return 1
";

/// [`JobQueue`] in Redis.
#[derive(Clone)]
pub struct RedisQueue {
    conn: RedisConnection,
    keys: [String; 5],
    scripts: Arc<Scripts>,
    notify: Arc<Notify>,
}

struct Scripts {
    enqueue: Script,
    claim: Script,
    complete: Script,
    reschedule: Script,
}

impl fmt::Debug for RedisQueue {
    // The connection's own Debug shows its connection info; keep credentials out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisQueue").field("jobs_key", &self.keys[0]).finish_non_exhaustive()
    }
}

impl RedisQueue {
    /// Connects to a single node at `url` (`redis://` or `rediss://`); the queue's keys are
    /// `{wg:<prefix>}:…` (`prefix`: letters, digits, `_`, `-`, `.`). For a cluster, use
    /// [`RedisConnection::connect`] and [`from_connection`](Self::from_connection).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, QueueError> {
        valid_prefix(prefix).map_err(QueueError)?;
        let conn = RedisConnection::connect(url, false).await.map_err(|e| QueueError(e.to_string()))?;
        Self::from_connection(conn, prefix)
    }

    /// Uses an existing connection (for instance shared with [`crate::shared::RedisState`]); on a
    /// cluster every key of the queue hashes to one slot, so each script runs on one node.
    pub fn from_connection(conn: RedisConnection, prefix: &str) -> Result<Self, QueueError> {
        valid_prefix(prefix).map_err(QueueError)?;
        let keys = ["jobs", "due", "ready", "leases", "owners"].map(|name| format!("{{wg:{prefix}}}:{name}"));
        let script = |body: &str| Script::new(&format!("{LUA_PRELUDE}{body}"));
        let scripts =
            Scripts { enqueue: script(ENQUEUE), claim: script(CLAIM), complete: script(COMPLETE), reschedule: script(RESCHEDULE) };
        Ok(Self { conn, keys, scripts: Arc::new(scripts), notify: Arc::new(Notify::new()) })
    }

    /// Runs `script` over this queue's keys with `args`.
    async fn run<T: ::redis::FromRedisValue>(&self, op: &'static str, script: &Script, args: &[&str]) -> Result<T, QueueError> {
        let mut invocation = script.prepare_invoke();
        for key in &self.keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(*arg);
        }
        call(op, invocation.invoke_async(&mut self.conn.clone())).await
    }
}

async fn call<T>(op: &'static str, fut: impl Future<Output = Result<T, RedisError>>) -> Result<T, QueueError> {
    timed(op, fut).await.map_err(|e| QueueError(e.to_string()))
}

#[async_trait]
impl JobQueue for RedisQueue {
    async fn enqueue(&self, job: Job) -> Result<(), QueueError> {
        let (id, priority, run_at) = (job.message_id.to_string(), job.priority.clamp(1, 10).to_string(), job.run_at.to_string());
        let _: i64 = self.run("enqueue", &self.scripts.enqueue, &[&id, &priority, &run_at]).await?;
        self.notify.notify_one();
        Ok(())
    }

    async fn claim(&self, worker: &str, lease: Duration) -> Result<Option<Job>, QueueError> {
        let (lease, batch) = (lease.as_millis().to_string(), BATCH.to_string());
        let claimed: Option<(String, i64, i64)> = self.run("claim", &self.scripts.claim, &[worker, &lease, &batch]).await?;
        claimed
            .map(|(id, priority, run_at)| {
                let message_id = id.parse().map_err(|_| QueueError(format!("bad message id {id:?} in queue")))?;
                Ok(Job { message_id, priority, run_at })
            })
            .transpose()
    }

    async fn complete(&self, message_id: MessageId) -> Result<(), QueueError> {
        let _: i64 = self.run("complete", &self.scripts.complete, &[&message_id.to_string()]).await?;
        Ok(())
    }

    async fn reschedule(&self, message_id: MessageId, run_at: UnixMillis) -> Result<(), QueueError> {
        let _: i64 = self.run("reschedule", &self.scripts.reschedule, &[&message_id.to_string(), &run_at.to_string()]).await?;
        self.notify.notify_one();
        Ok(())
    }

    async fn wait_for_work(&self, timeout: Duration) {
        let _ = tokio::time::timeout(timeout.min(IDLE_POLL), self.notify.notified()).await;
    }

    async fn depth(&self) -> Result<i64, QueueError> {
        call("depth", ::redis::cmd("HLEN").arg(&self.keys[0]).query_async(&mut self.conn.clone())).await
    }
}
