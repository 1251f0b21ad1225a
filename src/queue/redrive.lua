-- redrive: move dead letters back to the pending line, rewritten (attempts reset, reason cleared).
-- KEYS[1] dead-letter list
-- KEYS[2] pending list
-- ARGV pairs: the dead entry as listed, the entry to enqueue
-- Returns how many were moved (an entry someone else redrove or purged meanwhile is skipped).
local n = 0
for i = 1, #ARGV, 2 do
  if redis.call('LREM', KEYS[1], 1, ARGV[i]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[i + 1])
    n = n + 1
  end
end
return n
