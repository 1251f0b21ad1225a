-- requeue: return one consumer's in-progress list to the front of the pending line, oldest first.
-- KEYS[1] consumers zset      consumer id -> lease deadline (ms)
-- KEYS[2] active list         that consumer's in-progress list
-- KEYS[3] pending list
-- KEYS[4] instance index      iid -> presence deadline (ms)
-- KEYS[5] stats hash
-- ARGV[1] consumer id
-- ARGV[2] "1" = unconditional (the consumer returns its own list on stop); "0" = only when its lease
--         has expired or its instance's presence deadline has passed (re-checked here, atomically)
-- Returns the number of entries returned, or -1 when the consumer turned out to be alive.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if ARGV[2] ~= '1' then
  local lease = redis.call('ZSCORE', KEYS[1], ARGV[1])
  local p = redis.call('ZSCORE', KEYS[4], ARGV[1])
  local dead = (not lease) or tonumber(lease) < now or (p and tonumber(p) < now)
  if not dead then return -1 end
end
local n = 0
while true do
  -- LEFT -> RIGHT keeps the claim order: the oldest claim is claimed again first.
  local e = redis.call('LMOVE', KEYS[2], KEYS[3], 'LEFT', 'RIGHT')
  if not e then break end
  n = n + 1
end
redis.call('ZREM', KEYS[1], ARGV[1])
if n > 0 then redis.call('HINCRBY', KEYS[5], 'requeued', n) end
return n
