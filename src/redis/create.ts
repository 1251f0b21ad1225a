/**
 * One entry point for every topology: `createRedisConnection()` reads the `redis:` option and returns
 * a standalone, Cluster or Sentinel connection behind the same {@link RedisHandle} interface.
 *
 * @module
 */

import { ClusterConnection } from "./cluster-connection.js";
import { RedisConnection, type RedisConnectionOptions } from "./connection.js";
import { resolveTopology } from "./options.js";
import { SentinelConnection } from "./sentinel-connection.js";
import type { RedisHandle } from "./types.js";

/**
 * Create a (not yet connected) connection of the topology the options describe: a `redis://` URL or
 * host/port object gives a standalone connection, `{ cluster: [...] }` / `redis-cluster://…` a Cluster
 * connection, `{ sentinel: {...} }` / `redis-sentinel://…` a Sentinel one. Validates the options (a
 * typed `ValidationError` says what is wrong) but does no I/O.
 */
export function createRedisConnection(options: RedisConnectionOptions = {}): RedisHandle {
  const resolved = resolveTopology(options.redis);
  const name = options.clientName === undefined ? {} : { clientName: options.clientName };
  switch (resolved.kind) {
    case "cluster":
      return new ClusterConnection({ redis: resolved, ...name });
    case "sentinel":
      return new SentinelConnection({ redis: resolved, ...name });
    default:
      return new RedisConnection({ redis: resolved, ...name });
  }
}
