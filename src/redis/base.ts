/**
 * What every connection topology shares: the status machine and its events, bounded `connect()` waits,
 * the one way down (`stop()`, `close()`, `destroy()`, `closed()`: the contract of `src/lifecycle.ts`)
 * and the channel → listeners table that pub/sub messages are dispatched through.
 *
 * @module
 */

import { EventEmitter } from "node:events";
import { ConnectionError, RedisReplyError, type RedmeshError } from "../errors.js";
import {
  Lifecycle,
  LifeState,
  type LifeStateValue,
  type StopContext,
  type StopOptions,
  type Stoppable,
} from "../lifecycle.js";
import type { LuaScript } from "./lua-script.js";
import {
  type CommandOptions,
  ConnectionStatus,
  type ConnectionStatusValue,
  type MessageListener,
  type RedisArg,
  type RedisConnectionEvents,
  translateError,
} from "./types.js";

/** Default of `close()`/`stop()`'s `timeoutMs`: how long pending replies may take before the sockets go. */
const CLOSE_TIMEOUT_MS = 1000;

/** Base class of the standalone, Cluster and Sentinel connections. */
export abstract class ConnectionBase extends EventEmitter<RedisConnectionEvents> implements Stoppable {
  #status: ConnectionStatusValue = ConnectionStatus.IDLE;
  #everReady = false;
  /** Rejecters of pending `connect()` waits, failed at once by `close()`/`destroy()`. */
  readonly #connectWaits = new Set<(err: RedmeshError) => void>();
  // Status stays the state (connect() may retry, `reconnecting` has no LifeState): this runs only the stop.
  readonly #life = new Lifecycle("the Redis connection");
  /** Channel → listeners. The first listener of a channel subscribes it, the last one unsubscribes. */
  protected readonly channelListeners = new Map<string, Set<MessageListener>>();

  /** A printable description of where this connects, without secrets. */
  abstract get display(): string;

  /** Send one command; resolves with the raw reply (see `RedisLike.command`). */
  abstract command<T = unknown>(args: readonly RedisArg[], options?: CommandOptions): Promise<T>;

  /** Throw the typed "not open" error when commands cannot be sent at all (before connect, after close). */
  protected abstract assertOpen(): void;

  /** Subscribe the driver to a channel whose first listener just arrived; `onMessage` dispatches. */
  protected abstract subscribeChannel(
    channel: string,
    onMessage: (message: string, channel: string) => void,
  ): Promise<void>;

  /** Unsubscribe the driver from a channel whose last listener just left (when it is connected). */
  protected abstract unsubscribeChannel(channel: string): Promise<void>;

  /** Run a Lua script by SHA, loading it with `EVAL` on `NOSCRIPT` (a new or promoted server). */
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
      if (err instanceof RedisReplyError && err.message.startsWith("NOSCRIPT"))
        return this.command<T>(["EVAL", script.source, ...tail], options);
      throw err;
    }
  }

  /** Subscribe a listener; the first listener of a channel subscribes it on the driver. */
  async subscribe(channel: string, listener: MessageListener): Promise<void> {
    this.assertOpen();
    let set = this.channelListeners.get(channel);
    if (set) {
      set.add(listener);
      return;
    }
    set = new Set([listener]);
    this.channelListeners.set(channel, set);
    try {
      await this.subscribeChannel(channel, (message, ch) => this.dispatch(ch, message));
    } catch (err) {
      // Not subscribed: forget the channel, so the next subscribe tries again.
      if (this.channelListeners.get(channel) === set) this.channelListeners.delete(channel);
      throw translateError(err, "SUBSCRIBE");
    }
  }

  /** Remove a listener (or every listener) from a channel; the last one unsubscribes it. */
  async unsubscribe(channel: string, listener?: MessageListener): Promise<void> {
    const set = this.channelListeners.get(channel);
    if (!set) return;
    if (listener) set.delete(listener);
    if (listener && set.size > 0) return;
    this.channelListeners.delete(channel);
    try {
      await this.unsubscribeChannel(channel);
    } catch (err) {
      throw translateError(err, "UNSUBSCRIBE");
    }
  }

  /**
   * Several commands, each sent on its own through {@link command} (the driver batches what is written in
   * one tick): one entry per command, its reply or its typed error.
   */
  protected async pipelineEach(
    commands: ReadonlyArray<readonly RedisArg[]>,
    options?: CommandOptions,
  ): Promise<unknown[]> {
    const settled = await Promise.allSettled(commands.map((c) => this.command(c, options)));
    return settled.map((s) => (s.status === "fulfilled" ? s.value : s.reason));
  }

  /** Current status. */
  get status(): ConnectionStatusValue {
    return this.#status;
  }

  /** True when commands can be sent now. */
  get isReady(): boolean {
    return this.#status === ConnectionStatus.READY;
  }

  /**
   * Life-cycle state, from {@link status}: `connecting` is `starting`, `ready` and `reconnecting` are
   * `running`, and `closed` is `stopping` until the sockets are gone, then `stopped`.
   */
  get state(): LifeStateValue {
    const life = this.#life.state;
    if (life !== LifeState.IDLE) return life;
    if (this.#status === ConnectionStatus.IDLE) return LifeState.IDLE;
    return this.#status === ConnectionStatus.CONNECTING ? LifeState.STARTING : LifeState.RUNNING;
  }

  /** True once `stop()`/`close()`/`destroy()` ran (a getter, so TypeScript re-reads it after an `await`). */
  protected get isClosed(): boolean {
    return this.#status === ConnectionStatus.CLOSED;
  }

  /** The one place the status changes; emits `ready` / `down`. A closed connection stays closed. */
  protected setStatus(next: ConnectionStatusValue, error?: RedmeshError): void {
    const prev = this.#status;
    if (prev === next || prev === ConnectionStatus.CLOSED) return;
    this.#status = next;
    if (next === ConnectionStatus.READY) {
      const reconnect = this.#everReady;
      this.#everReady = true;
      this.emit("ready", { reconnect });
    } else if (next === ConnectionStatus.RECONNECTING && prev === ConnectionStatus.READY) {
      this.emit("down", { error: error ?? new ConnectionError("connection to Redis lost") });
    }
  }

  /** Report a connection-level problem to `error` listeners (never thrown, never unhandled). */
  protected reportError(e: RedmeshError): void {
    if (this.#status !== ConnectionStatus.CLOSED && this.listenerCount("error") > 0) this.emit("error", e);
  }

  /**
   * Wait until `ready`, at most `timeoutMs`. With `failFast` the first reported error rejects at once.
   * Rejects with a typed `ConnectionError` naming {@link display}.
   */
  protected waitReady(timeoutMs: number, signal?: AbortSignal, failFast = false): Promise<void> {
    if (this.isReady) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      let lastError: RedmeshError | undefined;
      const onReady = () => done();
      const onError = (e: RedmeshError) => {
        lastError = e;
        if (failFast)
          done(
            new ConnectionError(`could not connect to Redis at ${this.display}: ${e.message}`, { cause: e }),
          );
      };
      const onAbort = () => done(new ConnectionError("connect aborted", { cause: signal?.reason }));
      const timer = setTimeout(
        () =>
          done(
            new ConnectionError(
              `could not connect to Redis at ${this.display} within ${timeoutMs} ms${
                lastError ? `: ${lastError.message}` : ""
              }`,
              lastError ? { cause: lastError } : {},
            ),
          ),
        timeoutMs,
      );
      const done = (err?: RedmeshError) => {
        clearTimeout(timer);
        this.#connectWaits.delete(done);
        this.off("ready", onReady);
        this.off("error", onError);
        signal?.removeEventListener("abort", onAbort);
        if (err) reject(err);
        else resolve();
      };
      this.on("ready", onReady);
      this.on("error", onError);
      this.#connectWaits.add(done);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }

  /**
   * Stop: with `force`, {@link destroy} (pending commands are rejected now, like node-redis'
   * `destroy()`); else {@link close} (pending replies get at most `timeoutMs`, default 1000 ms, then
   * the sockets are destroyed). `stop`, `close` and `destroy` share one memoised outcome: every call
   * returns the same promise, which never rejects, and a later `force` cuts a graceful stop short.
   */
  stop(options: StopOptions & { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? CLOSE_TIMEOUT_MS;
    return this.#life.stop((ctx) => this.#down(ctx, timeoutMs), options);
  }

  /**
   * Close gracefully: pending replies get at most `timeoutMs`, then the sockets are destroyed.
   * Idempotent: every call returns the same promise as `stop()` (also after `destroy()`).
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    return this.stop(options);
  }

  /**
   * Close at once: pending commands and `connect()` waits are rejected and the sockets destroyed
   * before this returns. `stop({ force: true })` without the promise; also cuts a `close()` short.
   */
  destroy(): void {
    void this.stop({ force: true });
  }

  /**
   * Resolves once the connection is closed and its sockets are gone. Always with `undefined`: the
   * driver reconnects for as long as the connection is open (its reconnect strategy never gives up),
   * so a connection only goes down when asked.
   */
  closed(): Promise<Error | undefined> {
    return this.#life.closed();
  }

  /** Same as `stop()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  /**
   * The one way down (runs once): closed status, connect waits failed, then unless forced a drain
   * of pending replies, then the sockets destroyed. Up to the teardown nothing is awaited when
   * forced, so `destroy()` has done its work when it returns.
   */
  async #down(ctx: StopContext, timeoutMs: number): Promise<void> {
    const wasReady = this.isReady;
    this.setStatus(ConnectionStatus.CLOSED);
    this.#failConnectWaits(
      new ConnectionError(`the Redis connection was ${ctx.force ? "destroyed" : "closed"} while connecting`),
    );
    this.channelListeners.clear();
    let gone: Promise<void> | undefined;
    const teardown = () => {
      gone ??= this.teardown(
        new ConnectionError(`the Redis connection was ${ctx.force ? "destroyed" : "closed"}`),
      );
      return gone;
    };
    if (!ctx.force && wasReady) {
      // A forced stop given during the drain tears down at once, not when the drain gives up.
      ctx.signal.addEventListener("abort", teardown, { once: true });
      await this.drain(timeoutMs, ctx.signal);
      ctx.signal.removeEventListener("abort", teardown);
    }
    await teardown();
  }

  /**
   * Let pending replies arrive and close the sockets gracefully, at most `timeoutMs` or until
   * `signal` aborts (a forced stop). Never rejects. Runs at most once, only when the connection was ready.
   */
  protected abstract drain(timeoutMs: number, signal: AbortSignal): Promise<void>;

  /**
   * Destroy every socket and reject every pending command with `err`, synchronously; resolves once
   * the driver has let go of everything. Never rejects. Runs once, after {@link drain} if any.
   */
  protected abstract teardown(err: ConnectionError): Promise<void>;

  /** Fail every pending `connect()` wait now (closing while connecting). */
  #failConnectWaits(err: RedmeshError): void {
    for (const fail of [...this.#connectWaits]) fail(err);
  }

  /** Deliver one message to a channel's listeners; a throwing listener cannot break the others. */
  protected dispatch(channel: string, message: string): void {
    const set = this.channelListeners.get(channel);
    if (!set) return;
    for (const l of set) {
      try {
        l(message, channel);
      } catch (err) {
        this.emit("error", translateError(err));
      }
    }
  }
}
