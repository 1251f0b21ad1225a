-- fail: a job's handler threw or timed out (or its entry is malformed): retry it or dead-letter it.
-- KEYS[1] active list         the consumer's in-progress list
-- KEYS[2] pending list
-- KEYS[3] delayed zset
-- KEYS[4] dead-letter list    newest on the left
-- KEYS[5] stats hash
-- ARGV[1] the entry as claimed (removed from the active list)
-- ARGV[2] the entry to store (attempt counter and reason updated)
-- ARGV[3] mode: "retry" (back of the pending line, or delayed when ARGV[4] > 0) or "dead"
-- ARGV[4] retry delay in ms
-- Returns {removed, nextDueMs or -1}: removed = 0 when the entry was no longer in the active list
-- (it was reaped and requeued meanwhile): nothing else is written then, so the job is not doubled.
local removed = redis.call('LREM', KEYS[1], -1, ARGV[1])
if removed == 0 then return {0, -1} end
local due = -1
if ARGV[3] == 'dead' then
  redis.call('LPUSH', KEYS[4], ARGV[2])
  redis.call('HINCRBY', KEYS[5], 'dead', 1)
else
  local delay = tonumber(ARGV[4])
  if delay > 0 then
    local t = redis.call('TIME')
    due = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + delay
    redis.call('ZADD', KEYS[3], due, ARGV[2])
  else
    redis.call('LPUSH', KEYS[2], ARGV[2])
  end
  redis.call('HINCRBY', KEYS[5], 'retried', 1)
end
redis.call('HINCRBY', KEYS[5], 'failed', 1)
return {1, due}
