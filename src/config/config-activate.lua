--[[
  Make an existing config version the active one (rollback), atomically.

  KEYS[1]  <ns>:service:<svc>:configs        HASH version -> config JSON
  KEYS[2]  <ns>:service:<svc>:config:active  STRING active version
  ARGV[1]  version to activate
  ARGV[2]  "1" to check the expected active version, "0" not to
  ARGV[3]  expected active version ("" = none active)

  Returns: { "ok", <previous active version or "">, <config JSON> }
           -1 when the version does not exist (nothing changed)
           -2 when the active version is not the expected one (nothing changed)
]]
local json = redis.call("HGET", KEYS[1], ARGV[1])
if not json then
  return -1
end
local prev = redis.call("GET", KEYS[2])
if not prev then prev = "" end
if ARGV[2] == "1" and prev ~= ARGV[3] then
  return -2
end
redis.call("SET", KEYS[2], ARGV[1])
return { "ok", prev, json }
