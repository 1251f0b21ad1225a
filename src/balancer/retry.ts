/**
 * Retries with exponential backoff and full jitter ("Exponential Backoff And Jitter", AWS
 * Architecture Blog, 2015: full jitter spreads retries best and finishes the work soonest), only
 * where retrying is safe:
 *
 * - the request certainly was not processed (no instance, the publish had no receiver, an open
 *   circuit, a full bulkhead, or any error whose `data.delivered === false`): always retried;
 * - any other retryable error (a timeout, a lost instance): retried only for idempotent requests,
 *   because the first attempt may have run;
 * - everything else (aborted by the caller, validation, application errors): never.
 *
 * @module
 */

import { AbortError, ErrorCode, isRedmeshError, RedmeshError, ValidationError } from "../errors.js";
import type { RandomSource } from "./types.js";

/** Codes meaning "the request was not delivered to any handler", safe to retry always. */
export const NOT_DELIVERED_CODES: ReadonlySet<string> = new Set([
  ErrorCode.NO_INSTANCE,
  ErrorCode.CIRCUIT_OPEN,
  ErrorCode.BULKHEAD_FULL,
]);

/** Options of {@link RetryPolicy}. */
export interface RetryPolicyOptions {
  /** Attempts in all, the first included (1: no retry). @default 3 */
  maxAttempts?: number;
  /** Backoff cap before jitter for the first retry. @default 50 */
  baseDelayMs?: number;
  /** Largest backoff. @default 2000 */
  maxDelayMs?: number;
  /** Growth factor per retry. @default 2 */
  multiplier?: number;
  /** Random source for the jitter. @default Math.random */
  random?: RandomSource;
}

/** Default retry settings. */
export const DEFAULT_RETRY_OPTIONS = Object.freeze({
  maxAttempts: 3,
  baseDelayMs: 50,
  maxDelayMs: 2000,
  multiplier: 2,
});

/** What {@link RetryPolicy.shouldRetry} needs to know about the request. */
export interface RetryContext {
  /** The request may run twice without harm. */
  idempotent?: boolean;
  /** Attempts made so far (1 after the first failure). Omit to ignore `maxAttempts`. */
  attempt?: number;
}

/** Options of {@link RetryPolicy.run}. */
export interface RetryRunOptions {
  idempotent?: boolean;
  /** Cancels the waits between attempts (and is passed to each attempt). */
  signal?: AbortSignal;
  /** Epoch ms after which no further attempt starts (a call's deadline). */
  deadline?: number;
  /** Called before each retry's wait. */
  onRetry?: (info: { attempt: number; delayMs: number; error: unknown }) => void;
}

/** Backoff, the retry decision and an abortable sleep. */
export class RetryPolicy {
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
  readonly multiplier: number;
  readonly #random: RandomSource;

  constructor(options: RetryPolicyOptions = {}) {
    const d = DEFAULT_RETRY_OPTIONS;
    const o = { ...d, ...options };
    const check = (name: string, ok: boolean, rule: string) => {
      if (!ok) {
        throw new ValidationError(
          `retry option ${name} must be ${rule}, got ${String(o[name as keyof typeof o])}`,
          {
            code: ErrorCode.INVALID_OPTIONS,
          },
        );
      }
    };
    check("maxAttempts", Number.isInteger(o.maxAttempts) && o.maxAttempts >= 1, "an integer >= 1");
    check("baseDelayMs", Number.isFinite(o.baseDelayMs) && o.baseDelayMs >= 0, "a number >= 0");
    check(
      "maxDelayMs",
      Number.isFinite(o.maxDelayMs) && o.maxDelayMs >= o.baseDelayMs,
      "a number >= baseDelayMs",
    );
    check("multiplier", Number.isFinite(o.multiplier) && o.multiplier >= 1, "a number >= 1");
    this.maxAttempts = o.maxAttempts;
    this.baseDelayMs = o.baseDelayMs;
    this.maxDelayMs = o.maxDelayMs;
    this.multiplier = o.multiplier;
    this.#random = options.random ?? Math.random;
  }

  /** The backoff cap before the retry that follows `attempt` failed attempts (no jitter). */
  ceiling(attempt: number): number {
    return Math.min(this.maxDelayMs, this.baseDelayMs * this.multiplier ** Math.max(0, attempt - 1));
  }

  /** Full jitter: a uniform delay in `[0, ceiling(attempt))`. */
  delay(attempt: number): number {
    return Math.floor(this.#random() * this.ceiling(attempt));
  }

  /** Whether `err` may be retried (see the module comment), within `maxAttempts` when `attempt` is given. */
  shouldRetry(err: unknown, ctx: RetryContext = {}): boolean {
    if (ctx.attempt !== undefined && ctx.attempt >= this.maxAttempts) return false;
    return isRetrySafe(err, ctx.idempotent ?? false);
  }

  /**
   * Run `fn` until it succeeds, an error is not safe to retry, attempts run out, the deadline would
   * pass during the wait, or `signal` fires (AbortError). Rejects with the last attempt's error.
   */
  async run<T>(
    fn: (attempt: number, signal: AbortSignal | undefined) => Promise<T>,
    options: RetryRunOptions = {},
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      if (options.signal?.aborted) throw new AbortError(undefined, { cause: options.signal.reason });
      try {
        return await fn(attempt, options.signal);
      } catch (err) {
        if (!this.shouldRetry(err, { idempotent: options.idempotent ?? false, attempt })) throw err;
        const delayMs = this.delay(attempt);
        if (options.deadline !== undefined && Date.now() + delayMs >= options.deadline) throw err;
        options.onRetry?.({ attempt, delayMs, error: err });
        await abortableSleep(delayMs, options.signal);
      }
    }
  }
}

/** The retry-safety rule of the module comment, without attempt counting. */
export function isRetrySafe(err: unknown, idempotent: boolean): boolean {
  if (!(err instanceof RedmeshError)) return false;
  if (err.code === ErrorCode.ABORTED) return false;
  if (NOT_DELIVERED_CODES.has(err.code) || err.data?.delivered === false) return true;
  return idempotent && err.retryable;
}

/**
 * Wait `ms`, or reject with an {@link AbortError} (cause: the signal's reason) as soon as `signal`
 * fires. Leaves no timer or listener behind either way.
 */
export function abortableSleep(ms: number, signal?: AbortSignal): Promise<void> {
  if (signal?.aborted) return Promise.reject(new AbortError(undefined, { cause: signal.reason }));
  return new Promise<void>((resolve, reject) => {
    const onAbort = () => {
      clearTimeout(timer);
      reject(new AbortError(undefined, { cause: signal?.reason }));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Create a {@link RetryPolicy}. */
export function createRetryPolicy(options?: RetryPolicyOptions): RetryPolicy {
  return new RetryPolicy(options);
}

/** True when `err` is a redmesh error saying the request was not delivered (safe to retry). */
export function isNotDelivered(err: unknown): boolean {
  return isRedmeshError(err) && (NOT_DELIVERED_CODES.has(err.code) || err.data?.delivered === false);
}
