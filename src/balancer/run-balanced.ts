/**
 * `runBalanced()`: the balancing loop ({@link BalancingLoop.run}) for one request, with a picker and a
 * candidate list of your own — for code outside a service that balances its own transport.
 *
 * @module
 */

import type { Instance } from "../registry/index.js";
import { BalancingLoop } from "./loop.js";
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
  /** Backoff and attempts in all (`maxAttempts`, redirects included). @default no retry (`maxAttempts: 1`) */
  retry?: RetryPolicy;
  /** Cancels the waits between attempts; passed to each attempt. */
  signal?: AbortSignal;
  /** Epoch ms after which no further attempt starts. */
  deadline?: number;
}

const NO_RETRY = new RetryPolicy({ maxAttempts: 1 });
const NOTHING_CACHED = () => undefined;
const NO_EVICTION = () => {};

/**
 * Run a request on a balanced instance under the loop's rules (docs/balancing.md "The balancing
 * loop"), at most `retry.maxAttempts` attempts in all.
 *
 * @throws NoInstanceError when no instance may take the request, CircuitOpenError when every
 *   instance's circuit is open, AbortError when `signal` fires during a wait, or the last attempt's
 *   error.
 */
export function runBalanced<T>(options: RunBalancedOptions<T>): Promise<T> {
  const policy = options.retry ?? NO_RETRY;
  const candidates = options.candidates;
  const loop = new BalancingLoop({
    picker: options.picker,
    retry: policy,
    redirects: policy.maxAttempts - 1,
    candidates: { cached: NOTHING_CACHED, load: async () => candidates(), evict: NO_EVICTION },
  });
  return loop.run({
    service: options.service,
    key: options.key,
    idempotent: options.idempotent ?? false,
    deadline: options.deadline ?? Number.POSITIVE_INFINITY,
    attempt: options.attempt,
    candidates,
    maxAttempts: policy.maxAttempts,
    ...(options.signal ? { signal: options.signal } : {}),
  });
}
