//! Shared state in Redis, for several instances. Each operation touches one key, so it is
//! cluster-safe without a common hash tag (which would put every key of a deployment in one slot):
//! keys are `wg:<prefix>:once:<key>`, `wg:<prefix>:idem:<key>` (a hash: `state`, `fp`, `status`,
//! `body`) and `wg:<prefix>:rate:<key>` (the GCRA theoretical arrival time, µs). The rate script
//! reads the clock with Redis `TIME`, so every instance uses the same clock.
//!
//! Also home of the Redis plumbing the queue shares: one connection type (a single node or a
//! cluster), one connection setup and one timeout rule.

use std::fmt;
use std::future::Future;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use ::redis::cluster::ClusterClient;
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Client, Cmd, Pipeline, RedisError, RedisFuture, Script, Value};
use async_trait::async_trait;

use super::{Gcra, IdempotencyState, RateDecision, RateLimit, SharedError, SharedState, micros};

/// The longest one call to Redis may take, including waiting for a reconnection in progress.
const CALL_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest the first connection may take at start.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Answers the stored record, or takes the key (in flight) if there is none.
const IDEMPOTENCY_BEGIN: &str = r"
local v = redis.call('HMGET', KEYS[1], 'state', 'fp', 'status', 'body')
if not v[1] then
  redis.call('HSET', KEYS[1], 'state', 'inflight', 'fp', ARGV[1])
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return {'new'}
end
if v[1] == 'inflight' then return {'inflight'} end
return {'done', v[2] or '', v[3] or '0', v[4] or ''}
";

/// Deletes the record only while it is in flight.
const IDEMPOTENCY_ABANDON: &str = r"
if redis.call('HGET', KEYS[1], 'state') == 'inflight' then redis.call('DEL', KEYS[1]) end
return 0
";

/// GCRA, the same arithmetic as `Gcra::decide`. ARGV: emission interval and burst offset (µs).
/// Returns {allowed, remaining, retry_after_us, reset_after_us}.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission = tonumber(ARGV[1])
local burst_offset = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local new_tat = tat + emission
local diff = now - (new_tat - burst_offset)
if diff < 0 then return {0, 0, -diff, tat - now} end
local reset_after = new_tat - now
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil(reset_after / 1000))
return {1, math.floor(diff / emission), 0, reset_after}
";

/// [`SharedState`] in Redis.
#[derive(Clone)]
pub struct RedisState {
    conn: RedisConnection,
    prefix: String,
    scripts: Scripts,
}

#[derive(Clone)]
struct Scripts {
    begin: Script,
    abandon: Script,
    gcra: Script,
}

impl fmt::Debug for RedisState {
    // The connection's own Debug shows its connection info; keep credentials out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisState").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisState {
    /// Connects to a single node at `url` (`redis://` or `rediss://`); keys are namespaced by
    /// `prefix` (letters, digits, `_`, `-`, `.`). For a cluster, use [`RedisConnection::connect`]
    /// and [`from_connection`](Self::from_connection).
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, SharedError> {
        valid_prefix(prefix).map_err(SharedError::Config)?;
        let conn = RedisConnection::connect(url, false).await.map_err(|e| SharedError::Unavailable(e.to_string()))?;
        Self::from_connection(conn, prefix)
    }

    /// Uses an existing connection (for instance the queue's), with keys namespaced by `prefix`.
    pub fn from_connection(conn: RedisConnection, prefix: &str) -> Result<Self, SharedError> {
        valid_prefix(prefix).map_err(SharedError::Config)?;
        let scripts = Scripts { begin: Script::new(IDEMPOTENCY_BEGIN), abandon: Script::new(IDEMPOTENCY_ABANDON), gcra: Script::new(GCRA) };
        Ok(Self { conn, prefix: prefix.to_owned(), scripts })
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("wg:{}:{kind}:{key}", self.prefix)
    }

    async fn call<T>(&self, op: &'static str, fut: impl Future<Output = Result<T, RedisError>>) -> Result<T, SharedError> {
        timed(op, fut).await.map_err(|e| SharedError::Unavailable(e.to_string()))
    }
}

#[async_trait]
impl SharedState for RedisState {
    async fn remember_once(&self, key: &str, ttl: Duration) -> Result<bool, SharedError> {
        let mut cmd = ::redis::cmd("SET");
        cmd.arg(self.key("once", key)).arg(1).arg("NX").arg("PX").arg(millis(ttl));
        let set: Option<String> = self.call("remember_once", cmd.query_async(&mut self.conn.clone())).await?;
        Ok(set.is_some())
    }

    async fn seen(&self, key: &str) -> Result<bool, SharedError> {
        let mut cmd = ::redis::cmd("EXISTS");
        cmd.arg(self.key("once", key));
        let n: i64 = self.call("seen", cmd.query_async(&mut self.conn.clone())).await?;
        Ok(n > 0)
    }

    async fn idempotency_begin(&self, key: &str, fingerprint: &str, ttl: Duration) -> Result<IdempotencyState, SharedError> {
        let mut invocation = self.scripts.begin.key(self.key("idem", key));
        invocation.arg(fingerprint).arg(millis(ttl));
        let reply: Vec<Vec<u8>> = self.call("idempotency_begin", invocation.invoke_async(&mut self.conn.clone())).await?;
        parse_idempotency(reply)
    }

    async fn idempotency_complete(&self, key: &str, fingerprint: &str, status: u16, body: &[u8], ttl: Duration) -> Result<(), SharedError> {
        let key = self.key("idem", key);
        let mut pipe = ::redis::pipe();
        pipe.atomic()
            .cmd("HSET")
            .arg(&key)
            .arg("state")
            .arg("done")
            .arg("fp")
            .arg(fingerprint)
            .arg("status")
            .arg(status)
            .arg("body")
            .arg(body);
        pipe.cmd("PEXPIRE").arg(&key).arg(millis(ttl));
        self.call("idempotency_complete", pipe.exec_async(&mut self.conn.clone())).await
    }

    async fn idempotency_abandon(&self, key: &str) -> Result<(), SharedError> {
        let invocation = self.scripts.abandon.key(self.key("idem", key));
        self.call("idempotency_abandon", invocation.invoke_async::<i64>(&mut self.conn.clone())).await.map(drop)
    }

    async fn rate_limit(&self, key: &str, limit: RateLimit) -> Result<RateDecision, SharedError> {
        let gcra = Gcra::new(limit);
        let mut invocation = self.scripts.gcra.key(self.key("rate", key));
        invocation.arg(gcra.emission_us).arg(gcra.burst_offset_us);
        let (allowed, remaining, retry_after, reset_after): (i64, i64, i64, i64) =
            self.call("rate_limit", invocation.invoke_async(&mut self.conn.clone())).await?;
        Ok(RateDecision {
            allowed: allowed == 1,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            retry_after: micros(retry_after),
            reset_after: micros(reset_after),
        })
    }

    async fn ping(&self) -> Result<(), SharedError> {
        let pong: String = self.call("ping", ::redis::cmd("PING").query_async(&mut self.conn.clone())).await?;
        if pong == "PONG" { Ok(()) } else { Err(SharedError::Corrupt(format!("PING answered {pong:?}"))) }
    }
}

fn parse_idempotency(reply: Vec<Vec<u8>>) -> Result<IdempotencyState, SharedError> {
    let mut parts = reply.into_iter();
    match parts.next().as_deref() {
        Some(b"new") => Ok(IdempotencyState::New),
        Some(b"inflight") => Ok(IdempotencyState::InFlight),
        Some(b"done") => {
            let (fp, status, body) = (parts.next(), parts.next(), parts.next());
            let corrupt = || SharedError::Corrupt("idempotency record".to_owned());
            let fingerprint = String::from_utf8(fp.ok_or_else(corrupt)?).map_err(|_| corrupt())?;
            let status = std::str::from_utf8(&status.ok_or_else(corrupt)?).ok().and_then(|s| s.parse().ok()).ok_or_else(corrupt)?;
            Ok(IdempotencyState::Completed { fingerprint, status, body: body.ok_or_else(corrupt)? })
        }
        _ => Err(SharedError::Corrupt("idempotency script reply".to_owned())),
    }
}

/// A TTL in whole milliseconds, at least 1 (Redis rejects a zero expiry).
fn millis(ttl: Duration) -> u64 {
    u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Checks a key prefix: letters, digits, `_`, `-` and `.` only, so it can neither break a hash
/// tag (`{`, `}`) nor act as a pattern in `SCAN MATCH`.
pub(crate) fn valid_prefix(prefix: &str) -> Result<(), String> {
    if prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')) {
        Ok(())
    } else {
        Err(format!("Redis key prefix {prefix:?} may only hold letters, digits, '_', '-' and '.'"))
    }
}

/// A connection to Redis, to a single node or to a cluster. Cheap to clone: clones share the
/// underlying multiplexed connection(s). Commands and scripts go through
/// [`ConnectionLike`]; on a cluster each is routed by its first key.
#[derive(Clone)]
pub enum RedisConnection {
    /// One node (standalone, or a primary behind a proxy).
    Single(ConnectionManager),
    /// A Redis Cluster: nodes discovered from the one given, commands routed by key slot.
    Cluster(ClusterConnection),
}

impl fmt::Debug for RedisConnection {
    // The inner connections' Debug may show connection info; keep credentials out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Single(_) => "RedisConnection::Single",
            Self::Cluster(_) => "RedisConnection::Cluster",
        })
    }
}

impl RedisConnection {
    /// Connects to `url` (`redis://` or `rediss://`): a single node, or with `cluster` one node of
    /// a Redis Cluster from which the others are discovered. Same timeouts either way.
    pub async fn connect(url: &str, cluster: bool) -> Result<Self, RedisCallError> {
        if cluster { connect_cluster(url).await.map(Self::Cluster) } else { connect_manager(url).await.map(Self::Single) }
    }
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(conn) => conn.req_packed_command(cmd),
            Self::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(&'a mut self, pipeline: &'a Pipeline, offset: usize, count: usize) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(conn) => conn.req_packed_commands(pipeline, offset, count),
            Self::Cluster(conn) => conn.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(conn) => conn.get_db(),
            Self::Cluster(conn) => conn.get_db(),
        }
    }
}

/// Per-attempt bounds shared by the single-node and cluster connections.
const NODE_CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
const NODE_RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Opens a [`ClusterConnection`] from one node's URL: the other nodes are discovered from it,
/// each connection attempt and response bounded like [`connect_manager`]'s.
async fn connect_cluster(url: &str) -> Result<ClusterConnection, RedisCallError> {
    let client = ClusterClient::builder(vec![url])
        .connection_timeout(NODE_CONNECTION_TIMEOUT)
        .response_timeout(NODE_RESPONSE_TIMEOUT)
        .build()
        .map_err(RedisCallError::Redis)?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_connection()).await {
        Ok(result) => result.map_err(RedisCallError::Redis),
        Err(_) => Err(RedisCallError::Timeout { op: "connect", after: CONNECT_TIMEOUT }),
    }
}

/// Opens a [`ConnectionManager`]: multiplexed, reconnecting by itself with backoff after Redis
/// restarts, each command bounded by a response timeout.
pub(crate) async fn connect_manager(url: &str) -> Result<ConnectionManager, RedisCallError> {
    let client = Client::open(url).map_err(RedisCallError::Redis)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(NODE_CONNECTION_TIMEOUT))
        .set_response_timeout(Some(NODE_RESPONSE_TIMEOUT))
        .set_max_delay(Duration::from_secs(1))
        // Few retries per reconnection, so a failing first connect reports its cause quickly;
        // after a failed reconnection, the next command starts another.
        .set_number_of_retries(2);
    match tokio::time::timeout(CONNECT_TIMEOUT, ConnectionManager::new_with_config(client, config)).await {
        Ok(result) => result.map_err(RedisCallError::Redis),
        Err(_) => Err(RedisCallError::Timeout { op: "connect", after: CONNECT_TIMEOUT }),
    }
}

/// Runs one Redis call under [`CALL_TIMEOUT`]: the connection's own response timeout does not
/// cover waiting for a reconnection in progress.
pub(crate) async fn timed<T>(op: &'static str, fut: impl Future<Output = Result<T, RedisError>>) -> Result<T, RedisCallError> {
    match tokio::time::timeout(CALL_TIMEOUT, fut).await {
        Ok(result) => result.map_err(RedisCallError::Redis),
        Err(_) => Err(RedisCallError::Timeout { op, after: CALL_TIMEOUT }),
    }
}

/// A failed Redis call (or connection).
#[derive(Debug, thiserror::Error)]
pub enum RedisCallError {
    /// Redis answered with an error, or the connection failed.
    #[error("redis: {0}")]
    Redis(RedisError),
    /// No answer in time.
    #[error("redis: {op} timed out after {after:?}")]
    Timeout {
        /// The operation that timed out.
        op: &'static str,
        /// The bound it exceeded.
        after: Duration,
    },
}
