-- live-instances: the live members of a service's instance index, pruning long-dead entries.
-- KEYS[1] instance index      <ns>:service:<svc>:instances        (ZSET iid -> deadline ms)
-- ARGV[1] prune grace in ms: entries whose deadline passed more than this long ago are removed
-- Returns {nowMs, iid1, deadline1, iid2, deadline2, ...} (deadlines on the Redis clock).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[1])))
local live = redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf', 'WITHSCORES')
local out = {now}
for i = 1, #live do out[#out + 1] = live[i] end
return out
