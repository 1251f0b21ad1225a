/**
 * Least-privilege Redis ACL users for services (`redmesh acl <svc>`).
 *
 * A service gets read-write access to its own keys and channels, read access to the registry entries
 * every service must see (service markers, presence, health, routes), write access to the few shared
 * registry structures (the `nodes` hash, the service index, the instance indexes: the discovery script
 * prunes dead entries there, and Redis requires write permission for every key a script is given),
 * and only the single commands redmesh sends: category grants such as `+@write` would also allow
 * `FLUSHALL`, `KEYS` and friends, so none are used.
 *
 * Limits a Redis ACL cannot express, said plainly: a channel permission covers PUBLISH and SUBSCRIBE
 * alike, so answering RPC calls from service X (publishing replies on X's channels) also lets a service
 * listen on X's channels: grant it only for the services it really talks to (`talksTo`). The shared
 * `nodes` hash is one key: any service may edit any entry of it (Hydra's layout).
 *
 * @module
 */
import { ErrorCode, ValidationError } from "../errors.js";
import { assertServiceName, type Keys } from "../keys.js";

/** Options of {@link aclRules}. */
export interface AclOptions {
  /** Key builder of the namespace (cluster mode included). */
  keys: Keys;
  /** The service the user is for. */
  service: string;
  /** Services it calls or answers, or sends messages to: their channels are granted too. @default [] */
  talksTo?: readonly string[];
  /** Services whose queues it adds jobs to. @default [] */
  produceTo?: readonly string[];
}

/**
 * Every command redmesh sends, directly or from its Lua scripts (scripts are checked command by
 * command too). Keep in sync with the code: the ACL test runs every capability under such a user.
 */
export const ACL_COMMANDS = [
  // connection
  "ping",
  "hello",
  "client|setname",
  "select",
  "time",
  // strings, keys
  "get",
  "set",
  "del",
  "exists",
  "mget",
  "expire",
  "pexpire",
  "pttl",
  // hashes
  "hget",
  "hexists",
  "hset",
  "hdel",
  "hgetall",
  "hmget",
  "hkeys",
  "hvals",
  "hincrby",
  // sets
  "sadd",
  "srem",
  "smembers",
  "sismember",
  // sorted sets
  "zadd",
  "zrem",
  "zrange",
  "zrangebyscore",
  "zremrangebyscore",
  "zscore",
  "zcard",
  // lists
  "lpush",
  "rpush",
  "lrange",
  "llen",
  "lrem",
  "ltrim",
  "lmove",
  "blmove",
  // streams
  "xadd",
  "xread",
  "xrevrange",
  "xrange",
  "xlen",
  // pub/sub
  "publish",
  "subscribe",
  "unsubscribe",
  // scripts and transactions
  "eval",
  "evalsha",
  "multi",
  "exec",
  "discard",
  // a queue add waits for a replica when the queue's `replicas` option asks for it
  "wait",
] as const;

/** Commands a service needs on top of {@link ACL_COMMANDS} when it runs on a Redis Cluster. */
export const ACL_CLUSTER_COMMANDS = [
  "cluster|slots",
  "cluster|shards",
  "cluster|nodes",
  "cluster|myid",
  "spublish",
  "ssubscribe",
  "sunsubscribe",
] as const;

/** The `ACL SETUSER` rules (without the user name, `on` or the password) for one service. */
export function aclRules(options: AclOptions): string[] {
  const { keys, service } = options;
  assertServiceName(service);
  const talksTo = [...new Set(options.talksTo ?? [])].filter((s) => s !== service);
  const produceTo = [...new Set(options.produceTo ?? [])].filter((s) => s !== service);
  for (const s of [...talksTo, ...produceTo]) assertServiceName(s);
  const any = "*";
  const rules = ["resetkeys", "resetchannels", "-@all", ...ACL_COMMANDS.map((c) => `+${c}`)];
  // A Cluster client reads the slot map, and service channels are sharded there.
  if (keys.cluster) rules.push(...ACL_CLUSTER_COMMANDS.map((c) => `+${c}`));
  // Own keys: everything under the service's prefix.
  rules.push(`~${keys.servicePrefix(service)}*`);
  // Shared registry structures written by registration and by discovery's pruning.
  rules.push(`~${keys.nodes()}`, `~${keys.serviceIndex()}`, `~${keys.instanceIndex(any)}`);
  // Read-only: what discovery, health-aware balancing and the route table read of other services.
  for (const k of [keys.service(any), keys.presence(any, any), keys.health(any, any), keys.routes(any)])
    rules.push(`%R~${k}`);
  // Queues of other services it produces to (pending list, structures, index, wake-up channel).
  for (const s of produceTo) {
    rules.push(`~${keys.queuePending(s)}`, `~${keys.queue(s, any, any)}`, `~${keys.queueIndex(s)}`);
    rules.push(`&${keys.queue(s, any, "wake")}`);
  }
  // Channels: its own (service and instance channels), registry events, its queues' wake-ups, peers'.
  for (const s of [service, ...talksTo])
    rules.push(`&${keys.channelPrefix(s)}`, `&${keys.channelPrefix(s)}:*`);
  rules.push(`&${keys.events()}`, `&${keys.servicePrefix(service)}*`);
  return rules;
}

/** The full `ACL SETUSER` command for a service's user (the password is hashed by Redis on receipt). */
export function aclSetUserCommand(options: AclOptions & { user?: string; password: string }): string[] {
  if (typeof options.password !== "string" || options.password.length < 16) {
    throw new ValidationError("an ACL password must be a string of at least 16 characters", {
      code: ErrorCode.INVALID_OPTIONS,
    });
  }
  const user = options.user ?? `redmesh-${options.service}`;
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(user)) {
    throw new ValidationError(`invalid ACL user name ${JSON.stringify(user)}`, {
      code: ErrorCode.INVALID_OPTIONS,
    });
  }
  return ["ACL", "SETUSER", user, "reset", "on", `>${options.password}`, ...aclRules(options)];
}
