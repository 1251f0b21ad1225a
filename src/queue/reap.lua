-- reap: the periodic pass any live worker runs (no leader): promote due delayed jobs and list the
-- consumers whose in-progress lists must be returned (lease expired, or instance presence gone).
-- KEYS[1] consumers zset      consumer id -> lease deadline (ms, Redis clock)
-- KEYS[2] instance index      the service's registry index, iid -> presence deadline (ms)
-- KEYS[3] delayed zset
-- KEYS[4] pending list
-- ARGV[1] max delayed jobs to promote in this pass
-- ARGV[2] max consumers to return
-- Returns {promoted, nextDueMs or -1, nowMs, consumerId...}.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
-- Latest due first onto the claiming end, so the earliest due is claimed first.
for i = #due, 1, -1 do
  redis.call('ZREM', KEYS[3], due[i])
  redis.call('RPUSH', KEYS[4], due[i])
end
local nextDue = -1
local first = redis.call('ZRANGE', KEYS[3], 0, 0, 'WITHSCORES')
if first[2] then nextDue = tonumber(first[2]) end
local out = {#due, nextDue, now}
local limit = tonumber(ARGV[2])
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, limit)
for i = 1, #expired do out[#out + 1] = expired[i] end
if #out - 3 < limit then
  -- Consumers whose lease still runs but whose instance's presence deadline has passed (SIGKILL):
  -- returned as soon as the registry says the instance is gone, not only at lease expiry.
  local live = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')
  for i = 1, #live do
    local p = redis.call('ZSCORE', KEYS[2], live[i])
    if p and tonumber(p) < now then
      out[#out + 1] = live[i]
      if #out - 3 >= limit then break end
    end
  end
end
return out
