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
import { ConnectionError, ErrorCode, RedisReplyError, StateError } from "../errors.js";
import { ConnectionBase } from "./base.js";
import { DeadlineTracker } from "./deadlines.js";
import type { LuaScript } from "./lua-script.js";
import { type ResolvedClusterOptions, toTlsConnectionOptions } from "./options.js";
import { isShardedChannel, routingKey } from "./routing.js";
import {
  type CommandOptions,
  ConnectionStatus,
  type MessageListener,
  type RedisArg,
  type RedisHandle,
  toArgs,
  translateError,
} from "./types.js";

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
export class ClusterConnection extends ConnectionBase implements RedisHandle {
  /** This connection speaks to a Redis Cluster: keys need the `{<svc>}` hash tag. */
  readonly topology = "cluster" as const;
  /** The stall watchdog is a standalone feature; node-redis reconnects cluster nodes itself. */
  readonly recycledConnections = 0;
  readonly #options: ResolvedClusterOptions;
  readonly #clientName: string | undefined;
  readonly #lazy: boolean;
  #cluster: NodeRedisCluster | undefined;
  #connecting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  readonly #deadlines = new DeadlineTracker();

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

  get display(): string {
    return this.#options.display;
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

  /**
   * Discover the cluster and connect. Retries until `timeoutMs` (default `connectTimeoutMs`), or
   * rejects at the first failure with `failFast`.
   */
  async connect(
    options: { timeoutMs?: number; signal?: AbortSignal; failFast?: boolean } = {},
  ): Promise<void> {
    if (this.status === ConnectionStatus.CLOSED)
      throw new StateError(ErrorCode.NOT_RUNNING, "this Redis connection is closed");
    if (this.isReady) return;
    const wait = this.waitReady(
      options.timeoutMs ?? this.#options.connectTimeoutMs,
      options.signal,
      options.failFast,
    );
    if (!this.#connecting) {
      this.setStatus(ConnectionStatus.CONNECTING);
      this.#connecting = this.#connectLoop().finally(() => {
        this.#connecting = undefined;
      });
    }
    await wait;
  }

  /** Try the seed nodes until one answers (or the connection is closed). */
  async #connectLoop(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      const cluster = this.#makeCluster();
      this.#cluster = cluster;
      try {
        await cluster.connect();
        if (this.closed) {
          cluster.destroy();
          return;
        }
        this.setStatus(ConnectionStatus.READY);
        return;
      } catch (err) {
        if (this.#cluster === cluster) this.#cluster = undefined;
        this.reportError(
          new ConnectionError(`could not reach any node of the Redis Cluster at ${this.display}`, {
            cause: translateError(err),
          }),
        );
        await new Promise((r) =>
          setTimeout(
            r,
            Math.min(50 * 2 ** Math.min(attempt++, 10), this.#options.maxReconnectDelayMs),
          ).unref(),
        );
      }
    }
  }

  #requireCluster(): NodeRedisCluster {
    const c = this.#cluster;
    if (!c || !this.isReady) {
      if (this.status === ConnectionStatus.CLOSED || !c)
        throw new StateError(
          ErrorCode.NOT_RUNNING,
          "the Redis connection is not open (call connect() first)",
        );
    }
    return c as NodeRedisCluster;
  }

  #timeout(options: CommandOptions | undefined): number {
    return options?.timeoutMs ?? this.#options.commandTimeoutMs;
  }

  async command<T = unknown>(args: readonly RedisArg[], options?: CommandOptions): Promise<T> {
    const cluster = this.#requireCluster();
    const timeout = this.#timeout(options);
    try {
      const key = routingKey(args);
      // node-redis sends a keyless command (CONFIG GET, INFO…) to any node, replicas included, even
      // when given a routing key: to ask about the node holding a key, send it to that node's client.
      const run = (
        key === undefined && options?.routeByKey !== undefined
          ? cluster.getNodeClientForKey(options.routeByKey, false).then((c) => c.sendCommand(toArgs(args)))
          : cluster.sendCommand(key, false, toArgs(args))
      ) as Promise<T>;
      return await (timeout > 0 ? this.#deadlines.track(run, timeout, String(args[0])) : run);
    } catch (err) {
      throw translateError(err, String(args[0]));
    }
  }

  async pipeline(commands: ReadonlyArray<readonly RedisArg[]>, options?: CommandOptions): Promise<unknown[]> {
    // node-redis writes the commands bound for one node in one batch: one round trip per node.
    const settled = await Promise.allSettled(commands.map((c) => this.command(c, options)));
    return settled.map((s) => (s.status === "fulfilled" ? s.value : s.reason));
  }

  async multi(commands: ReadonlyArray<readonly RedisArg[]>, options?: CommandOptions): Promise<unknown[]> {
    const cluster = this.#requireCluster();
    const first = commands.find((c) => routingKey(c) !== undefined);
    const m = cluster.multi(first ? routingKey(first) : undefined);
    for (const c of commands) m.addCommand(routingKey(c), false, toArgs(c));
    const timeout = this.#timeout(options);
    try {
      const run = m.exec() as Promise<unknown[]>;
      return timeout > 0 ? await this.#deadlines.track(run, timeout, "MULTI") : await run;
    } catch (err) {
      throw translateError(err, "MULTI");
    }
  }

  async script<T = unknown>(
    script: LuaScript,
    keys: readonly string[],
    args: readonly RedisArg[],
    options?: CommandOptions,
  ): Promise<T> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await this.command<T>(["EVALSHA", script.sha, ...tail], options);
    } catch (err) {
      // Each node has its own script cache: the first run on a node (or after a failover) loads it.
      if (err instanceof RedisReplyError && err.message.startsWith("NOSCRIPT"))
        return this.command<T>(["EVAL", script.source, ...tail], options);
      throw err;
    }
  }

  async publish(channel: string, message: string | Buffer, options?: CommandOptions): Promise<number> {
    const cmd = isShardedChannel(channel) ? "SPUBLISH" : "PUBLISH";
    const cluster = this.#requireCluster();
    const timeout = options?.timeoutMs ?? 0;
    try {
      // SPUBLISH is routed by its channel (the shard owning its slot); PUBLISH reaches every node.
      const run = cluster.sendCommand(cmd === "SPUBLISH" ? channel : undefined, false, [
        cmd,
        channel,
        message,
      ]) as Promise<number>;
      return await (timeout > 0 ? this.#deadlines.track(run, timeout, cmd) : run);
    } catch (err) {
      throw translateError(err, cmd);
    }
  }

  async subscribe(channel: string, listener: MessageListener): Promise<void> {
    const cluster = this.#requireCluster();
    let set = this.channelListeners.get(channel);
    if (set) {
      set.add(listener);
      return;
    }
    set = new Set([listener]);
    this.channelListeners.set(channel, set);
    const onMessage = (message: string, ch: string) => this.dispatch(ch, message);
    try {
      // node-redis moves sharded subscriptions when a slot moves and resubscribes after reconnects.
      if (isShardedChannel(channel)) await cluster.sSubscribe(channel, onMessage);
      else await cluster.subscribe(channel, onMessage);
    } catch (err) {
      this.channelListeners.delete(channel);
      throw translateError(err, isShardedChannel(channel) ? "SSUBSCRIBE" : "SUBSCRIBE");
    }
  }

  async unsubscribe(channel: string, listener?: MessageListener): Promise<void> {
    const set = this.channelListeners.get(channel);
    if (!set) return;
    if (listener) set.delete(listener);
    if (listener && set.size > 0) return;
    this.channelListeners.delete(channel);
    const cluster = this.#cluster;
    if (!cluster?.isOpen) return;
    try {
      if (isShardedChannel(channel)) await cluster.sUnsubscribe(channel);
      else await cluster.unsubscribe(channel);
    } catch (err) {
      throw translateError(err, isShardedChannel(channel) ? "SUNSUBSCRIBE" : "UNSUBSCRIBE");
    }
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

  close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closing = this.#doClose(options.timeoutMs ?? 1000);
    return this.#closing;
  }

  async #doClose(timeoutMs: number): Promise<void> {
    const cluster = this.#cluster;
    const wasReady = this.isReady;
    this.setStatus(ConnectionStatus.CLOSED);
    this.failConnectWaits(new ConnectionError("the Redis connection was closed while connecting"));
    this.channelListeners.clear();
    if (cluster && wasReady) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([
        cluster.close().catch(() => undefined),
        new Promise<void>((r) => {
          t = setTimeout(r, timeoutMs);
        }),
      ]);
      clearTimeout(t);
    }
    if (cluster?.isOpen) cluster.destroy();
    this.#deadlines.rejectAll(new ConnectionError("the Redis connection was closed"));
  }

  destroy(): void {
    this.setStatus(ConnectionStatus.CLOSED);
    this.failConnectWaits(new ConnectionError("the Redis connection was destroyed while connecting"));
    this.channelListeners.clear();
    const cluster = this.#cluster;
    if (cluster?.isOpen) cluster.destroy();
    this.#deadlines.rejectAll(new ConnectionError("the Redis connection was destroyed"));
    this.#closing ??= Promise.resolve();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
