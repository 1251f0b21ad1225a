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

import { createCluster } from "@redis/client";
import { ConnectionError } from "../errors.js";
import { RedisConnection } from "./connection.js";
import { DriverConnection } from "./driver-connection.js";
import { type ResolvedClusterOptions, toTlsConnectionOptions } from "./options.js";
import { isShardedChannel, routingKey } from "./routing.js";
import { type CommandOptions, type RedisArg, type RedisHandle, toArgs, translateError } from "./types.js";

type NodeRedisCluster = ReturnType<typeof createCluster>;

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
 * connects to the primaries; `close()` is idempotent.
 */
export class ClusterConnection extends DriverConnection<NodeRedisCluster> implements RedisHandle {
  /** This connection speaks to a Redis Cluster: keys need the `{<svc>}` hash tag. */
  readonly topology = "cluster" as const;
  readonly #options: ResolvedClusterOptions;
  readonly #clientName: string | undefined;
  readonly #lazy: boolean;

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
    if (graceful) await cluster.close().catch(() => undefined);
    else if (cluster.isOpen) cluster.destroy();
  }

  protected sendRaw<T>(cluster: NodeRedisCluster, args: readonly RedisArg[]): Promise<T> {
    return cluster.sendCommand(routingKey(args), false, toArgs(args)) as Promise<T>;
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
    const socket: Record<string, unknown> = {
      connectTimeout: o.connectTimeoutMs,
      keepAlive: true,
      noDelay: true,
      reconnectStrategy: (retries: number) =>
        Math.min(50 * 2 ** Math.min(retries, 10), o.maxReconnectDelayMs),
    };
    const defaults: Record<string, unknown> = {
      socket,
      // Fail fast while a node is unreachable instead of queueing unboundedly.
      disableOfflineQueue: true,
    };
    if (o.username !== undefined) defaults.username = o.username;
    if (o.password !== undefined) defaults.password = o.password;
    if (this.#clientName) defaults.name = this.#clientName;
    const rootNodes = o.nodes.map((n) => {
      const s: Record<string, unknown> = { host: n.host, port: n.port };
      if (o.tls) Object.assign(s, { tls: true }, toTlsConnectionOptions(n.host, o.tls));
      return { socket: s };
    });
    if (o.tls) Object.assign(socket, { tls: true }, toTlsConnectionOptions(o.nodes[0]?.host ?? "", o.tls));
    const cluster = createCluster({
      rootNodes,
      defaults,
      RESP: 3,
      // One deadline per operation (set by the caller) instead of a timer per command.
      commandOptions: { timeout: 0 },
      minimizeConnections: this.#lazy,
      // A failover takes a few node timeouts: keep following redirections meanwhile.
      maxCommandRedirections: 32,
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
    const run = cluster.sendCommand(cmd === "SPUBLISH" ? channel : undefined, false, [
      cmd,
      channel,
      message,
    ]) as Promise<number>;
    return this.withDeadline(run, options?.timeoutMs ?? 0, cmd);
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
