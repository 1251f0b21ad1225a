-- register: make one instance present (the per-service half of registration; the shared `nodes`
-- hash and service index live in other slots and are written by the caller in the same pipeline).
-- KEYS[1] service key         <ns>:service:<svc>:service          (STRING JSON {serviceName,type,registeredOn})
-- KEYS[2] presence key        <ns>:service:<svc>:<iid>:presence   (STRING = iid, TTL)
-- KEYS[3] instance index      <ns>:service:<svc>:instances        (ZSET iid -> deadline ms)
-- ARGV[1] instance id
-- ARGV[2] presence TTL in ms
-- ARGV[3] service entry JSON (written as Hydra does on every registration)
-- Returns nowMs (Redis clock).
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[3])
redis.call('SET', KEYS[2], ARGV[1], 'PX', ttl)
redis.call('ZADD', KEYS[3], now + ttl, ARGV[1])
return now
