/**
 * A connection to a primary watched by Redis Sentinel (node-redis' sentinel client behind the same
 * {@link RedisHandle} interface as a standalone server).
 *
 * The client asks the sentinels where the primary is, watches them for failovers, and moves its
 * command and subscriber connections to the new primary; commands sent meanwhile wait for it (bounded
 * by their deadline) and subscriptions are re-established there. A failover shows as a `down` event
 * followed by `ready` with `reconnect: true`, so a service re-checks its registration and queues.
 *
 * @module
 */

import { createSentinel } from "@redis/client";
import { ConnectionError, ErrorCode, RedisReplyError, StateError } from "../errors.js";
import { ConnectionBase } from "./base.js";
import { DeadlineTracker } from "./deadlines.js";
import type { LuaScript } from "./lua-script.js";
import { type ResolvedSentinelOptions, toTlsConnectionOptions } from "./options.js";
import {
  type CommandOptions,
  ConnectionStatus,
  type MessageListener,
  type RedisArg,
  type RedisHandle,
  toArgs,
  translateError,
} from "./types.js";

type NodeRedisSentinel = ReturnType<typeof createSentinel>;

/** Options of a {@link SentinelConnection}. */
export interface SentinelConnectionOptions {
  /** Resolved Sentinel options (see `resolveTopology`). */
  redis: ResolvedSentinelOptions;
  /** Client name shown by `CLIENT LIST` on the primary. */
  clientName?: string;
}

/**
 * A connection to the current primary of a Sentinel set-up. Constructors do no I/O; `connect()` asks
 * the sentinels and connects; `close()` is idempotent.
 */
export class SentinelConnection extends ConnectionBase implements RedisHandle {
  /** This connection follows a primary through Sentinel failovers. */
  readonly topology = "sentinel" as const;
  /** The stall watchdog is a standalone feature; the sentinel client reconnects by itself. */
  readonly recycledConnections = 0;
  readonly #options: ResolvedSentinelOptions;
  readonly #clientName: string | undefined;
  #sentinel: NodeRedisSentinel | undefined;
  #connecting: Promise<void> | undefined;
  #closing: Promise<void> | undefined;
  readonly #deadlines = new DeadlineTracker();

  constructor(options: SentinelConnectionOptions) {
    super();
    this.#options = options.redis;
    this.#clientName = options.clientName ?? options.redis.clientName;
  }

  /** Resolved options (no secrets in `display`). */
  get options(): Readonly<ResolvedSentinelOptions> {
    return this.#options;
  }

  get display(): string {
    return this.#options.display;
  }

  #makeSentinel(): NodeRedisSentinel {
    const o = this.#options;
    const socket = (host: string): Record<string, unknown> => ({
      connectTimeout: o.connectTimeoutMs,
      keepAlive: true,
      noDelay: true,
      reconnectStrategy: (retries: number) =>
        Math.min(50 * 2 ** Math.min(retries, 10), o.maxReconnectDelayMs),
      ...(o.tls ? { tls: true, ...toTlsConnectionOptions(host, o.tls) } : {}),
    });
    const nodeClientOptions: Record<string, unknown> = { socket: socket(o.sentinels[0]?.host ?? "") };
    if (o.username !== undefined) nodeClientOptions.username = o.username;
    if (o.password !== undefined) nodeClientOptions.password = o.password;
    if (o.db !== 0) nodeClientOptions.database = o.db;
    if (this.#clientName) nodeClientOptions.name = this.#clientName;
    const sentinelClientOptions: Record<string, unknown> = { socket: socket(o.sentinels[0]?.host ?? "") };
    if (o.sentinelUsername !== undefined) sentinelClientOptions.username = o.sentinelUsername;
    if (o.sentinelPassword !== undefined) sentinelClientOptions.password = o.sentinelPassword;
    const sentinel = createSentinel({
      name: o.name,
      sentinelRootNodes: o.sentinels.map((s) => ({ host: s.host, port: s.port })),
      nodeClientOptions,
      sentinelClientOptions,
      masterPoolSize: 1,
      RESP: 3,
      // One deadline per operation (set by the caller) instead of a timer per command.
      commandOptions: { timeout: 0 },
      // Re-ask the sentinels now and then even without a failover notice.
      scanInterval: 2000,
    } as Parameters<typeof createSentinel>[0]) as NodeRedisSentinel;
    // An unhandled 'error' event would crash the process: every one is translated and reported.
    sentinel.on("error", (err: unknown) => this.reportError(translateError(err)));
    sentinel.on("client-error", (err: unknown) => this.reportError(translateError(err)));
    sentinel.on("ready", () => {
      if (this.#sentinel === sentinel) this.setStatus(ConnectionStatus.READY);
    });
    sentinel.on("reconnecting", () => {
      if (this.#sentinel === sentinel) this.setStatus(ConnectionStatus.RECONNECTING);
    });
    sentinel.on("topology-change", (ev: { type?: string }) => {
      // A new primary: report the gap (`down`); the client emits `ready` once it is connected there.
      if (ev?.type === "MASTER_CHANGE" && this.#sentinel === sentinel && this.isReady)
        this.setStatus(
          ConnectionStatus.RECONNECTING,
          new ConnectionError(`Sentinel ${this.#options.name}: the primary changed (failover)`),
        );
    });
    return sentinel;
  }

  /**
   * Ask the sentinels for the primary and connect. Retries until `timeoutMs` (default
   * `connectTimeoutMs`), or rejects at the first failure with `failFast`.
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
    if (!this.#connecting && !this.#sentinel) {
      this.setStatus(ConnectionStatus.CONNECTING);
      this.#connecting = this.#connectLoop().finally(() => {
        this.#connecting = undefined;
      });
    }
    await wait;
  }

  async #connectLoop(): Promise<void> {
    let attempt = 0;
    while (!this.closed) {
      const sentinel = this.#makeSentinel();
      this.#sentinel = sentinel;
      try {
        await sentinel.connect();
        if (this.closed) await sentinel.destroy().catch(() => undefined);
        else this.setStatus(ConnectionStatus.READY);
        return;
      } catch (err) {
        if (this.#sentinel === sentinel) this.#sentinel = undefined;
        this.reportError(
          new ConnectionError(`could not find the primary through the sentinels at ${this.display}`, {
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

  #requireSentinel(): NodeRedisSentinel {
    const s = this.#sentinel;
    if (!s || this.status === ConnectionStatus.CLOSED)
      throw new StateError(ErrorCode.NOT_RUNNING, "the Redis connection is not open (call connect() first)");
    return s;
  }

  #timeout(options: CommandOptions | undefined): number {
    return options?.timeoutMs ?? this.#options.commandTimeoutMs;
  }

  async command<T = unknown>(args: readonly RedisArg[], options?: CommandOptions): Promise<T> {
    const sentinel = this.#requireSentinel();
    const timeout = this.#timeout(options);
    try {
      const run = sentinel.sendCommand(false, toArgs(args)) as Promise<T>;
      return await (timeout > 0 ? this.#deadlines.track(run, timeout, String(args[0])) : run);
    } catch (err) {
      throw translateError(err, String(args[0]));
    }
  }

  async pipeline(commands: ReadonlyArray<readonly RedisArg[]>, options?: CommandOptions): Promise<unknown[]> {
    const settled = await Promise.allSettled(commands.map((c) => this.command(c, options)));
    return settled.map((s) => (s.status === "fulfilled" ? s.value : s.reason));
  }

  async multi(commands: ReadonlyArray<readonly RedisArg[]>, options?: CommandOptions): Promise<unknown[]> {
    const m = this.#requireSentinel().multi();
    for (const c of commands) m.addCommand(false, toArgs(c));
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
      // A promoted replica may not have the script cached yet.
      if (err instanceof RedisReplyError && err.message.startsWith("NOSCRIPT"))
        return this.command<T>(["EVAL", script.source, ...tail], options);
      throw err;
    }
  }

  async publish(channel: string, message: string | Buffer, options?: CommandOptions): Promise<number> {
    return this.command<number>(["PUBLISH", channel, message], { timeoutMs: options?.timeoutMs ?? 0 });
  }

  async subscribe(channel: string, listener: MessageListener): Promise<void> {
    const sentinel = this.#requireSentinel();
    let set = this.channelListeners.get(channel);
    if (set) {
      set.add(listener);
      return;
    }
    set = new Set([listener]);
    this.channelListeners.set(channel, set);
    try {
      // The sentinel client's pub/sub proxy follows the primary through failovers.
      await sentinel.subscribe(channel, (message: string, ch: string) => this.dispatch(ch, message));
    } catch (err) {
      this.channelListeners.delete(channel);
      throw translateError(err, "SUBSCRIBE");
    }
  }

  async unsubscribe(channel: string, listener?: MessageListener): Promise<void> {
    const set = this.channelListeners.get(channel);
    if (!set) return;
    if (listener) set.delete(listener);
    if (listener && set.size > 0) return;
    this.channelListeners.delete(channel);
    const sentinel = this.#sentinel;
    if (!sentinel?.isOpen) return;
    try {
      await sentinel.unsubscribe(channel);
    } catch (err) {
      throw translateError(err, "UNSUBSCRIBE");
    }
  }

  /** A new, unconnected connection to the same primary (for blocking commands such as BLMOVE). */
  duplicate(clientName?: string): SentinelConnection {
    const name = clientName ?? this.#clientName;
    return new SentinelConnection({
      redis: this.#options,
      ...(name === undefined ? {} : { clientName: name }),
    });
  }

  close(options: { timeoutMs?: number } = {}): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closing = this.#doClose(options.timeoutMs ?? 1000);
    return this.#closing;
  }

  async #doClose(timeoutMs: number): Promise<void> {
    const sentinel = this.#sentinel;
    const wasReady = this.isReady;
    this.setStatus(ConnectionStatus.CLOSED);
    this.failConnectWaits(new ConnectionError("the Redis connection was closed while connecting"));
    this.channelListeners.clear();
    if (sentinel) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([
        (wasReady ? sentinel.close() : sentinel.destroy()).catch(() => undefined),
        new Promise<void>((r) => {
          t = setTimeout(r, timeoutMs);
        }),
      ]);
      clearTimeout(t);
      await sentinel.destroy().catch(() => undefined);
    }
    this.#deadlines.rejectAll(new ConnectionError("the Redis connection was closed"));
  }

  destroy(): void {
    this.setStatus(ConnectionStatus.CLOSED);
    this.failConnectWaits(new ConnectionError("the Redis connection was destroyed while connecting"));
    this.channelListeners.clear();
    this.#sentinel?.destroy().catch(() => undefined);
    this.#deadlines.rejectAll(new ConnectionError("the Redis connection was destroyed"));
    this.#closing ??= Promise.resolve();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}
