/**
 * Redis connection layer (the only place that imports the driver).
 * @module
 */
export {
  ClusterConnection,
  type ClusterConnectionOptions,
} from "./cluster-connection.js";
export { RedisConnection, type RedisConnectionOptions } from "./connection.js";
export { createRedisConnection } from "./create.js";
export { defineScript, type LuaScript, loadScript } from "./lua-script.js";
export {
  type ClusterRedisOptions,
  DEFAULT_REDIS_OPTIONS,
  isClusterOptions,
  type RedisHostPort,
  type RedisOptions,
  type RedisTlsOptions,
  type ResolvedClusterOptions,
  type ResolvedCommonOptions,
  type ResolvedRedisOptions,
  type ResolvedSentinelOptions,
  type ResolvedStandaloneOptions,
  redact,
  resolveRedisOptions,
  resolveTopology,
  type SentinelRedisOptions,
  type SharedRedisSettings,
  type StandaloneRedisOptions,
} from "./options.js";
export { isShardedChannel, keySlot, routingKey } from "./routing.js";
export { SentinelConnection, type SentinelConnectionOptions } from "./sentinel-connection.js";
export {
  type CommandOptions,
  ConnectionStatus,
  type ConnectionStatusValue,
  type MessageListener,
  type RedisArg,
  type RedisConnectionEvents,
  type RedisHandle,
  type RedisLike,
  type RedisTopology,
  translateError,
} from "./types.js";
