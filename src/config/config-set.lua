--[[
  Store a new config version and make it the active one, atomically.

  KEYS[1]  <ns>:service:<svc>:configs        HASH version -> config JSON (Hydra's layout)
  KEYS[2]  <ns>:service:<svc>:config:active  STRING active version
  ARGV[1]  version to create
  ARGV[2]  config JSON
  ARGV[3]  "1" to check the expected active version, "0" not to
  ARGV[4]  expected active version ("" = none active)

  Returns: { "ok", <previous active version or ""> }
           -1 when the version already exists (nothing written)
           -2 when the active version is not the expected one (nothing written)
]]
if redis.call("HEXISTS", KEYS[1], ARGV[1]) == 1 then
  return -1
end
local prev = redis.call("GET", KEYS[2])
if not prev then prev = "" end
if ARGV[3] == "1" and prev ~= ARGV[4] then
  return -2
end
redis.call("HSET", KEYS[1], ARGV[1], ARGV[2])
redis.call("SET", KEYS[2], ARGV[1])
return { "ok", prev }
