-- heartbeat: refresh one instance's presence and its entry in the service's instance index.
-- KEYS[1] presence key        <ns>:service:<svc>:<iid>:presence   (STRING = iid, TTL)
-- KEYS[2] instance index      <ns>:service:<svc>:instances        (ZSET iid -> deadline ms, Redis clock)
-- ARGV[1] instance id
-- ARGV[2] presence TTL in ms
-- Returns {lost, nowMs}: lost = 1 when the presence key had expired or the index entry was missing
-- (Redis restarted, flushed, or this process stalled past its TTL): the caller then re-registers fully.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
local old = redis.call('SET', KEYS[1], ARGV[1], 'PX', ttl, 'GET')
local added = redis.call('ZADD', KEYS[2], now + ttl, ARGV[1])
local lost = 0
if (not old) or added == 1 then lost = 1 end
return {lost, now}
