/**
 * A bulkhead: at most `maxConcurrent` pieces of work at once, at most `maxQueued` waiting for a slot,
 * and a typed {@link BulkheadFullError} beyond that — so one slow dependency or one flood of requests
 * cannot take every resource of a process.
 *
 * @module
 */

import { AbortError, BulkheadFullError, ErrorCode, TimeoutError, ValidationError } from "../errors.js";

/** Options of {@link Bulkhead}. */
export interface BulkheadOptions {
  /** Work allowed at once. */
  maxConcurrent: number;
  /** Work allowed to wait for a slot (0: reject as soon as every slot is taken). @default 0 */
  maxQueued?: number;
  /** Name shown in errors and stats (e.g. the handler's method). @default "bulkhead" */
  name?: string;
}

/** Options of one wait for a slot. */
export interface BulkheadAcquireOptions {
  /** Give up waiting (AbortError) when this fires. */
  signal?: AbortSignal;
  /** Give up waiting (TimeoutError) after this long. */
  timeoutMs?: number;
}

/** Counters of a {@link Bulkhead}. */
export interface BulkheadStats {
  name: string;
  maxConcurrent: number;
  maxQueued: number;
  /** Slots in use now. */
  active: number;
  /** Waiters now. */
  queued: number;
  /** Acquisitions granted since creation. */
  acquired: number;
  /** Rejections with BulkheadFullError since creation. */
  rejected: number;
}

/** Gives back a slot. Calling it more than once has no further effect. */
export type BulkheadRelease = () => void;

interface Waiter {
  grant: (release: BulkheadRelease) => void;
  cleanup: () => void;
}

/** Limits concurrency, with an optional bounded FIFO queue. */
export class Bulkhead {
  /** Name shown in errors and stats. */
  readonly name: string;
  readonly #max: number;
  readonly #maxQueued: number;
  #active = 0;
  readonly #queue: Waiter[] = [];
  #acquired = 0;
  #rejected = 0;

  constructor(options: BulkheadOptions) {
    const { maxConcurrent, maxQueued = 0, name = "bulkhead" } = options ?? ({} as BulkheadOptions);
    if (!Number.isInteger(maxConcurrent) || maxConcurrent < 1) {
      throw new ValidationError(
        `bulkhead maxConcurrent must be an integer >= 1, got ${String(maxConcurrent)}`,
        {
          code: ErrorCode.INVALID_OPTIONS,
        },
      );
    }
    if (!Number.isInteger(maxQueued) || maxQueued < 0) {
      throw new ValidationError(`bulkhead maxQueued must be an integer >= 0, got ${String(maxQueued)}`, {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    this.name = name;
    this.#max = maxConcurrent;
    this.#maxQueued = maxQueued;
  }

  /** Slots in use. */
  get active(): number {
    return this.#active;
  }

  /** Waiters. */
  get queued(): number {
    return this.#queue.length;
  }

  /** Take a slot now if one is free; `undefined` otherwise (never queues). */
  tryAcquire(): BulkheadRelease | undefined {
    if (this.#active >= this.#max) return undefined;
    return this.#take();
  }

  /**
   * Take a slot, waiting in the queue when every slot is taken and the queue has room.
   * @throws BulkheadFullError when every slot and queue place is taken (data: name, limits, counts)
   * @throws AbortError / TimeoutError when the wait is cancelled or runs out (the place is given back)
   */
  acquire(options: BulkheadAcquireOptions = {}): Promise<BulkheadRelease> {
    const now = this.tryAcquire();
    if (now) return Promise.resolve(now);
    if (this.#queue.length >= this.#maxQueued) {
      this.#rejected++;
      return Promise.reject(
        new BulkheadFullError(
          `bulkhead "${this.name}" is full (${this.#max} running, ${this.#queue.length} queued)`,
          {
            data: {
              name: this.name,
              maxConcurrent: this.#max,
              maxQueued: this.#maxQueued,
              active: this.#active,
            },
          },
        ),
      );
    }
    const { signal, timeoutMs } = options;
    if (signal?.aborted) return Promise.reject(new AbortError(undefined, { cause: signal.reason }));
    return new Promise<BulkheadRelease>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const leave = (err: Error) => {
        const i = this.#queue.indexOf(waiter);
        if (i >= 0) this.#queue.splice(i, 1);
        waiter.cleanup();
        reject(err);
      };
      const onAbort = () => leave(new AbortError(undefined, { cause: signal?.reason }));
      const waiter: Waiter = {
        grant: (release) => {
          waiter.cleanup();
          resolve(release);
        },
        cleanup: () => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      if (timeoutMs !== undefined) {
        timer = setTimeout(
          () => leave(new TimeoutError(`waited ${timeoutMs} ms for a slot of bulkhead "${this.name}"`)),
          timeoutMs,
        );
      }
      this.#queue.push(waiter);
    });
  }

  /** Run `fn` in a slot (see {@link acquire} for the errors); the slot is given back however it ends. */
  async run<T>(fn: () => T | Promise<T>, options?: BulkheadAcquireOptions): Promise<T> {
    const release = await this.acquire(options);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Counters. */
  stats(): BulkheadStats {
    return {
      name: this.name,
      maxConcurrent: this.#max,
      maxQueued: this.#maxQueued,
      active: this.#active,
      queued: this.#queue.length,
      acquired: this.#acquired,
      rejected: this.#rejected,
    };
  }

  #take(): BulkheadRelease {
    this.#active++;
    this.#acquired++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#active--;
      // Hand the slot straight to the oldest waiter (FIFO), so a burst of new arrivals cannot starve it.
      const next = this.#queue.shift();
      if (next) next.grant(this.#take());
    };
  }
}

/** Create a {@link Bulkhead}. */
export function createBulkhead(options: BulkheadOptions): Bulkhead {
  return new Bulkhead(options);
}
