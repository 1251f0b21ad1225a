-- release: return specific entries of a consumer's in-progress list to the front of the pending line
-- (strays whose claim reply was lost in a connection drop).
-- KEYS[1] active list
-- KEYS[2] pending list
-- ARGV the entries (exact strings)
-- Returns how many were returned.
local n = 0
for i = 1, #ARGV do
  if redis.call('LREM', KEYS[1], -1, ARGV[i]) == 1 then
    redis.call('RPUSH', KEYS[2], ARGV[i])
    n = n + 1
  end
end
return n
