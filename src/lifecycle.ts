/**
 * The one life-cycle contract of every long-lived redmesh object (services, gateways, queues,
 * dashboards, Redis connections), after NATS.js and node-redis:
 *
 * - states as an `as const` object ({@link LifeState}), changed in one place;
 * - `start()` at most once (a second call is a typed `ERR_ALREADY_STARTED`);
 * - `stop(options?)` memoised and idempotent: every call returns the same promise, which never
 *   rejects; `stop({ force: true })` does not wait for in-flight work (node-redis's `destroy()`), and
 *   also cuts short a graceful stop already under way;
 * - `closed()` resolves once the object is fully down, with the reason when it went down unasked (a
 *   failed start), `undefined` after a requested stop;
 * - `[Symbol.asyncDispose]` is `stop()`, for `await using`.
 *
 * {@link Lifecycle} holds that state machine; {@link StepList} is the ordered list of parts an object
 * brings up in order and takes down in reverse, the same list for a failed start and for a stop.
 *
 * @module
 */

import { ErrorCode, StateError } from "./errors.js";
import { type Logger, silentLogger } from "./logger.js";

/** Life-cycle states. */
export const LifeState = {
  /** Created, not started. */
  IDLE: "idle",
  /** `start()` is running. */
  STARTING: "starting",
  /** Started and taking work. */
  RUNNING: "running",
  /** `stop()` is running (or a failed start is being undone). */
  STOPPING: "stopping",
  /** Fully down: nothing (timer, socket) is left. */
  STOPPED: "stopped",
} as const;
/** Union of life-cycle states. */
export type LifeStateValue = (typeof LifeState)[keyof typeof LifeState];

/** Options of `stop()`. */
export interface StopOptions {
  /**
   * Do not wait for in-flight work: pending work is rejected or handed back now, connections are
   * destroyed instead of closed. Given while a graceful stop runs, it cuts that stop's waits short.
   * @default false
   */
  force?: boolean;
}

/** What every long-lived redmesh object offers to end its life. */
export interface Stoppable {
  /** Current state. */
  readonly state: LifeStateValue;
  /** Stop (memoised; never rejects). */
  stop(options?: StopOptions): Promise<void>;
  /** Resolves when the object is fully down: the reason if it went down unasked, else `undefined`. */
  closed(): Promise<Error | undefined>;
  /** Same as `stop()`. */
  [Symbol.asyncDispose](): Promise<void>;
}

/** Handed to the code that takes an object down. */
export interface StopContext {
  /** The stop was forced (from the start, or escalated since: read it after each wait). */
  readonly force: boolean;
  /** Aborts when the stop is forced: pass it to waits so that a forced stop cuts them short. */
  readonly signal: AbortSignal;
  /** The object was running (not merely starting, or never started) when the stop began. */
  readonly wasRunning: boolean;
}

/** The state machine behind {@link Stoppable}; objects hold one and forward to it. */
export class Lifecycle {
  readonly #what: string;
  #state: LifeStateValue = LifeState.IDLE;
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  readonly #force = new AbortController();
  #reason: Error | undefined;
  #resolveClosed!: (reason: Error | undefined) => void;
  readonly #closed = new Promise<Error | undefined>((resolve) => {
    this.#resolveClosed = resolve;
  });

  /** `what` names the object in error messages, e.g. `service "orders"`. */
  constructor(what: string) {
    this.#what = what;
  }

  /** Current state. */
  get state(): LifeStateValue {
    return this.#state;
  }

  /** True while running or stopping (work already accepted may still finish). */
  get live(): boolean {
    return this.#state === LifeState.RUNNING || this.#state === LifeState.STOPPING;
  }

  /**
   * Run a start: IDLE → STARTING → RUNNING when `up` resolves. When `up` fails, `undo` takes down
   * what came up, the object is STOPPED, `closed()` resolves with the error and the returned promise
   * rejects with it. Throws `StateError` `ERR_ALREADY_STARTED` unless IDLE.
   */
  start(up: () => Promise<void>, undo: (ctx: StopContext) => Promise<void>): Promise<void> {
    if (this.#state !== LifeState.IDLE) {
      return Promise.reject(
        new StateError(
          ErrorCode.ALREADY_STARTED,
          `${this.#what} was already started (state: ${this.#state})`,
        ),
      );
    }
    this.#state = LifeState.STARTING;
    const run = (async () => {
      try {
        await up();
      } catch (err) {
        this.#reason = err instanceof Error ? err : new Error(String(err));
        this.#state = LifeState.STOPPING;
        this.#force.abort();
        try {
          await undo(this.#context(false));
        } catch {
          // `undo` logs its own failures; the start's error is the one that matters.
        }
        this.#state = LifeState.STOPPED;
        this.#stopping ??= Promise.resolve();
        this.#resolveClosed(this.#reason);
        throw err;
      }
      this.#state = LifeState.RUNNING;
    })();
    this.#starting = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /**
   * Stop once: the first call runs `down`, every call returns its promise, which never rejects.
   * `force` (in this call or a later one) aborts the context's signal. A stop during `start()` waits
   * for the start to end first; after a failed start there is nothing left to do.
   */
  stop(down: (ctx: StopContext) => Promise<void>, options: StopOptions = {}): Promise<void> {
    if (options.force) this.#force.abort();
    if (this.#stopping) return this.#stopping;
    const starting = this.#starting;
    if (this.#state === LifeState.STARTING && starting) {
      // A start that fails meanwhile undoes itself: then there is nothing left to stop.
      this.#stopping = starting.then(() => (this.#state === LifeState.STOPPED ? undefined : this.#run(down)));
    } else this.#stopping = this.#run(down);
    return this.#stopping;
  }

  /** Resolves when fully down: the reason if the object went down unasked, else `undefined`. */
  closed(): Promise<Error | undefined> {
    return this.#closed;
  }

  /** A `StateError` `ERR_NOT_RUNNING` naming the object and its state. */
  notRunning(): StateError {
    return new StateError(ErrorCode.NOT_RUNNING, `${this.#what} is not running (state: ${this.#state})`);
  }

  /** Runs `down` (the state is STOPPING from the synchronous part on). */
  async #run(down: (ctx: StopContext) => Promise<void>): Promise<void> {
    const wasRunning = this.#state === LifeState.RUNNING;
    this.#state = LifeState.STOPPING;
    try {
      await down(this.#context(wasRunning));
    } catch {
      // `down` logs its own failures; a stop never rejects.
    }
    this.#state = LifeState.STOPPED;
    this.#resolveClosed(this.#reason);
  }

  #context(wasRunning: boolean): StopContext {
    const force = this.#force;
    return {
      get force() {
        return force.signal.aborted;
      },
      signal: force.signal,
      wasRunning,
    };
  }
}

/** One part of an object, brought up by `up` and taken down by `down`. */
export interface Step {
  /** Shown in the log line of a failed `down`. */
  readonly name: string;
  /** Bring the part up (may throw: the start fails, and the parts already up are taken down). */
  readonly up?: () => Promise<void> | void;
  /** Take it down. Failures are logged and skipped: the other parts still go down. */
  readonly down?: (ctx: StopContext) => Promise<unknown> | unknown;
}

/**
 * Parts brought up in list order and taken down in reverse: one list serves both a stop and the undo
 * of a start that failed half-way (only the parts that came up are taken down).
 */
export class StepList {
  readonly #steps: readonly Step[];
  readonly #logger: Logger;
  #up = 0;

  constructor(steps: readonly Step[], logger: Logger = silentLogger) {
    this.#steps = steps;
    this.#logger = logger;
  }

  /** The names, in order (for docs and tests). */
  get names(): string[] {
    return this.#steps.map((s) => s.name);
  }

  /** Bring every part up, in order; rejects with the first failure (the parts up so far stay up). */
  async up(): Promise<void> {
    for (const s of this.#steps) {
      // Counted before `up` runs: a part that failed half-way is taken down too.
      this.#up++;
      await s.up?.();
    }
  }

  /** Take down every part that was brought up (or began to come up), last first. */
  async down(ctx: StopContext): Promise<void> {
    const n = this.#up;
    this.#up = 0;
    for (let i = n - 1; i >= 0; i--) {
      const s = this.#steps[i] as Step;
      if (!s.down) continue;
      try {
        await s.down(ctx);
      } catch (err) {
        this.#logger.warn({ err, step: s.name }, "stop step failed");
      }
    }
  }
}
