/**
 * `runBalanced()`: the loop every balanced request runs — pick an instance, tell the picker the
 * request started, run the attempt, tell the picker how it ended, and on a failure that is safe to
 * retry pick *another* instance after a backoff. Messaging and RPC can use it as is, or copy its
 * order of calls: that order is what keeps outstanding counts and circuit breakers right.
 *
 * @module
 */

import { NoInstanceError } from "../errors.js";
import type { Instance } from "../registry/index.js";
import { RetryPolicy } from "./retry.js";
import type { InstancePicker } from "./types.js";

/** Options of {@link runBalanced}. */
export interface RunBalancedOptions<T> {
  /** The balancer (or any picker). */
  picker: InstancePicker;
  /** Target service. */
  service: string;
  /** The live instances, asked again before each attempt (instances come and go between retries). */
  candidates: () => readonly Instance[] | Promise<readonly Instance[]>;
  /** Send the request to `instance`; resolve with its result or reject with a typed error. */
  attempt: (instance: Instance, attempt: number, signal: AbortSignal | undefined) => Promise<T>;
  /** Affinity key. */
  key?: string;
  /** The request may run twice without harm (lets timeouts and lost instances be retried). */
  idempotent?: boolean;
  /** Retry policy. @default no retry (`maxAttempts: 1`) */
  retry?: RetryPolicy;
  /** Cancels the waits between attempts; passed to each attempt. */
  signal?: AbortSignal;
  /** Epoch ms after which no further attempt starts. */
  deadline?: number;
}

const NO_RETRY = new RetryPolicy({ maxAttempts: 1 });

/**
 * Run a request on a balanced instance, with retries where {@link RetryPolicy.shouldRetry} allows.
 * Each retry excludes the instances already tried; when that leaves none, it may go back to one of
 * them (a lone instance can still answer an idempotent retry).
 *
 * @throws NoInstanceError when no instance may take the request, CircuitOpenError when every
 *   instance's circuit is open, AbortError when `signal` fires during a wait, or the last attempt's
 *   error.
 */
export async function runBalanced<T>(options: RunBalancedOptions<T>): Promise<T> {
  const { picker, service, key } = options;
  const tried = new Set<string>();
  const policy = options.retry ?? NO_RETRY;
  return policy.run(
    async (n, signal) => {
      const list = await options.candidates();
      const ctx = key === undefined ? { service } : { service, key };
      let target: Instance | undefined;
      try {
        target = picker.pick(list, { ...ctx, exclude: tried });
      } catch (err) {
        // Every untried instance has an open circuit: one already tried may still answer.
        if (tried.size === 0) throw err;
      }
      if (!target && tried.size > 0) target = picker.pick(list, ctx);
      if (!target)
        throw new NoInstanceError(service, { data: { candidates: list.length, tried: tried.size } });
      tried.add(target.id);
      picker.onStart?.(service, target.id);
      const t0 = performance.now();
      try {
        const result = await options.attempt(target, n, signal);
        picker.onEnd?.(service, target.id, { ok: true, latencyMs: performance.now() - t0 });
        return result;
      } catch (error) {
        picker.onEnd?.(service, target.id, { ok: false, latencyMs: performance.now() - t0, error });
        throw error;
      }
    },
    {
      idempotent: options.idempotent ?? false,
      ...(options.signal ? { signal: options.signal } : {}),
      ...(options.deadline === undefined ? {} : { deadline: options.deadline }),
    },
  );
}
