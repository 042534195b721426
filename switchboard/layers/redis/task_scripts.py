"""The Lua scripts of the Redis task store (:mod:`switchboard.layers.redis.tasks`).

Every script gets one key, the store's key base ``<prefix>:t:{tasks}`` (never itself a key: it
routes the call to the one Cluster slot every task key shares) and builds the others from it:

* ``<base>:r:<id>``: a hash per task. ``d`` is the record's JSON as Python last wrote it; Lua
  never decodes it (cjson rounds big numbers). What the scripts change lives beside it, each
  field overriding ``d`` when present: ``s`` status, ``sa``/``la``/``fa`` started, last attempted
  and finished times (JSON numbers, ``fa`` may be ``null``), ``rf`` retry_floor, ``pg`` progress
  (JSON), ``wa``/``ea`` worker ids and errors appended since the last write, each a JSON list's
  items with a leading comma (``,"w1","w2"``). Bookkeeping fields: ``q`` queue, ``sc``/``m`` the
  task's score and member in its queue's sorted set, ``w`` the lease holder (JSON-encoded worker
  id), ``ne`` the number of errors.
* ``<base>:q:<queue>``: queued tasks, score ``-priority``, member ``<enqueued_at in µs, 17
  digits><enqueue sequence, 16 digits>|<id>``: equal scores sort by member, so ZPOPMIN takes the
  highest priority, then the oldest, then the first enqueued.
* ``<base>:s:<queue>``: scheduled ids by due time (ms); ``<base>:due``: queues by their earliest
  due time, so a claim finds what is due without looking at every queue.
* ``<base>:run``: running ids by lease deadline (ms). ``<base>:f:<queue>``: failed ids by
  finished time (ms); ``<base>:x:<queue>``: the same ids by the time their records expire, so
  expired ones leave the failed index exactly (pruned by ``finish``, ``counts`` and ``list``).
* ``<base>:queues``: every queue name seen; ``<base>:seq``: the enqueue sequence;
  ``<base>:w:<queue>``: a short list of wake tokens that idle workers BLPOP.

Times come from the server (``TIME``), so the clocks of the machines running workers don't
matter for leases and due times.
"""

from __future__ import annotations

__all__ = [
    "CLAIM",
    "COUNTS",
    "ENQUEUE",
    "EXTEND",
    "PROGRESS",
    "REQUEUE",
    "SETTLE",
    "WAKE_TOKENS",
]

# Wake tokens a queue's wake list keeps: enough for a few idle workers, never a backlog.
WAKE_TOKENS = 4

_COMMON = f"""
local base = KEYS[1]
local function clock()
  local t = redis.call('TIME')
  local ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  return ms, t[1] .. '.' .. string.format('%06d', tonumber(t[2]))
end
local function wake(queue)
  local key = base .. ':w:' .. queue
  redis.call('LPUSH', key, '1')
  redis.call('LTRIM', key, 0, {WAKE_TOKENS - 1})
end
-- Scheduled: true when this made the queue's earliest due time earlier.
local function schedule(queue, id, due)
  redis.call('ZADD', base .. ':s:' .. queue, due, id)
  local current = redis.call('ZSCORE', base .. ':due', queue)
  if current and tonumber(current) <= tonumber(due) then return false end
  redis.call('ZADD', base .. ':due', due, queue)
  return true
end
-- Failed ids whose records expired leave the failed index.
local function prune_failed(queue, now, limit)
  local expiries = base .. ':x:' .. queue
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', expiries, '-inf', now, 'LIMIT', 0, limit)) do
    redis.call('ZREM', base .. ':f:' .. queue, id)
    redis.call('ZREM', expiries, id)
  end
end
"""

# ARGV: id, queue, record JSON, score, member prefix, due ms or '', error count, started_at
# JSON or ''.
ENQUEUE = (
    _COMMON
    + """
local id, queue = ARGV[1], ARGV[2]
local now = clock()
local seq = redis.call('INCR', base .. ':seq')
local member = ARGV[5] .. string.format('%016d', seq) .. '|' .. id
local key = base .. ':r:' .. id
redis.call('DEL', key)
redis.call('HSET', key, 'd', ARGV[3], 's', 'READY', 'q', queue, 'sc', ARGV[4], 'm', member,
  'ne', ARGV[7])
if ARGV[8] ~= '' then redis.call('HSET', key, 'sa', ARGV[8]) end
redis.call('SADD', base .. ':queues', queue)
if ARGV[6] ~= '' and tonumber(ARGV[6]) > now then
  -- Waiters learn the new due time from the claim this wakes them for.
  if schedule(queue, id, ARGV[6]) then wake(queue) end
else
  redis.call('ZADD', base .. ':q:' .. queue, ARGV[4], member)
  wake(queue)
end
return 1
"""
)

# ARGV: worker (JSON), count, lease ms, the lost-lease error entry (JSON, with a leading comma)
# split where the worker's id goes, most due tasks to queue, most expired leases to put back,
# queues...
# Returns {now (seconds, text), ms until the next due task or lease deadline (-1: none),
# each claimed task's fields as they were before the claim...}.
CLAIM = (
    _COMMON
    + """
local worker, left, lease = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local now, stamp = clock()
local touched = {}
local budget = tonumber(ARGV[6])
for _, queue in ipairs(redis.call('ZRANGEBYSCORE', base .. ':due', '-inf', now)) do
  local skey = base .. ':s:' .. queue
  if budget > 0 then
    local ids = redis.call('ZRANGEBYSCORE', skey, '-inf', now, 'LIMIT', 0, budget)
    for _, id in ipairs(ids) do
      local f = redis.call('HMGET', base .. ':r:' .. id, 'sc', 'm')
      if f[1] then redis.call('ZADD', base .. ':q:' .. queue, f[1], f[2]) end
      redis.call('ZREM', skey, id)
    end
    budget = budget - #ids
    touched[queue] = true
  end
  local head = redis.call('ZRANGE', skey, 0, 0, 'WITHSCORES')
  if head[2] then
    redis.call('ZADD', base .. ':due', head[2], queue)
  else
    redis.call('ZREM', base .. ':due', queue)
  end
end
local running = base .. ':run'
for _, id in ipairs(redis.call('ZRANGEBYSCORE', running, '-inf', now, 'LIMIT', 0, ARGV[7])) do
  local key = base .. ':r:' .. id
  local f = redis.call('HMGET', key, 's', 'q', 'sc', 'm', 'ea', 'w')
  if f[1] == 'RUNNING' then
    -- w is a JSON string: its inside is already escaped for the traceback's JSON string.
    local lost = ARGV[4] .. string.sub(f[6] or '""', 2, -2) .. ARGV[5]
    redis.call('HSET', key, 's', 'READY', 'ea', (f[5] or '') .. lost)
    redis.call('HDEL', key, 'w')
    redis.call('HINCRBY', key, 'ne', 1)
    redis.call('ZADD', base .. ':q:' .. f[2], f[3], f[4])
    touched[f[2]] = true
  end
  redis.call('ZREM', running, id)
end
local out = {stamp, -1}
local deadline = now + lease
for i = 8, #ARGV do
  local queue = ARGV[i]
  local qkey = base .. ':q:' .. queue
  touched[queue] = true
  while left > 0 do
    local popped = redis.call('ZPOPMIN', qkey, left)
    if #popped == 0 then break end
    for j = 1, #popped, 2 do
      local member = popped[j]
      local id = string.sub(member, string.find(member, '|', 1, true) + 1)
      local key = base .. ':r:' .. id
      local fields = redis.call('HGETALL', key)
      local status, current, started, appended
      for k = 1, #fields, 2 do
        local name = fields[k]
        if name == 's' then status = fields[k + 1]
        elseif name == 'm' then current = fields[k + 1]
        elseif name == 'sa' then started = true
        elseif name == 'wa' then appended = fields[k + 1] end
      end
      -- Anything else is a leftover of an id enqueued twice (or a resent enqueue): dropped.
      if status == 'READY' and current == member then
        redis.call('HSET', key, 's', 'RUNNING', 'w', worker, 'la', stamp,
          'wa', (appended or '') .. ',' .. worker)
        if not started then redis.call('HSET', key, 'sa', stamp) end
        redis.call('ZADD', running, deadline, id)
        out[#out + 1] = fields
        left = left - 1
      end
    end
  end
end
-- Tasks left behind wake another idle worker; tokens of a queue left empty would only make
-- its waiters return for nothing.
for queue in pairs(touched) do
  if redis.call('ZCARD', base .. ':q:' .. queue) > 0 then
    wake(queue)
  else
    redis.call('DEL', base .. ':w:' .. queue)
  end
end
local hint = -1
for _, key in ipairs({base .. ':due', running}) do
  local head = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
  if head[2] then
    local wait = math.max(0, tonumber(head[2]) - now)
    if hint < 0 or wait < hint then hint = wait end
  end
end
out[2] = hint
return out
"""
)

# ARGV: worker (JSON), lease ms, ids... Returns the ids the worker no longer holds.
EXTEND = (
    _COMMON
    + """
local deadline = clock() + tonumber(ARGV[2])
local lost = {}
for i = 3, #ARGV do
  local f = redis.call('HMGET', base .. ':r:' .. ARGV[i], 's', 'w')
  if f[1] == 'RUNNING' and f[2] == ARGV[1] then
    redis.call('ZADD', base .. ':run', deadline, ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
return lost
"""
)

# finish, retry and release, for one task or many: the holder hands its tasks back. ARGV, 8
# per task: id, worker (JSON), record JSON, status, error count, started_at JSON or '', then
# for a finished task: ttl ms, finished ms if FAILED else ''; for a READY one: '' (queued now)
# or the due time in ms, and ''. Returns 1 per task, or 0 when the worker does not hold it.
SETTLE = (
    _COMMON
    + """
local done = {}
local now = clock()
for i = 1, #ARGV, 8 do
  local id = ARGV[i]
  local key = base .. ':r:' .. id
  local f = redis.call('HMGET', key, 's', 'w', 'q', 'sc', 'm')
  if f[1] ~= 'RUNNING' or f[2] ~= ARGV[i + 1] then
    done[#done + 1] = 0
  else
    local queue = f[3]
    redis.call('ZREM', base .. ':run', id)
    redis.call('DEL', key)
    redis.call('HSET', key, 'd', ARGV[i + 2], 's', ARGV[i + 3], 'q', queue, 'sc', f[4],
      'm', f[5], 'ne', ARGV[i + 4])
    if ARGV[i + 5] ~= '' then redis.call('HSET', key, 'sa', ARGV[i + 5]) end
    if ARGV[i + 3] ~= 'READY' then
      redis.call('PEXPIRE', key, ARGV[i + 6])
      if ARGV[i + 7] ~= '' then
        redis.call('ZADD', base .. ':f:' .. queue, ARGV[i + 7], id)
        redis.call('ZADD', base .. ':x:' .. queue, now + tonumber(ARGV[i + 6]), id)
        prune_failed(queue, now, 10)
      end
    elseif ARGV[i + 6] ~= '' and tonumber(ARGV[i + 6]) > now then
      if schedule(queue, id, ARGV[i + 6]) then wake(queue) end
    else
      redis.call('ZADD', base .. ':q:' .. queue, f[4], f[5])
      wake(queue)
    end
    done[#done + 1] = 1
  end
end
return done
"""
)

# ARGV: id, progress JSON. Only a running task's progress changes.
PROGRESS = (
    _COMMON
    + """
local key = base .. ':r:' .. ARGV[1]
if redis.call('HGET', key, 's') ~= 'RUNNING' then return 0 end
redis.call('HSET', key, 'pg', ARGV[2])
return 1
"""
)

# ARGV: id. A FAILED task queued again; 0 if it is not FAILED (or gone).
REQUEUE = (
    _COMMON
    + """
local id = ARGV[1]
local key = base .. ':r:' .. id
local f = redis.call('HMGET', key, 's', 'q', 'sc', 'm', 'ne')
if f[1] ~= 'FAILED' then return 0 end
redis.call('HSET', key, 's', 'READY', 'fa', 'null', 'rf', f[5] or '0')
redis.call('PERSIST', key)
redis.call('ZREM', base .. ':f:' .. f[2], id)
redis.call('ZREM', base .. ':x:' .. f[2], id)
redis.call('ZADD', base .. ':q:' .. f[2], f[3], f[4])
redis.call('SADD', base .. ':queues', f[2])
wake(f[2])
return 1
"""
)

# ARGV: most stale failed ids to drop per queue, queues... (none: every known queue).
# Returns {{queue, queued, scheduled, running, failed}, ...}.
COUNTS = (
    _COMMON
    + """
local now = clock()
local queues = {}
for i = 2, #ARGV do queues[#queues + 1] = ARGV[i] end
if #queues == 0 then queues = redis.call('SMEMBERS', base .. ':queues') end
local running = {}
for _, id in ipairs(redis.call('ZRANGE', base .. ':run', 0, -1)) do
  local queue = redis.call('HGET', base .. ':r:' .. id, 'q')
  if queue then running[queue] = (running[queue] or 0) + 1 end
end
local out = {}
for _, queue in ipairs(queues) do
  prune_failed(queue, now, tonumber(ARGV[1]))
  out[#out + 1] = {queue, redis.call('ZCARD', base .. ':q:' .. queue),
    redis.call('ZCARD', base .. ':s:' .. queue), running[queue] or 0,
    redis.call('ZCARD', base .. ':f:' .. queue)}
end
return out
"""
)
