//! Shared state in Redis, for several instances. Each operation touches one key, so it is
//! cluster-safe without a common hash tag (which would put every key of a deployment in one slot):
//! keys are `wg:<prefix>:idem:<key>` (a hash: `state`, `fp`, `status`, `body`),
//! `wg:<prefix>:rate:<key>` (a sorted set of arrival times, µs) and `wg:<prefix>:pace:<key>`
//! (a theoretical arrival time, µs). The
//! scripts read the clock with Redis `TIME`, so every instance uses the same clock.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::Script;
use async_trait::async_trait;

use super::connection::{RedisConnection, timed, valid_prefix};
use super::gcra::micros;
use super::grouped::{Groups, Taken};
use super::state::{IdempotencyState, RateDecision, RateLimit, Reservation, SharedError, SharedState};
use super::window::Window;

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

/// Sliding-window log, the same arithmetic as `Window::take`: a sorted set of arrival times (µs)
/// with unique members. ARGV: period (µs), limit, burst window (µs), burst, cost, member prefix.
/// Returns {granted, remaining, retry_after_us, reset_after_us}.
const WINDOW: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local period, limit = tonumber(ARGV[1]), tonumber(ARGV[2])
local burst_us, burst = tonumber(ARGV[3]), tonumber(ARGV[4])
local cost = tonumber(ARGV[5])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - period)
local count = redis.call('ZCARD', KEYS[1])
local recent = redis.call('ZCOUNT', KEYS[1], string.format('(%d', now - burst_us), '+inf')
local granted = math.max(0, math.min(cost, limit - count, burst - recent))
local i = 0
while i < granted do
  local args = {}
  for j = i + 1, math.min(granted, i + 256) do args[#args + 1] = now; args[#args + 1] = ARGV[6] .. ':' .. j end
  redis.call('ZADD', KEYS[1], unpack(args))
  i = i + 256
end
count, recent = count + granted, recent + granted
local retry = 0
if count >= limit then
  local e = redis.call('ZRANGE', KEYS[1], count - limit, count - limit, 'WITHSCORES')
  retry = math.max(retry, tonumber(e[2]) + period - now)
end
if recent >= burst then
  local e = redis.call('ZRANGE', KEYS[1], count - burst, count - burst, 'WITHSCORES')
  retry = math.max(retry, tonumber(e[2]) + burst_us - now)
end
local reset = 0
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if oldest[2] then
  reset = tonumber(oldest[2]) + period - now
  redis.call('PEXPIRE', KEYS[1], math.ceil(reset / 1000) + 1)
end
return {granted, math.max(0, math.min(limit - count, burst - recent)), retry, reset}
";

/// Slot reservations, the same arithmetic as `gcra::reserve`. ARGV: spacing, count, ahead (µs).
/// Returns {granted, start_in_us}.
const RESERVE: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local emission, count, ahead = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now then tat = now end
local room = math.floor(math.max(now + ahead - tat, 0) / emission)
local granted = math.min(room, count)
if granted <= 0 then return {0, tat + emission - now - ahead} end
local new_tat = tat + granted * emission
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1000)
return {granted, tat - now}
";

/// Holds a key's slots back, the same arithmetic as `gcra::hold`. ARGV: hold (µs).
const HOLD: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hold = math.max(tonumber(ARGV[1]), 0)
local tat = tonumber(redis.call('GET', KEYS[1]) or now) or now
if tat < now + hold then
  redis.call('SET', KEYS[1], string.format('%d', now + hold), 'PX', math.ceil(hold / 1000) + 1000)
end
return 0
";

/// [`SharedState`] in Redis.
#[derive(Clone)]
pub struct RedisState {
    conn: RedisConnection,
    prefix: String,
    /// Shared: a take clones the state onto the task that calls Redis for its group.
    scripts: Arc<Scripts>,
    groups: Groups,
}

#[derive(Clone)]
struct Scripts {
    begin: Script,
    abandon: Script,
    window: Script,
    reserve: Script,
    hold: Script,
}

impl fmt::Debug for RedisState {
    // The connection's own Debug shows its connection info; keep credentials out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisState").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisState {
    /// Uses `conn` (shared with the queue), with keys namespaced by `prefix` (letters, digits,
    /// `_`, `-`, `.`).
    pub fn new(conn: RedisConnection, prefix: &str) -> Result<Self, SharedError> {
        valid_prefix(prefix).map_err(SharedError::Config)?;
        let scripts = Scripts {
            begin: Script::new(IDEMPOTENCY_BEGIN),
            abandon: Script::new(IDEMPOTENCY_ABANDON),
            window: Script::new(WINDOW),
            reserve: Script::new(RESERVE),
            hold: Script::new(HOLD),
        };
        Ok(Self { conn, prefix: prefix.to_owned(), scripts: Arc::new(scripts), groups: Groups::default() })
    }

    fn key(&self, kind: &str, key: &str) -> String {
        format!("wg:{}:{kind}:{key}", self.prefix)
    }

    /// One call of the window script for `cost` requests.
    async fn take_window(&self, window: Window, redis_key: &str, cost: u32) -> Result<Taken, SharedError> {
        let mut invocation = self.scripts.window.key(redis_key);
        // Members must be unique per arrival, across instances: a random prefix per call.
        let member = format!("{:016x}", fastrand::u64(..));
        invocation.arg(window.period_us).arg(window.limit).arg(window.burst_us).arg(window.burst).arg(cost).arg(member);
        let (granted, remaining, retry_us, reset_us): (i64, i64, i64, i64) =
            timed("rate_limit", invocation.invoke_async(&mut self.conn.clone())).await?;
        Ok(Taken {
            granted: u32::try_from(granted).unwrap_or(0).min(cost),
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            retry_us,
            reset_us,
        })
    }
}

#[async_trait]
impl SharedState for RedisState {
    async fn idempotency_begin(&self, key: &str, fingerprint: &str, ttl: Duration) -> Result<IdempotencyState, SharedError> {
        let mut invocation = self.scripts.begin.key(self.key("idem", key));
        invocation.arg(fingerprint).arg(millis(ttl));
        let reply: Vec<Vec<u8>> = timed("idempotency_begin", invocation.invoke_async(&mut self.conn.clone())).await?;
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
        Ok(timed("idempotency_complete", pipe.exec_async(&mut self.conn.clone())).await?)
    }

    async fn idempotency_abandon(&self, key: &str) -> Result<(), SharedError> {
        let invocation = self.scripts.abandon.key(self.key("idem", key));
        timed("idempotency_abandon", invocation.invoke_async::<i64>(&mut self.conn.clone())).await?;
        Ok(())
    }

    async fn rate_limit(&self, key: &str, limit: RateLimit, cost: u32) -> Result<RateDecision, SharedError> {
        let window = Window::new(limit);
        let redis_key = self.key("rate", key);
        // One script call for every take that queues behind one in flight (see `grouped`).
        let group = format!("{}/{}/{}/{redis_key}", window.period_us, window.limit, window.burst);
        let state = self.clone();
        let call = move |total| {
            let (state, redis_key) = (state.clone(), redis_key.clone());
            async move { state.take_window(window, &redis_key, total).await }
        };
        self.groups.take(group, cost, call).await
    }

    async fn reserve(&self, key: &str, spacing: Duration, count: u32, ahead: Duration) -> Result<Reservation, SharedError> {
        let mut invocation = self.scripts.reserve.key(self.key("pace", key));
        let us = |d: Duration| i64::try_from(d.as_micros()).unwrap_or(i64::MAX / 4);
        invocation.arg(us(spacing).max(1)).arg(count).arg(us(ahead));
        let (granted, start_in): (i64, i64) = timed("reserve", invocation.invoke_async(&mut self.conn.clone())).await?;
        Ok(Reservation { granted: u32::try_from(granted).unwrap_or(0), start_in: micros(start_in), spacing })
    }

    async fn hold(&self, key: &str, hold: Duration) -> Result<(), SharedError> {
        let mut invocation = self.scripts.hold.key(self.key("pace", key));
        invocation.arg(i64::try_from(hold.as_micros()).unwrap_or(i64::MAX / 4));
        timed("hold", invocation.invoke_async::<i64>(&mut self.conn.clone())).await?;
        Ok(())
    }

    async fn ping(&self) -> Result<(), SharedError> {
        let pong: String = timed("ping", ::redis::cmd("PING").query_async(&mut self.conn.clone())).await?;
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
