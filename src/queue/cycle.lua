-- cycle: one worker round trip: acknowledge finished jobs, refresh the lease, claim new jobs.
-- KEYS[1] pending list        claimed from the right (oldest first; Hydra's RPOPLPUSH end)
-- KEYS[2] active list         this consumer's in-progress list (newest claim on the left)
-- KEYS[3] consumers zset      consumer id -> lease deadline (ms, Redis clock)
-- KEYS[4] stats hash          counters: processed, failed, retried, dead, requeued
-- KEYS[5] job-id set          ids of unique jobs (removed when the job completes)
-- ARGV[1] consumer id
-- ARGV[2] lease ms
-- ARGV[3] how many jobs to claim (0 = only ack)
-- ARGV[4] number of acks a
-- ARGV[5] the acknowledged entries packed as "<byte length>:<entry>" one after the other (one
--         argument instead of a: the client writes one string, not a hundred)
-- ARGV[6..] the unique job ids to forget
-- Returns the claimed entries, oldest first.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local a = tonumber(ARGV[4])
if a > 0 then
  local packed = ARGV[5]
  local pos = 1
  local acks = {}
  local count = {}
  for i = 1, a do
    local c = string.find(packed, ':', pos, true)
    local len = tonumber(string.sub(packed, pos, c - 1))
    local e = string.sub(packed, c + 1, c + len)
    acks[i] = e
    count[e] = (count[e] or 0) + 1
    pos = c + len + 1
  end
  -- Jobs mostly finish in claim order, so the acknowledged entries are usually exactly the oldest
  -- ones (the right end): then one LTRIM removes them all. Otherwise one LREM per entry.
  local tail = redis.call('LRANGE', KEYS[2], -a, -1)
  local same = #tail == a
  if same then
    for i = 1, #tail do
      local k = count[tail[i]]
      if not k or k == 0 then same = false break end
      count[tail[i]] = k - 1
    end
  end
  if same then
    redis.call('LTRIM', KEYS[2], 0, -a - 1)
  else
    for i = 1, a do redis.call('LREM', KEYS[2], -1, acks[i]) end
  end
  redis.call('HINCRBY', KEYS[4], 'processed', a)
end
if #ARGV > 5 then
  redis.call('SREM', KEYS[5], unpack(ARGV, 6, #ARGV))
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[2]), ARGV[1])
local want = tonumber(ARGV[3])
if want <= 0 then return {} end
-- One LRANGE + LTRIM + LPUSH instead of a LMOVE per entry (same result, atomically: the script is
-- the unit). The oldest entries are at the right end; they are claimed first.
local got = redis.call('LRANGE', KEYS[1], -want, -1)
local n = #got
if n == 0 then return {} end
redis.call('LTRIM', KEYS[1], 0, -n - 1)
local out = {}
for i = 1, n do out[i] = got[n - i + 1] end
for i = 1, n, 1000 do
  redis.call('LPUSH', KEYS[2], unpack(out, i, math.min(n, i + 999)))
end
return out
