-- deregister: remove one instance's presence, index entry and health snapshot.
-- KEYS[1] presence key        <ns>:service:<svc>:<iid>:presence
-- KEYS[2] instance index      <ns>:service:<svc>:instances
-- KEYS[3] health key          <ns>:service:<svc>:<iid>:health
-- ARGV[1] instance id
-- Returns the number of removed index entries (0 when it was already gone).
redis.call('DEL', KEYS[1], KEYS[3])
return redis.call('ZREM', KEYS[2], ARGV[1])
