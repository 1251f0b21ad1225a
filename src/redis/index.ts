/**
 * Redis connection layer (the only place that imports the driver).
 * @module
 */
export {
  type CommandOptions,
  ConnectionStatus,
  type ConnectionStatusValue,
  createRedisConnection,
  type MessageListener,
  type RedisArg,
  RedisConnection,
  type RedisConnectionEvents,
  type RedisConnectionOptions,
  type RedisLike,
  translateError,
} from "./connection.js";
export { defineScript, type LuaScript, loadScript } from "./lua-script.js";
export {
  type ClusterRedisOptions,
  DEFAULT_REDIS_OPTIONS,
  type RedisOptions,
  type RedisTlsOptions,
  type ResolvedStandaloneOptions,
  redact,
  resolveRedisOptions,
  type SentinelRedisOptions,
  type StandaloneRedisOptions,
} from "./options.js";
