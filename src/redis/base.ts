/**
 * What every connection topology shares: the status machine and its events, bounded `connect()` waits,
 * and the channel → listeners table that pub/sub messages are dispatched through.
 *
 * @module
 */

import { EventEmitter } from "node:events";
import { ConnectionError, RedisReplyError, type RedmeshError } from "../errors.js";
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

/** Base class of the standalone, Cluster and Sentinel connections. */
export abstract class ConnectionBase extends EventEmitter<RedisConnectionEvents> {
  #status: ConnectionStatusValue = ConnectionStatus.IDLE;
  #everReady = false;
  /** Rejecters of pending `connect()` waits, failed at once by `close()`/`destroy()`. */
  readonly #connectWaits = new Set<(err: RedmeshError) => void>();
  #closing: Promise<void> | undefined;
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

  /** True once `close()`/`destroy()` ran (a getter, so TypeScript re-reads it after an `await`). */
  protected get closed(): boolean {
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
   * Close gracefully: pending replies get at most `timeoutMs`, then the sockets are destroyed.
   * Idempotent: every call returns the same promise (also after `destroy()`).
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= this.doClose(options.timeoutMs ?? 1000);
    return this.#closing;
  }

  /** The graceful close behind {@link close} (runs once). */
  protected abstract doClose(timeoutMs: number): Promise<void>;

  /** `destroy()` ran: a later `close()` has nothing left to do. */
  protected markDestroyed(): void {
    this.#closing ??= Promise.resolve();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  /** Fail every pending `connect()` wait now (closing while connecting). */
  protected failConnectWaits(err: RedmeshError): void {
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
