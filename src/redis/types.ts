/**
 * Types every connection topology shares, the interface capabilities talk to ({@link RedisLike}) and
 * the translation of driver errors into typed redmesh errors.
 *
 * @module
 */

import { ConnectionError, RedisReplyError, type RedmeshError, TimeoutError } from "../errors.js";
import type { StopOptions, Stoppable } from "../lifecycle.js";
import type { LuaScript } from "./lua-script.js";

/** An argument of a Redis command. */
export type RedisArg = string | Buffer | number;

/** Connection status, changed in one place (`#setStatus`). */
export const ConnectionStatus = {
  IDLE: "idle",
  CONNECTING: "connecting",
  READY: "ready",
  RECONNECTING: "reconnecting",
  CLOSED: "closed",
} as const;
/** Union of connection statuses. */
export type ConnectionStatusValue = (typeof ConnectionStatus)[keyof typeof ConnectionStatus];

/** Per-command options. */
export interface CommandOptions {
  /**
   * Deadline for this command in ms; `0` for none (the caller owns the deadline).
   * @default the connection's `commandTimeoutMs`
   */
  timeoutMs?: number;
  /**
   * Cluster only: send a keyless command (`CONFIG GET`, `INFO`…) to the master owning this key's slot
   * instead of any node, to ask about the node that holds that key. Ignored by other topologies and
   * by commands that carry their own key.
   */
  routeByKey?: string;
}

/** Listener for pub/sub messages. */
export type MessageListener = (message: string, channel: string) => void;

/** Events a {@link RedisConnection} emits. */
export interface RedisConnectionEvents {
  /**
   * Connected (first time or after a reconnect) and ready for commands; after a reconnect, also every
   * subscribed channel is subscribed again (a standalone connection waits for its subscriber too).
   */
  ready: [{ reconnect: boolean }];
  /**
   * The connection dropped (standalone: its command or its subscriber socket); commands fail fast until
   * `ready`, and so does a messaging `PUBLISH` while only the subscriber is away.
   */
  down: [{ error: RedmeshError }];
  /** A connection-level error (also reported through `down`); never thrown. */
  error: [RedmeshError];
}

/**
 * The small interface capabilities use, implemented by the standalone, Cluster and Sentinel
 * connections alike.
 */
export interface RedisLike {
  /** Current status. */
  readonly status: ConnectionStatusValue;
  /** Send one command; resolves with the raw RESP2 reply. */
  command<T = unknown>(args: readonly RedisArg[], options?: CommandOptions): Promise<T>;
  /**
   * Send several commands in one round trip (not atomic). Resolves with one entry per command: the
   * reply, or the typed error that command failed with.
   */
  pipeline(commands: ReadonlyArray<readonly RedisArg[]>, options?: CommandOptions): Promise<unknown[]>;
  /** MULTI/EXEC: all commands atomically. Rejects if any is rejected by Redis at queue time. */
  multi(commands: ReadonlyArray<readonly RedisArg[]>, options?: CommandOptions): Promise<unknown[]>;
  /** Run a Lua script by SHA, loading it on `NOSCRIPT`. Keys always go in `keys`. */
  script<T = unknown>(
    script: LuaScript,
    keys: readonly string[],
    args: readonly RedisArg[],
    options?: CommandOptions,
  ): Promise<T>;
  /** PUBLISH; resolves with the number of receivers. No deadline unless given (hot path). */
  publish(channel: string, message: string | Buffer, options?: CommandOptions): Promise<number>;
  /** Subscribe a listener to a channel (on a dedicated subscriber connection). Resubscribes after reconnects. */
  subscribe(channel: string, listener: MessageListener): Promise<void>;
  /** Remove a listener (or every listener) from a channel. */
  unsubscribe(channel: string, listener?: MessageListener): Promise<void>;
}

export function toArgs(args: readonly RedisArg[]): Array<string | Buffer> {
  const out: Array<string | Buffer> = new Array(args.length);
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    out[i] = typeof a === "number" ? String(a) : (a as string | Buffer);
  }
  return out;
}

/** Error replies that mean the server is temporarily unable to serve, not that the command is wrong. */
const TRANSIENT_REPLY_RE = /^(CLUSTERDOWN|TRYAGAIN|MASTERDOWN|LOADING|READONLY|NOREPLICAS)\b/;

/** Translate a driver error into a typed redmesh error. */
export function translateError(err: unknown, command?: string): RedmeshError {
  if (err instanceof ConnectionError || err instanceof RedisReplyError || err instanceof TimeoutError)
    return err;
  const e = err instanceof Error ? err : new Error(String(err));
  const name = e.constructor?.name ?? e.name;
  const what = command ? `Redis ${command}` : "Redis";
  switch (name) {
    case "ErrorReply":
    case "SimpleError":
    case "BlobError":
    case "MultiErrorReply":
      // Replies that mean "this server cannot serve you right now" (a Cluster failover in progress, a
      // demoted primary, a server loading its data set) are outages, not command errors: callers retry
      // them like a dropped connection.
      if (TRANSIENT_REPLY_RE.test(e.message))
        return new ConnectionError(`${what} unavailable: ${e.message}`, { cause: e });
      return new RedisReplyError(e.message, { cause: e, data: command ? { command } : {} });
    case "TimeoutError":
    case "CommandTimeoutDuringMaintenanceError":
    case "SocketTimeoutError":
    case "ConnectionTimeoutError":
      return new TimeoutError(`${what} timed out`, { cause: e });
    default:
      return new ConnectionError(`${what} unavailable: ${e.message}`, { cause: e });
  }
}

/** The topology a connection speaks to. */
export type RedisTopology = "standalone" | "cluster" | "sentinel";

/**
 * A whole connection, of any topology: {@link RedisLike} plus its life cycle (the {@link Stoppable}
 * contract: `state`, `stop()`, `closed()`, `await using`). What `createRedisConnection()` returns and
 * what services, the CLI, the gateway and the dashboard hold.
 */
export interface RedisHandle extends RedisLike, Stoppable {
  /** `standalone`, `cluster` (keys then need the `{<svc>}` hash tag) or `sentinel`. */
  readonly topology: RedisTopology;
  /** Where this connects, without secrets (for messages). */
  readonly display: string;
  /** True when commands can be sent now. */
  readonly isReady: boolean;
  /** How many dead-but-open sockets the stall watchdog replaced (standalone only; 0 elsewhere). */
  readonly recycledConnections: number;
  /**
   * Connect. Resolves once Redis answered; rejects with a typed error after `timeoutMs` (or at the
   * first error with `failFast`) without closing the connection object.
   */
  connect(options?: { timeoutMs?: number; signal?: AbortSignal; failFast?: boolean }): Promise<void>;
  /**
   * Stop: with `force` like {@link destroy}, else like {@link close}. `stop`, `close` and `destroy`
   * share one memoised outcome (one promise, never rejects); a later `force` cuts a close short.
   */
  stop(options?: StopOptions & { timeoutMs?: number }): Promise<void>;
  /**
   * Resolves once the connection is closed and its sockets are gone: `undefined`, as a connection only
   * goes down when asked (the driver never gives up reconnecting).
   */
  closed(): Promise<Error | undefined>;
  /** Close gracefully (pending replies get `timeoutMs`, default 1000 ms), then destroy. Idempotent. */
  close(options?: { timeoutMs?: number }): Promise<void>;
  /** Close at once, failing pending commands and `connect()` waits before it returns. */
  destroy(): void;
  /** A new, unconnected connection with the same settings (for blocking commands such as BLMOVE). */
  duplicate(clientName?: string): RedisHandle;
  on<K extends keyof RedisConnectionEvents>(
    event: K,
    listener: (...args: RedisConnectionEvents[K]) => void,
  ): this;
  once<K extends keyof RedisConnectionEvents>(
    event: K,
    listener: (...args: RedisConnectionEvents[K]) => void,
  ): this;
  off<K extends keyof RedisConnectionEvents>(
    event: K,
    listener: (...args: RedisConnectionEvents[K]) => void,
  ): this;
}
