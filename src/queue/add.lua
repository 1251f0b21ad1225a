-- add: enqueue jobs (one or many) atomically, with optional delay, dedup by job id and priority.
-- KEYS[1] pending list        (Hydra's mqrecieved for the default queue; LPUSH = back of the line)
-- KEYS[2] delayed zset        entry -> due time (ms, Redis clock)
-- KEYS[3] job-id set          ids of unique jobs that still exist (pending, delayed, in flight, dead)
-- ARGV[1] number of jobs n, then n groups of 4:
--   entry (JSON string), delay ms ("0" = now), unique id ("" = no dedup), priority ("1" = front of the line)
-- Returns {earliestNewDueMs or -1, nowMs, flag1, ..., flagN}: flag 1 = added, 0 = duplicate job id.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = tonumber(ARGV[1])
local out = {-1, now}
local earliest = -1
for i = 0, n - 1 do
  local b = 2 + i * 4
  local entry, delay, uid, prio = ARGV[b], tonumber(ARGV[b + 1]), ARGV[b + 2], ARGV[b + 3]
  local ok = 1
  if uid ~= '' then ok = redis.call('SADD', KEYS[3], uid) end
  if ok == 1 then
    if delay > 0 then
      local due = now + delay
      redis.call('ZADD', KEYS[2], due, entry)
      if earliest < 0 or due < earliest then earliest = due end
    elseif prio == '1' then
      redis.call('RPUSH', KEYS[1], entry)
    else
      redis.call('LPUSH', KEYS[1], entry)
    end
  end
  out[#out + 1] = ok
end
out[1] = earliest
return out
