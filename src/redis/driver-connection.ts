/**
 * The life cycle the Cluster and Sentinel connections share: both wrap one node-redis object (a
 * cluster or sentinel client) that manages its own sockets, so connecting, sending with a deadline,
 * MULTI and closing look the same; only how the driver is built and addressed differs.
 *
 * @module
 */

import { settleWithin } from "../async.js";
import { type ConnectionError, ErrorCode, StateError } from "../errors.js";
import { ConnectionBase } from "./base.js";
import { DeadlineTracker } from "./deadlines.js";
import { type ResolvedCommonOptions, reconnectDelayMs } from "./options.js";
import { type CommandOptions, ConnectionStatus, type RedisArg, translateError } from "./types.js";

/** Base class of connections built on one self-managing node-redis client object `D`. */
export abstract class DriverConnection<D> extends ConnectionBase {
  /** The stall watchdog is a standalone feature; these drivers reconnect their nodes themselves. */
  readonly recycledConnections = 0;
  /** The current driver object (replaced when a connect attempt fails). */
  protected driver: D | undefined;
  #connecting: Promise<void> | undefined;
  readonly #deadlines = new DeadlineTracker();

  /** The resolved settings (timeouts, backoff, display). */
  protected abstract get settings(): ResolvedCommonOptions;
  /** Build a new, unconnected driver and attach its event handlers. */
  protected abstract makeDriver(): D;
  /** Connect a driver; rejects when no node could be reached. */
  protected abstract openDriver(driver: D): Promise<unknown>;
  /**
   * Close a driver gracefully (pending replies first) or at once (sockets destroyed and pending
   * commands failed before the first `await`, also after a graceful close that ran out of time).
   * Never rejects.
   */
  protected abstract closeDriver(driver: D, graceful: boolean): Promise<void>;
  /** Send one command through the driver (`timeoutMs` is the command's deadline, 0 for none). */
  protected abstract sendRaw<T>(
    driver: D,
    args: readonly RedisArg[],
    timeoutMs: number,
    options: CommandOptions | undefined,
  ): Promise<T>;
  /** Run commands in MULTI/EXEC through the driver. */
  protected abstract execMulti(driver: D, commands: ReadonlyArray<readonly RedisArg[]>): Promise<unknown[]>;
  /** What a failed connect attempt is reported as. */
  protected abstract connectFailure(cause: unknown): ConnectionError;

  get display(): string {
    return this.settings.display;
  }

  /**
   * Connect. Retries until `timeoutMs` (default `connectTimeoutMs`), or rejects at the first failure
   * with `failFast`; a rejected wait leaves the connection trying (call `close()`).
   */
  async connect(
    options: { timeoutMs?: number; signal?: AbortSignal; failFast?: boolean } = {},
  ): Promise<void> {
    if (this.isClosed) throw new StateError(ErrorCode.NOT_RUNNING, "this Redis connection is closed");
    if (this.isReady) return;
    const wait = this.waitReady(
      options.timeoutMs ?? this.settings.connectTimeoutMs,
      options.signal,
      options.failFast,
    );
    if (!this.#connecting && !this.driver) {
      this.setStatus(ConnectionStatus.CONNECTING);
      this.#connecting = this.#connectLoop().finally(() => {
        this.#connecting = undefined;
      });
    }
    await wait;
  }

  async #connectLoop(): Promise<void> {
    let attempt = 0;
    while (!this.isClosed) {
      const driver = this.makeDriver();
      this.driver = driver;
      try {
        await this.openDriver(driver);
        if (this.isClosed) await this.closeDriver(driver, false);
        else this.setStatus(ConnectionStatus.READY);
        return;
      } catch (err) {
        if (this.driver === driver) this.driver = undefined;
        this.reportError(this.connectFailure(err));
        const delay = reconnectDelayMs(attempt++, this.settings.maxReconnectDelayMs);
        await new Promise((r) => setTimeout(r, delay).unref());
      }
    }
  }

  /** The driver, or the typed "not open" error. */
  protected requireDriver(): D {
    const d = this.driver;
    if (!d || this.isClosed)
      throw new StateError(ErrorCode.NOT_RUNNING, "the Redis connection is not open (call connect() first)");
    return d;
  }

  protected assertOpen(): void {
    this.requireDriver();
  }

  /** Bound `run` by `timeoutMs` (0: no deadline) and translate its failure into a typed error. */
  protected async withDeadline<T>(run: Promise<T>, timeoutMs: number, what: string): Promise<T> {
    try {
      return await (timeoutMs > 0 ? this.#deadlines.track(run, timeoutMs, what) : run);
    } catch (err) {
      throw translateError(err, what);
    }
  }

  async command<T = unknown>(args: readonly RedisArg[], options?: CommandOptions): Promise<T> {
    const driver = this.requireDriver();
    const timeout = options?.timeoutMs ?? this.settings.commandTimeoutMs;
    const what = String(args[0]);
    let run: Promise<T>;
    try {
      run = this.sendRaw<T>(driver, args, timeout, options);
    } catch (err) {
      throw translateError(err, what);
    }
    return this.withDeadline(run, timeout, what);
  }

  pipeline(commands: ReadonlyArray<readonly RedisArg[]>, options?: CommandOptions): Promise<unknown[]> {
    // node-redis writes the commands issued in one tick in one batch per node: one round trip each.
    return this.pipelineEach(commands, options);
  }

  async multi(commands: ReadonlyArray<readonly RedisArg[]>, options?: CommandOptions): Promise<unknown[]> {
    const driver = this.requireDriver();
    let run: Promise<unknown[]>;
    try {
      run = this.execMulti(driver, commands);
    } catch (err) {
      throw translateError(err, "MULTI");
    }
    return this.withDeadline(run, options?.timeoutMs ?? this.settings.commandTimeoutMs, "MULTI");
  }

  protected async drain(timeoutMs: number, signal: AbortSignal): Promise<void> {
    const driver = this.driver;
    if (driver) await settleWithin(this.closeDriver(driver, true), timeoutMs, signal);
  }

  protected async teardown(err: ConnectionError): Promise<void> {
    const driver = this.driver;
    const gone = driver ? this.closeDriver(driver, false) : undefined;
    this.#deadlines.rejectAll(err);
    await gone;
  }
}
