-- lease: refresh a consumer's lease.
-- KEYS[1] consumers zset      consumer id -> lease deadline (ms, Redis clock)
-- ARGV[1] consumer id
-- ARGV[2] lease ms
-- Returns the new deadline.
local t = redis.call('TIME')
local deadline = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) + tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], deadline, ARGV[1])
return deadline
