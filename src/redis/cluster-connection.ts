/**
 * A Redis Cluster connection (node-redis' cluster client behind the same {@link RedisHandle} interface
 * as a standalone server).
 *
 * - Every command is routed by its key ({@link routingKey}); node-redis follows `MOVED`/`ASK`
 *   redirections and refreshes the slot map, so resharding and failovers stay invisible except for the
 *   moment a shard has no reachable primary (commands then fail with a typed `ConnectionError`).
 * - Channels carrying a hash tag (every per-service channel in Cluster mode) use sharded pub/sub
 *   (`SPUBLISH`/`SSUBSCRIBE`) on the shard that owns the tag: a message crosses no cluster bus. The
 *   few namespace-wide channels (registry events) use classic pub/sub.
 * - `multi()` and Lua scripts run on the node owning their first key; redmesh only sends them with
 *   keys of one service, which share a slot through the `{<svc>}` tag.
 *
 * @module
 */

import { ConnectionError } from "../errors.js";
import { RedisConnection } from "./connection.js";
import { createCluster } from "./driver.js";
import { DriverConnection } from "./driver-connection.js";
import {
  handshakeOptions,
  type ResolvedClusterOptions,
  socketOptions,
  toTlsConnectionOptions,
} from "./options.js";
import { isShardedChannel, keySlot, routingKey } from "./routing.js";
import { type CommandOptions, type RedisArg, type RedisHandle, toArgs, translateError } from "./types.js";

type NodeRedisCluster = ReturnType<typeof createCluster>;

/**
 * Longest wait between two reconnection attempts to a cluster node. Each attempt to an unreachable
 * master also refreshes the slot map, so a promoted replica is found at most this long after Redis
 * promoted it; the attempts stop once the map no longer lists the dead node. 100 ms: a tenth of a
 * 1 s node timeout, and ten cheap connects (one `CLUSTER SLOTS` each) a second during an outage.
 */
const NODE_RECONNECT_MAX_MS = 100;

/**
 * How long after a sharded channel's slot moved to another node a `SPUBLISH` that reached nobody is
 * tried again. While a slot moves, Redis drops its sharded subscriptions on the old node (`SUNSUBSCRIBE`
 * pushed to the subscriber) and the subscriber's client re-subscribes on the new one a round trip or
 * two later; a message published in between reaches nobody, and redmesh would take that for a dead
 * instance (`ERR_NO_INSTANCE`, `ERR_INSTANCE_LOST`: seen in cluster-faults.test.ts). Nothing was
 * delivered, so publishing again cannot duplicate. 1 s covers a re-subscription on a busy machine.
 */
const SLOT_MOVE_GRACE_MS = 1000;

/**
 * Longest a command answered `TRYAGAIN` is retried when it has no deadline of its own. Redis answers
 * `TRYAGAIN` (and runs nothing) to a multi-key command, which is every redmesh script, while the keys
 * of its slot are split between two nodes mid-migration; a slot with many keys takes seconds to move.
 */
const TRYAGAIN_DEFAULT_BUDGET_MS = 5000;

/** How many key → slot entries a connection remembers. */
const SLOT_CACHE_MAX = 10_000;

/** Per-command options for node clients: no timer (the connection keeps one deadline per operation). */
const NO_TIMER = { timeout: 0 } as const;

/** A `MOVED` or `ASK` reply: the slot lives (or is moving) elsewhere. */
function isRedirect(err: unknown): boolean {
  return err instanceof Error && /^(MOVED|ASK) /.test(err.message);
}

function isTryAgain(err: unknown): boolean {
  return err instanceof Error && err.message.startsWith("TRYAGAIN");
}

const pause = (ms: number) => new Promise<void>((r) => setTimeout(r, ms).unref());

/** Options of a {@link ClusterConnection}. */
export interface ClusterConnectionOptions {
  /** Resolved Cluster options (see `resolveTopology`). */
  redis: ResolvedClusterOptions;
  /** Client name prefix shown by `CLIENT LIST` on every node. */
  clientName?: string;
  /** Connect to nodes only when a command needs them (used for duplicates that block on one key). */
  lazy?: boolean;
}

/**
 * A connection to a Redis Cluster. Constructors do no I/O; `connect()` discovers the slot map and
 * connects to the primaries; `stop()`/`close()`/`destroy()` share one memoised end.
 */
export class ClusterConnection extends DriverConnection<NodeRedisCluster> implements RedisHandle {
  /** This connection speaks to a Redis Cluster: keys need the `{<svc>}` hash tag. */
  readonly topology = "cluster" as const;
  readonly #options: ResolvedClusterOptions;
  readonly #clientName: string | undefined;
  readonly #lazy: boolean;
  /** Key → slot, for the fast path (bounded: cleared when full). */
  readonly #slotCache = new Map<string, number>();
  /** Sharded-publish slots → the node that owned them last time, and when that changed. */
  readonly #slotOwners = new Map<number, { address: string; changedAt: number }>();
  /** The node clients of a graceful close under way (see `closeDriver`). */
  #draining: Array<{ destroy(): void }> = [];

  constructor(options: ClusterConnectionOptions) {
    super();
    this.#options = options.redis;
    this.#clientName = options.clientName ?? options.redis.clientName;
    this.#lazy = options.lazy ?? false;
  }

  /** Resolved options (no secrets in `display`). */
  get options(): Readonly<ResolvedClusterOptions> {
    return this.#options;
  }

  protected get settings(): ResolvedClusterOptions {
    return this.#options;
  }

  protected makeDriver(): NodeRedisCluster {
    return this.#makeCluster();
  }

  protected openDriver(cluster: NodeRedisCluster): Promise<unknown> {
    return cluster.connect();
  }

  protected async closeDriver(cluster: NodeRedisCluster, graceful: boolean): Promise<void> {
    if (graceful) {
      // node-redis forgets its nodes as soon as close() starts: keep them to destroy if the drain times out.
      this.#draining = nodeClients(cluster);
      await cluster.close().catch(() => undefined);
      return;
    }
    if (cluster.isOpen) cluster.destroy();
    for (const client of this.#draining.splice(0)) client.destroy();
  }

  protected sendRaw<T>(
    cluster: NodeRedisCluster,
    args: readonly RedisArg[],
    timeoutMs: number,
    options: CommandOptions | undefined,
  ): Promise<T> {
    const budget = timeoutMs > 0 ? timeoutMs : TRYAGAIN_DEFAULT_BUDGET_MS;
    return this.#send<T>(cluster, args, budget, options?.routeByKey);
  }

  /**
   * Send one command; a `TRYAGAIN` (slot mid-migration) is retried with backoff within `budgetMs`.
   * `routeBy` sends a keyless command (`CONFIG GET`…) to the master owning that key's slot.
   */
  async #send<T>(
    cluster: NodeRedisCluster,
    args: readonly RedisArg[],
    budgetMs: number,
    routeBy?: string,
  ): Promise<T> {
    const started = performance.now();
    let delay = 5;
    const key = routingKey(args);
    for (;;) {
      try {
        return await this.#sendOnce<T>(cluster, args, key ?? routeBy, key === undefined);
      } catch (err) {
        if (!isTryAgain(err) || this.isClosed || performance.now() - started + delay > budgetMs) throw err;
        await pause(delay);
        delay = Math.min(delay * 2, 100);
      }
    }
  }

  /**
   * The fast path: straight to the client of the master that owns the key's slot (per the slot map
   * node-redis keeps), with no per-command timer. node-redis' own cluster dispatch costs several times
   * the CPU per command (routing policies, a parser per call) and its node clients default to a 5 s
   * timer per command. A `MOVED`/`ASK` reply (the map is stale) goes through node-redis' cluster path, which
   * follows the redirection and refreshes the map; so does anything without a ready node client.
   */
  #sendOnce<T>(
    cluster: NodeRedisCluster,
    args: readonly RedisArg[],
    key: string | Buffer | undefined,
    keyless: boolean,
  ): Promise<T> {
    const client = key === undefined ? undefined : this.#masterClient(cluster, key);
    const viaCluster = () =>
      (keyless && key !== undefined
        ? // node-redis sends keyless commands to any node even with a routing key: ask the owner.
          cluster.getNodeClientForKey(String(key), false).then((c) => c.sendCommand(toArgs(args), NO_TIMER))
        : cluster.sendCommand(key, false, toArgs(args))) as Promise<T>;
    if (!client) return viaCluster();
    return (client.sendCommand(toArgs(args), NO_TIMER) as Promise<T>).catch((err: unknown) => {
      if (isRedirect(err)) return viaCluster();
      throw err;
    });
  }

  /** The ready client of the master owning `key`'s slot, if node-redis has one open. */
  #masterClient(cluster: NodeRedisCluster, key: string | Buffer) {
    const slot = this.#slotOf(key);
    const client = cluster.slots[slot]?.master?.client;
    return client?.isReady ? client : undefined;
  }

  /** `keySlot()` with a small cache: a service sends to the same few keys and channels over and over. */
  #slotOf(key: string | Buffer): number {
    if (typeof key !== "string") return keySlot(key);
    let slot = this.#slotCache.get(key);
    if (slot === undefined) {
      slot = keySlot(key);
      if (this.#slotCache.size >= SLOT_CACHE_MAX) this.#slotCache.clear();
      this.#slotCache.set(key, slot);
    }
    return slot;
  }

  protected execMulti(
    cluster: NodeRedisCluster,
    commands: ReadonlyArray<readonly RedisArg[]>,
  ): Promise<unknown[]> {
    // Routed by the first key: redmesh's transactions touch one service's keys (one slot).
    const first = commands.find((c) => routingKey(c) !== undefined);
    const m = cluster.multi(first ? routingKey(first) : undefined);
    for (const c of commands) m.addCommand(routingKey(c), false, toArgs(c));
    return m.exec() as Promise<unknown[]>;
  }

  protected connectFailure(cause: unknown): ConnectionError {
    return new ConnectionError(`could not reach any node of the Redis Cluster at ${this.display}`, {
      cause: translateError(cause),
    });
  }

  #makeCluster(): NodeRedisCluster {
    const o = this.#options;
    const defaults: Record<string, unknown> = {
      // Node defaults (discovered nodes too): no TLS server name from one seed's host. The reconnect
      // backoff is capped lower than a standalone connection's: while a master is unreachable every
      // attempt also refreshes the slot map (below), so this interval bounds how late the client
      // learns that a replica took over.
      socket: socketOptions(o, undefined, Math.min(o.maxReconnectDelayMs, NODE_RECONNECT_MAX_MS)),
      // Fail fast while a node is unreachable instead of queueing unboundedly.
      disableOfflineQueue: true,
      ...handshakeOptions(o.username, o.password, this.#clientName),
    };
    const rootNodes = o.nodes.map((n) => {
      const s: Record<string, unknown> = { host: n.host, port: n.port };
      if (o.tls) Object.assign(s, { tls: true }, toTlsConnectionOptions(n.host, o.tls));
      return { socket: s };
    });
    const cluster = createCluster({
      rootNodes,
      defaults,
      RESP: 3,
      // One deadline per operation (set by the caller) instead of a timer per command.
      commandOptions: { timeout: 0 },
      minimizeConnections: this.#lazy,
      // A failover takes a few node timeouts: keep following redirections meanwhile.
      maxCommandRedirections: 32,
      // A killed master answers no MOVED: only a slot-map refresh finds its promoted replica. node-redis
      // refreshes on a node's reconnection attempts once this long has passed since the first one
      // (default 5000 ms, which made a failover last longer than Redis took). 1 ms: refresh from the
      // second attempt on, every attempt.
      topologyRefreshOnReconnectionAttemptStrategy: 1,
    } as Parameters<typeof createCluster>[0]) as NodeRedisCluster;
    // An unhandled 'error' event would crash the process: every one is translated and reported.
    cluster.on("error", (err: unknown) => this.reportError(translateError(err)));
    cluster.on("node-error", (err: unknown) => this.reportError(translateError(err)));
    return cluster;
  }

  publish(channel: string, message: string | Buffer, options?: CommandOptions): Promise<number> {
    const cmd = isShardedChannel(channel) ? "SPUBLISH" : "PUBLISH";
    const cluster = this.requireDriver();
    // SPUBLISH is routed by its channel (the shard owning its slot); PUBLISH reaches every node.
    const run =
      cmd === "SPUBLISH"
        ? this.#spublish(cluster, channel, message)
        : this.#publishAll(cluster, channel, message);
    return this.withDeadline(run, options?.timeoutMs ?? 0, cmd);
  }

  #publishAll(cluster: NodeRedisCluster, channel: string, message: string | Buffer): Promise<number> {
    return cluster.sendCommand(undefined, false, ["PUBLISH", channel, message]) as Promise<number>;
  }

  /** SPUBLISH, published again for a while when it reached nobody just after its slot moved. */
  async #spublish(cluster: NodeRedisCluster, channel: string, message: string | Buffer): Promise<number> {
    const slot = this.#slotOf(channel);
    let delay = 10;
    for (;;) {
      this.#noteSlotOwner(cluster, slot);
      const n = await this.#sendOnce<number>(cluster, ["SPUBLISH", channel, message], channel, false);
      // A MOVED during this publish refreshed the map: that counts as a move too.
      const movedAt = this.#noteSlotOwner(cluster, slot);
      if (n > 0 || this.isClosed || performance.now() - movedAt > SLOT_MOVE_GRACE_MS) return n;
      await pause(delay);
      delay = Math.min(delay * 2, 200);
    }
  }

  /** Record which node owns `slot` now; returns when its owner last changed (0: never seen change). */
  #noteSlotOwner(cluster: NodeRedisCluster, slot: number): number {
    const address = (cluster.slots[slot] as { master?: { address?: string } } | undefined)?.master?.address;
    if (address === undefined) return 0;
    const seen = this.#slotOwners.get(slot);
    if (!seen) {
      this.#slotOwners.set(slot, { address, changedAt: 0 });
      return 0;
    }
    if (seen.address !== address) {
      seen.address = address;
      seen.changedAt = performance.now();
    }
    return seen.changedAt;
  }

  protected async subscribeChannel(
    channel: string,
    onMessage: (message: string, channel: string) => void,
  ): Promise<void> {
    const cluster = this.requireDriver();
    // node-redis moves sharded subscriptions when a slot moves and resubscribes after reconnects.
    if (isShardedChannel(channel)) await cluster.sSubscribe(channel, onMessage);
    else await cluster.subscribe(channel, onMessage);
  }

  protected async unsubscribeChannel(channel: string): Promise<void> {
    const cluster = this.driver;
    if (!cluster?.isOpen) return;
    if (isShardedChannel(channel)) await cluster.sUnsubscribe(channel);
    else await cluster.unsubscribe(channel);
  }

  /**
   * Run one command on every node of the cluster, primaries and replicas (e.g. `ACL SETUSER`, which
   * each node keeps for itself). Nodes come from `CLUSTER NODES`; each gets a short-lived connection
   * with this connection's credentials. Resolves with one entry per node: its reply or its typed error.
   */
  async commandOnEveryNode(
    args: readonly RedisArg[],
    options?: CommandOptions,
  ): Promise<Array<{ node: string; reply: unknown }>> {
    const text = String(await this.command(["CLUSTER", "NODES"], options));
    const nodes = parseClusterNodes(text);
    return Promise.all(
      nodes.map(async (node) => {
        const c = new RedisConnection({
          redis: {
            host: node.host,
            port: node.port,
            username: this.#options.username,
            password: this.#options.password,
            tls: this.#options.tls ?? false,
            connectTimeoutMs: this.#options.connectTimeoutMs,
            commandTimeoutMs: this.#options.commandTimeoutMs,
          },
          ...(this.#clientName === undefined ? {} : { clientName: this.#clientName }),
        });
        c.on("error", () => undefined); // reported through the reply below
        try {
          await c.connect({ failFast: true });
          return { node: `${node.host}:${node.port}`, reply: await c.command(args, options) };
        } catch (err) {
          return { node: `${node.host}:${node.port}`, reply: translateError(err, String(args[0])) };
        } finally {
          c.destroy();
        }
      }),
    );
  }

  /**
   * A new, unconnected connection to the same cluster. It connects to a node only when a command
   * needs it, so a duplicate that blocks on one queue holds one socket, not one per primary.
   */
  duplicate(clientName?: string): ClusterConnection {
    const name = clientName ?? this.#clientName;
    return new ClusterConnection({
      redis: this.#options,
      lazy: true,
      ...(name === undefined ? {} : { clientName: name }),
    });
  }
}

/** Every node client a cluster holds now: masters (and their pub/sub clients), replicas, the pub/sub node. */
function nodeClients(cluster: NodeRedisCluster): Array<{ destroy(): void }> {
  const out: Array<{ destroy(): void } | undefined> = [cluster.pubSubNode?.client];
  for (const m of cluster.masters) out.push(m.client, m.pubSub?.client);
  for (const r of cluster.replicas) out.push(r.client);
  return out.filter((c): c is { destroy(): void } => c !== undefined);
}

/** The reachable nodes of a `CLUSTER NODES` reply (`<id> <host:port@bus[,hostname]> <flags> …`). */
export function parseClusterNodes(text: string): Array<{ id: string; host: string; port: number }> {
  const out: Array<{ id: string; host: string; port: number }> = [];
  for (const line of text.split("\n")) {
    const [id, addr, flags] = line.trim().split(" ");
    if (!id || !addr || !flags || /(^|,)(fail|noaddr|handshake)(,|$)/.test(flags)) continue;
    const m = /^(.*):(\d+)@/.exec(addr);
    if (!m?.[1] || !m[2]) continue;
    out.push({ id, host: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]) });
  }
  return out;
}
