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

import { ConnectionError } from "../errors.js";
import { createSentinel } from "./driver.js";
import { DriverConnection } from "./driver-connection.js";
import { handshakeOptions, type ResolvedSentinelOptions, socketOptions } from "./options.js";
import {
  type CommandOptions,
  ConnectionStatus,
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
 * the sentinels and connects; `stop()`/`close()`/`destroy()` share one memoised end.
 */
export class SentinelConnection extends DriverConnection<NodeRedisSentinel> implements RedisHandle {
  /** This connection follows a primary through Sentinel failovers. */
  readonly topology = "sentinel" as const;
  readonly #options: ResolvedSentinelOptions;
  readonly #clientName: string | undefined;

  constructor(options: SentinelConnectionOptions) {
    super();
    this.#options = options.redis;
    this.#clientName = options.clientName ?? options.redis.clientName;
  }

  /** Resolved options (no secrets in `display`). */
  get options(): Readonly<ResolvedSentinelOptions> {
    return this.#options;
  }

  protected get settings(): ResolvedSentinelOptions {
    return this.#options;
  }

  protected makeDriver(): NodeRedisSentinel {
    return this.#makeSentinel();
  }

  protected openDriver(sentinel: NodeRedisSentinel): Promise<unknown> {
    return sentinel.connect();
  }

  protected async closeDriver(sentinel: NodeRedisSentinel, graceful: boolean): Promise<void> {
    await (graceful ? sentinel.close() : sentinel.destroy()).catch(() => undefined);
  }

  protected sendRaw<T>(sentinel: NodeRedisSentinel, args: readonly RedisArg[]): Promise<T> {
    return sentinel.sendCommand(false, toArgs(args)) as Promise<T>;
  }

  protected execMulti(
    sentinel: NodeRedisSentinel,
    commands: ReadonlyArray<readonly RedisArg[]>,
  ): Promise<unknown[]> {
    const m = sentinel.multi();
    for (const c of commands) m.addCommand(false, toArgs(c));
    return m.exec() as Promise<unknown[]>;
  }

  protected connectFailure(cause: unknown): ConnectionError {
    return new ConnectionError(`could not find the primary through the sentinels at ${this.display}`, {
      cause: translateError(cause),
    });
  }

  #makeSentinel(): NodeRedisSentinel {
    const o = this.#options;
    // Shared by every node and sentinel: no TLS server name derived from one host (each connection is
    // checked against its own).
    const nodeClientOptions: Record<string, unknown> = {
      socket: socketOptions(o, undefined),
      ...handshakeOptions(o.username, o.password, this.#clientName),
    };
    if (o.db !== 0) nodeClientOptions.database = o.db;
    const sentinelClientOptions: Record<string, unknown> = {
      socket: socketOptions(o, undefined),
      ...handshakeOptions(o.sentinelUsername, o.sentinelPassword, undefined),
    };
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
      if (this.driver === sentinel) this.setStatus(ConnectionStatus.READY);
    });
    sentinel.on("reconnecting", () => {
      if (this.driver === sentinel) this.setStatus(ConnectionStatus.RECONNECTING);
    });
    sentinel.on("topology-change", (ev: { type?: string }) => {
      // A new primary: report the gap (`down`); the client emits `ready` once it is connected there.
      if (ev?.type === "MASTER_CHANGE" && this.driver === sentinel && this.isReady)
        this.setStatus(
          ConnectionStatus.RECONNECTING,
          new ConnectionError(`Sentinel ${this.#options.name}: the primary changed (failover)`),
        );
    });
    return sentinel;
  }

  async publish(channel: string, message: string | Buffer, options?: CommandOptions): Promise<number> {
    return this.command<number>(["PUBLISH", channel, message], { timeoutMs: options?.timeoutMs ?? 0 });
  }

  protected async subscribeChannel(
    channel: string,
    onMessage: (message: string, channel: string) => void,
  ): Promise<void> {
    // The sentinel client's pub/sub proxy follows the primary through failovers.
    await this.requireDriver().subscribe(channel, onMessage);
  }

  protected async unsubscribeChannel(channel: string): Promise<void> {
    const sentinel = this.driver;
    if (sentinel?.isOpen) await sentinel.unsubscribe(channel);
  }

  /** A new, unconnected connection to the same primary (for blocking commands such as BLMOVE). */
  duplicate(clientName?: string): SentinelConnection {
    const name = clientName ?? this.#clientName;
    return new SentinelConnection({
      redis: this.#options,
      ...(name === undefined ? {} : { clientName: name }),
    });
  }
}
