//! The Redis queue's Lua scripts. Every key of one queue shares the hash tag `{wg:<prefix>}`, so
//! each script touches a single cluster slot:
//!
//! - `…:jobs`   hash, message id → `"<priority>:<run_at>"`: every job held;
//! - `…:due`    zset, id by `run_at`: jobs waiting for their time;
//! - `…:ready`  zset, id by `priority * 2^42 + run_at`: due jobs, most urgent first;
//! - `…:leases` zset, id by lease expiry: claimed jobs.
//!
//! A job is in exactly one of `due`, `ready`, `leases`. "Now" is Redis `TIME`: one clock for every
//! instance's leases. Each script works on whole lists with variadic commands, so its cost in
//! commands does not grow with the number of jobs it moves.

/// Helpers shared by the scripts. `run_at` is kept below 2^42 ms (year 2109) in the ready score,
/// so `priority * 2^42 + run_at` is an exact double for priorities 1…10.
const PRELUDE: &str = r"
local JOBS, DUE, READY, LEASES = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local SCALE = 4398046511104
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function split(job)
  local sep = string.find(job, ':', 1, true)
  return tonumber(string.sub(job, 1, sep - 1)), tonumber(string.sub(job, sep + 1))
end
local function ready_score(prio, at)
  return prio * SCALE + math.min(math.max(at, 0), SCALE - 1)
end
-- Puts jobs in READY (due) or DUE (not yet), taking each out of the other; returns how many are ready.
local function place(ids, prios, runs, now)
  local ready, due, not_ready, not_due = {}, {}, {}, {}
  for k, id in ipairs(ids) do
    if runs[k] <= now then
      table.insert(ready, ready_score(prios[k], runs[k])); table.insert(ready, id); table.insert(not_due, id)
    else
      table.insert(due, runs[k]); table.insert(due, id); table.insert(not_ready, id)
    end
  end
  if #ready > 0 then redis.call('ZADD', READY, unpack(ready)); redis.call('ZREM', DUE, unpack(not_due)) end
  if #due > 0 then redis.call('ZADD', DUE, unpack(due)); redis.call('ZREM', READY, unpack(not_ready)) end
  return #ready / 2
end
";

/// ARGV: wake channel; n, then n × (id, priority, run_at) to enqueue (a job's run_at only moves
/// earlier, a leased job keeps its lease); r, then r × (id, run_at) to reschedule (run_at set,
/// lease released; a job no longer held is left alone); c, then c ids to complete. Publishes on
/// the channel when jobs became ready. Returns how many did.
const APPLY: &str = r"
local now = now_ms()
local i = 2
local n = tonumber(ARGV[i]); i = i + 1
local enq, enq_prio, enq_run = {}, {}, {}
for k = 1, n do enq[k] = ARGV[i]; enq_prio[k] = tonumber(ARGV[i + 1]); enq_run[k] = tonumber(ARGV[i + 2]); i = i + 3 end
local r = tonumber(ARGV[i]); i = i + 1
local res, res_run = {}, {}
for k = 1, r do res[k] = ARGV[i]; res_run[k] = tonumber(ARGV[i + 1]); i = i + 2 end
local c = tonumber(ARGV[i]); i = i + 1
local done = {}
for k = 1, c do done[k] = ARGV[i]; i = i + 1 end
local woke = 0
if n > 0 then
  local current = redis.call('HMGET', JOBS, unpack(enq))
  local leased = redis.call('ZMSCORE', LEASES, unpack(enq))
  local hset, ids, prios, runs = {}, {}, {}, {}
  for k = 1, n do
    local at = enq_run[k]
    if current[k] then
      local _, held = split(current[k])
      if held < at then at = held end
    end
    table.insert(hset, enq[k]); table.insert(hset, enq_prio[k] .. ':' .. at)
    if not leased[k] then table.insert(ids, enq[k]); table.insert(prios, enq_prio[k]); table.insert(runs, at) end
  end
  redis.call('HSET', JOBS, unpack(hset))
  if #ids > 0 then woke = woke + place(ids, prios, runs, now) end
end
if r > 0 then
  local current = redis.call('HMGET', JOBS, unpack(res))
  local hset, ids, prios, runs = {}, {}, {}, {}
  for k = 1, r do
    if current[k] then
      local prio = split(current[k])
      table.insert(hset, res[k]); table.insert(hset, prio .. ':' .. res_run[k])
      table.insert(ids, res[k]); table.insert(prios, prio); table.insert(runs, res_run[k])
    end
  end
  if #ids > 0 then
    redis.call('HSET', JOBS, unpack(hset))
    redis.call('ZREM', LEASES, unpack(ids))
    woke = woke + place(ids, prios, runs, now)
  end
end
if c > 0 then
  redis.call('HDEL', JOBS, unpack(done))
  redis.call('ZREM', DUE, unpack(done))
  redis.call('ZREM', READY, unpack(done))
  redis.call('ZREM', LEASES, unpack(done))
end
if woke > 0 then redis.call('PUBLISH', ARGV[1], woke) end
return woke
";

/// ARGV: lease ms, limit, batch. First returns up to `batch` expired leases and `batch` newly due
/// jobs to `ready`, then leases up to `limit` of the most urgent ready jobs. Returns {ids, ms until
/// the next job is due or a lease ends (-1: none)}.
const CLAIM: &str = r"
local now = now_ms()
local lease, limit, batch = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', LEASES, '-inf', now, 'LIMIT', 0, batch)
if #expired > 0 then
  redis.call('ZREM', LEASES, unpack(expired))
  local jobs = redis.call('HMGET', JOBS, unpack(expired))
  local ids, prios, runs = {}, {}, {}
  for k, id in ipairs(expired) do
    if jobs[k] then
      local prio, at = split(jobs[k])
      table.insert(ids, id); table.insert(prios, prio); table.insert(runs, at)
    end
  end
  if #ids > 0 then place(ids, prios, runs, now) end
end
local due = redis.call('ZRANGEBYSCORE', DUE, '-inf', now, 'LIMIT', 0, batch)
if #due > 0 then
  local jobs = redis.call('HMGET', JOBS, unpack(due))
  local ready = {}
  for k, id in ipairs(due) do
    if jobs[k] then
      local prio, at = split(jobs[k])
      table.insert(ready, ready_score(prio, at)); table.insert(ready, id)
    end
  end
  redis.call('ZREM', DUE, unpack(due))
  if #ready > 0 then redis.call('ZADD', READY, unpack(ready)) end
end
local ids = {}
if limit > 0 then
  local top = redis.call('ZPOPMIN', READY, limit)
  local leases = {}
  for k = 1, #top, 2 do
    table.insert(ids, top[k]); table.insert(leases, now + lease); table.insert(leases, top[k])
  end
  if #leases > 0 then redis.call('ZADD', LEASES, unpack(leases)) end
end
local hint = -1
for _, key in ipairs({DUE, LEASES}) do
  local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if first[2] then
    local wait = math.max(tonumber(first[2]) - now, 0)
    if hint < 0 or wait < hint then hint = wait end
  end
end
return {ids, hint}
";

/// The scripts with their helpers.
pub(super) fn apply() -> String {
    format!("{PRELUDE}{APPLY}")
}

/// See [`CLAIM`].
pub(super) fn claim() -> String {
    format!("{PRELUDE}{CLAIM}")
}
