/**
 * The connection layer: the only module that imports the Redis driver (node-redis, `@redis/client`).
 *
 * Capabilities talk to Redis through the small {@link RedisConnection} interface: raw commands,
 * auto-pipelined batches, MULTI, Lua scripts by SHA, publish/subscribe, and a `duplicate()` for
 * blocking commands. Every driver error is translated into a typed redmesh error here.
 *
 * Why node-redis: it is Redis's own client, speaks Cluster, Sentinel and sharded pub/sub, and with its
 * per-command timer turned off it is the faster of the two Node clients for pub/sub request/reply with many calls in flight
 * (the raw rows of docs/benchmarks.md "RPC"). We keep one deadline per operation instead of one timer per command.
 *
 * @module
 */

import type { RedisClientType } from "@redis/client";
import { settleWithin } from "../async.js";
import { ConnectionError, ErrorCode, RedisReplyError, StateError, TimeoutError } from "../errors.js";
import { ConnectionBase } from "./base.js";
import { DeadlineTracker } from "./deadlines.js";
import { ClientMulti, RedisClient } from "./driver.js";
import {
  handshakeOptions,
  type RedisOptions,
  type ResolvedStandaloneOptions,
  resolveRedisOptions,
  socketOptions,
} from "./options.js";
import {
  type CommandOptions,
  ConnectionStatus,
  type RedisArg,
  type RedisHandle,
  toArgs,
  translateError,
} from "./types.js";

/** Options of {@link createRedisConnection}. */
export interface RedisConnectionOptions {
  /** Where to connect. @default "redis://127.0.0.1:6379" */
  redis?: RedisOptions;
  /** `CLIENT SETNAME` value (shown by `CLIENT LIST`). */
  clientName?: string;
}

type NodeRedisClient = RedisClientType;

/**
 * node-redis' base client class without its ~500 generated command methods. `createClient()` builds a
 * class with every command attached, and rebuilds it whenever the options differ (every connection of
 * a service has its own client name), and every build stays on the heap of an idle process.
 * redmesh sends everything through `sendCommand`, so the base class is all it needs; MULTI gets the
 * plain transaction class (addCommand + exec).
 */
type NoExtensions = Record<string, never>;
class LeanRedisClient extends RedisClient<NoExtensions, NoExtensions, NoExtensions, 3, NoExtensions> {}
// The transaction class `multi()` instantiates; the generated one would attach every command again.
Object.defineProperty(LeanRedisClient.prototype, "Multi", { value: ClientMulti });

/**
 * A standalone Redis connection: one command socket plus, on first subscribe, one subscriber socket.
 * Constructors do no I/O; `connect()` connects; `stop()`/`close()`/`destroy()` share one memoised end.
 */
export class RedisConnection extends ConnectionBase implements RedisHandle {
  /** This connection speaks to one standalone server. */
  readonly topology = "standalone" as const;
  readonly #options: ResolvedStandaloneOptions;
  readonly #clientName: string | undefined;
  #client: NodeRedisClient | undefined;
  #subscriber: NodeRedisClient | undefined;
  /**
   * The subscriber lost its socket after having been ready: replies and messages cannot arrive, so
   * the connection is not `ready` (and messaging `PUBLISH` fails fast) until it has subscribed again.
   */
  #subscriberDown = false;
  #subscriberConnecting: Promise<NodeRedisClient> | undefined;
  readonly #deadlines = new DeadlineTracker();
  /** When the command socket last delivered a reply (epoch ms). */
  #lastReplyAt = 0;
  #probeTimer: NodeJS.Timeout | undefined;
  /** Connections torn down by the stall watchdog (command + subscriber). */
  #recycled = 0;
  /** A command that started at `sentAt` ran out of time: if nothing came back since, the socket is dead. */
  readonly #onStall = (sentAt: number) => {
    const stall = this.#options.stallTimeoutMs;
    if (stall <= 0 || this.status !== ConnectionStatus.READY) return;
    if (this.#lastReplyAt >= sentAt) return; // something came back since: slow, not dead
    // Commands with short deadlines (a blocking read) each expire long before `stall`: measure the
    // silence from the first unanswered one.
    if (this.#lastReplyAt > this.#silentSince) this.#silentSince = sentAt;
    else this.#silentSince = Math.min(this.#silentSince, sentAt);
    if (Date.now() - this.#silentSince >= stall) this.#recycleCommandClient(stall);
  };
  /** Send time of the first command that expired with no reply since (see #onStall). */
  #silentSince = 0;

  constructor(options: RedisConnectionOptions = {}) {
    super();
    this.#options = resolveRedisOptions(options.redis);
    this.#clientName = options.clientName ?? this.#options.clientName;
  }

  /** Resolved options (no secrets in `display`). */
  get options(): Readonly<ResolvedStandaloneOptions> {
    return this.#options;
  }

  /** Where this connects, without secrets. */
  get display(): string {
    return this.#options.display;
  }

  #makeClient(role: "cmd" | "sub"): NodeRedisClient {
    const o = this.#options;
    const name = this.#clientName ? `${this.#clientName}${role === "sub" ? ":sub" : ""}` : undefined;
    const clientOpts: Record<string, unknown> = {
      socket: { host: o.host, port: o.port, ...socketOptions(o, o.host) },
      // RESP3 (node-redis' default): maps arrive as plain objects (HGETALL → Record<string, string>).
      RESP: 3,
      // Fail fast while disconnected instead of queueing unboundedly (DESIGN.md §4 "Redis faults").
      disableOfflineQueue: true,
      // No timer per command (it costs throughput): the caller's deadline bounds each operation.
      commandOptions: { timeout: 0 },
      ...handshakeOptions(o.username, o.password, name),
    };
    if (o.db !== 0) clientOpts.database = o.db;
    const client = new LeanRedisClient(
      clientOpts as ConstructorParameters<typeof LeanRedisClient>[0],
    ) as unknown as NodeRedisClient;
    // node-redis emits 'error' for every socket problem; an unhandled 'error' event would crash the
    // process, so it is always handled here and translated.
    // A client replaced by the stall watchdog may still report its own end: it no longer speaks for us.
    const current = () => (role === "cmd" ? this.#client : this.#subscriber) === client;
    client.on("error", (err: unknown) => {
      if (!current()) return;
      const e = translateError(err);
      this.reportError(e);
      if (role === "cmd" && this.status === ConnectionStatus.READY)
        this.setStatus(ConnectionStatus.RECONNECTING, e);
    });
    if (role === "sub") {
      // node-redis subscribes every channel again before it reports `ready`.
      client.on("ready", () => {
        if (!current()) return;
        this.#subscriberDown = false;
        if (this.#client?.isReady) this.setStatus(ConnectionStatus.READY);
      });
      client.on("reconnecting", () => {
        if (!current()) return;
        this.#subscriberDown = true;
        this.setStatus(
          ConnectionStatus.RECONNECTING,
          new ConnectionError("the subscriber connection to Redis was lost"),
        );
      });
    }
    if (role === "cmd") {
      client.on("ready", () => {
        if (current()) {
          this.#lastReplyAt = Date.now();
          // Ready again only once the subscriber is back too: a request sent before would lose its reply.
          if (!this.#subscriberDown) this.setStatus(ConnectionStatus.READY);
        }
      });
      client.on("reconnecting", () => {
        if (current()) this.setStatus(ConnectionStatus.RECONNECTING);
      });
      client.on("end", () => {
        if (current() && this.status !== ConnectionStatus.CLOSED)
          this.setStatus(ConnectionStatus.RECONNECTING);
      });
    }
    return client;
  }

  /**
   * Connect the command socket. Resolves once Redis answered the handshake; rejects with a typed
   * error (`ERR_REDIS_UNAVAILABLE`, `ERR_TIMEOUT`) after `connectTimeoutMs` without closing the
   * connection object (call `close()`). With `failFast`, the first connection error rejects at once
   * (for one-shot tools such as the CLI) instead of retrying until the deadline.
   */
  async connect(
    options: { timeoutMs?: number; signal?: AbortSignal; failFast?: boolean } = {},
  ): Promise<void> {
    if (this.status === ConnectionStatus.CLOSED) {
      throw new StateError(ErrorCode.NOT_RUNNING, "this Redis connection is closed");
    }
    if (this.#client) {
      if (this.isReady) return;
      await this.waitReady(
        options.timeoutMs ?? this.#options.connectTimeoutMs,
        options.signal,
        options.failFast,
      );
      return;
    }
    this.setStatus(ConnectionStatus.CONNECTING);
    const client = this.#makeClient("cmd");
    this.#client = client;
    // node-redis' connect() keeps retrying through reconnectStrategy; bound the wait ourselves.
    client.connect().catch(() => {
      /* reported through 'error'; the wait below gives the caller a typed error */
    });
    await this.waitReady(
      options.timeoutMs ?? this.#options.connectTimeoutMs,
      options.signal,
      options.failFast,
    );
  }

  #requireClient(): NodeRedisClient {
    const c = this.#client;
    if (!c || this.status === ConnectionStatus.CLOSED) {
      throw new StateError(ErrorCode.NOT_RUNNING, "the Redis connection is not open (call connect() first)");
    }
    return c;
  }

  #timeout(options: CommandOptions | undefined): number {
    return options?.timeoutMs ?? this.#options.commandTimeoutMs;
  }

  async command<T = unknown>(args: readonly RedisArg[], options?: CommandOptions): Promise<T> {
    const client = this.#requireClient();
    const timeout = this.#timeout(options);
    try {
      const run = client.sendCommand(toArgs(args)) as Promise<T>;
      const value = await (timeout > 0
        ? this.#deadlines.track(run, timeout, String(args[0]), this.#onStall)
        : run);
      this.#lastReplyAt = Date.now();
      return value;
    } catch (err) {
      this.#failed(err, String(args[0]));
    }
  }

  /** Rethrow a command's failure typed; an error reply still proves the socket answers. */
  #failed(err: unknown, command: string): never {
    const e = translateError(err, command);
    if (e instanceof RedisReplyError) this.#lastReplyAt = Date.now();
    throw e;
  }

  /** How many times the stall watchdog replaced a dead-but-open socket. */
  get recycledConnections(): number {
    return this.#recycled;
  }

  /**
   * Replace a command socket that stopped answering (see `stallTimeoutMs`). Its pending commands fail
   * with a typed error; the status goes to `reconnecting` (a `down` event) until the new socket is ready.
   */
  #recycleCommandClient(stall: number): void {
    const old = this.#client;
    if (!old || this.status === ConnectionStatus.CLOSED) return;
    this.#recycled++;
    const err = new ConnectionError(
      `Redis at ${this.#options.display} stopped answering for ${stall} ms on an open connection; reconnecting`,
    );
    const fresh = this.#makeClient("cmd");
    this.#client = fresh;
    this.setStatus(ConnectionStatus.RECONNECTING, err);
    if (this.listenerCount("error") > 0) this.emit("error", err);
    old.destroy();
    fresh.connect().catch(() => {
      /* reported through 'error'; node-redis keeps retrying */
    });
  }

  /** Probe the subscriber socket: pub/sub traffic alone cannot tell a quiet channel from a dead socket. */
  #startProbe(): void {
    const stall = this.#options.stallTimeoutMs;
    if (stall <= 0 || this.#probeTimer) return;
    this.#probeTimer = setInterval(
      () => {
        const sub = this.#subscriber;
        if (!sub?.isReady || this.status === ConnectionStatus.CLOSED) return;
        this.#deadlines.track(sub.sendCommand(["PING"]), stall, "PING (subscriber)").catch((e: unknown) => {
          if (e instanceof TimeoutError && this.#subscriber === sub) this.#recycleSubscriber(sub, stall);
        });
      },
      Math.max(50, Math.floor(stall / 2)),
    );
    this.#probeTimer.unref();
  }

  #recycleSubscriber(old: NodeRedisClient, stall: number): void {
    if (this.status === ConnectionStatus.CLOSED) return;
    this.#recycled++;
    this.#subscriber = undefined;
    this.#subscriberConnecting = undefined;
    if (this.listenerCount("error") > 0)
      this.emit(
        "error",
        new ConnectionError(`the subscriber connection stopped answering for ${stall} ms; reconnecting`),
      );
    old.destroy();
    const channels = [...this.channelListeners.keys()];
    void (async () => {
      // Retry until the new socket is up; every channel is subscribed again on it.
      while (this.status !== ConnectionStatus.CLOSED) {
        try {
          const sub = await this.#subscriberClient();
          for (const ch of channels)
            if (this.channelListeners.has(ch))
              await sub.subscribe(ch, (m: string, c: string) => this.dispatch(c, m));
          return;
        } catch {
          this.#subscriber = undefined;
          this.#subscriberConnecting = undefined;
          await new Promise((r) => setTimeout(r, this.#options.maxReconnectDelayMs).unref());
        }
      }
    })();
  }

  async pipeline(commands: ReadonlyArray<readonly RedisArg[]>, options?: CommandOptions): Promise<unknown[]> {
    const client = this.#requireClient();
    const timeout = this.#timeout(options);
    // node-redis writes every command issued in one tick in one batch: this is one round trip.
    const settled = await Promise.allSettled(
      commands.map((c) => {
        const run = client.sendCommand(toArgs(c));
        return timeout > 0 ? this.#deadlines.track(run, timeout, String(c[0]), this.#onStall) : run;
      }),
    );
    if (settled.some((r) => r.status === "fulfilled")) this.#lastReplyAt = Date.now();
    return settled.map((s, i) =>
      s.status === "fulfilled" ? s.value : translateError(s.reason, String(commands[i]?.[0])),
    );
  }

  async multi(commands: ReadonlyArray<readonly RedisArg[]>, options?: CommandOptions): Promise<unknown[]> {
    const client = this.#requireClient();
    const m = client.multi();
    for (const c of commands) m.addCommand(toArgs(c));
    const timeout = this.#timeout(options);
    try {
      const run = m.exec() as Promise<unknown[]>;
      const value =
        timeout > 0 ? await this.#deadlines.track(run, timeout, "MULTI", this.#onStall) : await run;
      this.#lastReplyAt = Date.now();
      return value;
    } catch (err) {
      throw translateError(err, "MULTI");
    }
  }

  publish(channel: string, message: string | Buffer, options?: CommandOptions): Promise<number> {
    const timeout = options?.timeoutMs ?? 0;
    if (timeout > 0) return this.command<number>(["PUBLISH", channel, message], { timeoutMs: timeout });
    // The hot path of messaging: not `async` and no `await`, one promise per PUBLISH besides the driver's.
    let client: NodeRedisClient;
    try {
      client = this.#requireClient();
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.#subscriberDown) {
      // What is sent now could not be answered: fail fast, like any command while Redis is away.
      return Promise.reject(
        new ConnectionError("the subscriber connection to Redis is reconnecting", {
          data: { command: "PUBLISH" },
        }),
      );
    }
    return (client.sendCommand(["PUBLISH", channel, message]) as Promise<number>).then(
      this.#published,
      this.#publishFailed,
    );
  }

  readonly #published = (receivers: number): number => {
    this.#lastReplyAt = Date.now();
    return receivers;
  };

  readonly #publishFailed = (err: unknown): never => this.#failed(err, "PUBLISH");

  async #subscriberClient(): Promise<NodeRedisClient> {
    if (this.#subscriber?.isReady) return this.#subscriber;
    if (!this.#subscriberConnecting) {
      this.#subscriberConnecting = (async () => {
        const sub = this.#makeClient("sub");
        this.#subscriber = sub;
        this.#startProbe();
        sub.connect().catch(() => {
          /* reported through 'error' */
        });
        await new Promise<void>((resolve, reject) => {
          const t = setTimeout(() => {
            sub.off("ready", ok);
            reject(new ConnectionError(`could not open a subscriber connection to ${this.#options.display}`));
          }, this.#options.connectTimeoutMs);
          const ok = () => {
            clearTimeout(t);
            resolve();
          };
          if (sub.isReady) ok();
          else sub.once("ready", ok);
        });
        return sub;
      })();
      this.#subscriberConnecting.catch(() => {
        this.#subscriberConnecting = undefined;
      });
    }
    return this.#subscriberConnecting;
  }

  protected assertOpen(): void {
    this.#requireClient();
  }

  protected async subscribeChannel(
    channel: string,
    onMessage: (message: string, channel: string) => void,
  ): Promise<void> {
    const sub = await this.#subscriberClient();
    // node-redis resubscribes its channels by itself after a reconnect.
    await sub.subscribe(channel, onMessage);
  }

  protected async unsubscribeChannel(channel: string): Promise<void> {
    const sub = this.#subscriber;
    if (sub?.isReady) await sub.unsubscribe(channel);
  }

  /** A new, unconnected connection with the same options (for blocking commands such as BLMOVE). */
  duplicate(clientName?: string): RedisConnection {
    const o = this.#options;
    const name = clientName ?? this.#clientName;
    return new RedisConnection({
      redis: {
        host: o.host,
        port: o.port,
        username: o.username,
        password: o.password,
        db: o.db,
        tls: o.tls ?? false,
        connectTimeoutMs: o.connectTimeoutMs,
        maxReconnectDelayMs: o.maxReconnectDelayMs,
        commandTimeoutMs: o.commandTimeoutMs,
        stallTimeoutMs: o.stallTimeoutMs,
      },
      ...(name === undefined ? {} : { clientName: name }),
    });
  }

  #clients(): NodeRedisClient[] {
    return [this.#client, this.#subscriber].filter((c): c is NodeRedisClient => c !== undefined);
  }

  protected async drain(timeoutMs: number, signal: AbortSignal): Promise<void> {
    await Promise.all(
      this.#clients()
        .filter((c) => c.isReady)
        .map((c) => settleWithin(c.close(), timeoutMs, signal)),
    );
  }

  protected async teardown(err: ConnectionError): Promise<void> {
    clearInterval(this.#probeTimer);
    const clients = this.#clients();
    this.#cancelConnect(clients);
    // Not only while `isOpen`: a close() that ran out of time leaves node-redis reporting a socket closed
    // that it still holds.
    for (const c of clients) c.destroy();
    this.#deadlines.rejectAll(err);
  }

  /**
   * Closing while connecting: destroy a socket that shows up afterwards. node-redis 6 stores the
   * socket it is connecting only once the TCP connect resolves, so a `destroy()` in that window misses
   * it and the socket would then finish its handshake and stay open (keeping the process alive).
   */
  #cancelConnect(clients: NodeRedisClient[]): void {
    for (const c of clients) if (!c.isReady) c.once("connect", () => c.destroy());
  }
}
