--[[
  Read the active config version and its JSON in one step (so a reader never pairs a version with
  another version's JSON).

  KEYS[1]  <ns>:service:<svc>:configs        HASH version -> config JSON
  KEYS[2]  <ns>:service:<svc>:config:active  STRING active version

  Returns: { <active version>, <config JSON or false> }, or {} when no version is active
           (the caller then falls back to the highest stored version, e.g. one pushed by Hydra).
]]
local v = redis.call("GET", KEYS[2])
if not v then
  return {}
end
return { v, redis.call("HGET", KEYS[1], v) }
