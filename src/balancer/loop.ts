/**
 * The one balancing loop. Every request that goes to one instance of a service (an RPC call, a
 * message sent to a service, a gateway request) runs it:
 *
 *   pick (excluding the instances tried) → bulkhead → attempt → classify the outcome → retry decision
 *
 * with one rule per outcome (docs/balancing.md "The balancing loop" has the table):
 * - **gone** (the picked instance was not there: `PUBLISH` reached no receiver, the HTTP connection was
 *   refused) or **refused** (it answered "draining"): nothing ran, so the request goes to another
 *   instance at once, for every request, up to `redirects` times; a gone instance is evicted from the
 *   local discovery cache;
 * - **not run** (a full bulkhead, here or on the instance; no instance or every circuit open at pick
 *   time; `data.delivered === false`): retried after a backoff, for every request, within its
 *   `retries`;
 * - **may have run** (the instance was lost, a retryable remote error, an HTTP connection closed before
 *   the answer): retried after a backoff only when the request is idempotent, within its `retries`;
 * - anything else (success, the deadline, the caller's abort, Redis down, non-retryable errors) is
 *   final.
 * A retry prefers instances not tried yet and goes back to a tried one when none is left, so a
 * lone instance can still answer a retry; when no instance takes it, the request fails with the last
 * attempt's error (not a misleading "no instance"). Backoff is {@link RetryPolicy}'s full jitter, and
 * no retry starts past the request's deadline.
 *
 * The loop is synchronous on the hot path: a request is a {@link BalancedRequest} (RPC's pending
 * call extends it), the pick context is reused, and no closure or promise is made per attempt. The
 * gateway and {@link runBalanced} use the same steps through {@link BalancingLoop.run}, which awaits
 * each attempt.
 *
 * @module
 */

import {
  AbortError,
  BulkheadFullError,
  ErrorCode,
  NoInstanceError,
  RedmeshError,
  RemoteError,
  ValidationError,
} from "../errors.js";
import type { Instance } from "../registry/index.js";
import { Bulkhead } from "./bulkhead.js";
import { abortableSleep, isRetrySafe, RetryPolicy } from "./retry.js";
import type { InstancePicker } from "./types.js";

/** Where the loop finds the live instances of a service. */
export interface CandidateSource {
  /** The live instances from a local cache, or `undefined` when the service is not cached yet. */
  cached(service: string): readonly Instance[] | undefined;
  /** Read the live instances (a Redis round trip when not cached). */
  load(service: string): Promise<readonly Instance[]>;
  /** Forget an instance found gone (it will come back with its next heartbeat if it is alive). */
  evict(service: string, iid: string): void;
}

/** Options of {@link BalancingLoop}. */
export interface BalancingLoopOptions {
  /** Chooses the instances (a `Balancer`, or any picker). */
  picker: InstancePicker;
  /** The live instances. */
  candidates: CandidateSource;
  /** Backoff between retries; its `maxAttempts - 1` is the default `retries` of a request. @default DEFAULT_RETRY_OPTIONS */
  retry?: RetryPolicy;
  /** Other instances tried at once when the picked one is gone or refuses (draining). @default 3 */
  redirects?: number;
  /**
   * Most requests in flight from this loop to one service; beyond, an attempt is `ERR_BULKHEAD_FULL`
   * (not run: retried after a backoff within the request's retries). 0: no limit. @default 0
   */
  maxInFlightPerService?: number;
}

/** Why a request is sent again, as {@link BalancedRequest.onRetry} is told. */
export const RetryKind = {
  /** At once, to another instance: the picked one was gone or refused. */
  REDIRECT: "redirect",
  /** After a backoff. */
  BACKOFF: "backoff",
} as const;
/** Union of retry kinds. */
export type RetryKindValue = (typeof RetryKind)[keyof typeof RetryKind];

/** What a request tells the loop about itself. */
export interface BalancedRequestInit {
  /** Target service. */
  service: string;
  /** A given instance (`iid@svc`): no pick, no redirect; retries go to the same instance. */
  iid?: string;
  /** Affinity key for the picker. */
  key?: string | undefined;
  /** The request may run twice without harm (lets "may have run" outcomes be retried). @default false */
  idempotent?: boolean;
  /** Epoch ms after which no retry starts. @default +Infinity */
  deadline?: number;
  /** Retries after a backoff. @default the loop's policy's `maxAttempts - 1` */
  retries?: number;
}

const NO_DELAY = -1;

/**
 * One request's state in the loop. RPC's pending call and messaging's delivery extend it; the loop
 * drives it and calls {@link transmit} for each attempt and {@link reject} when it fails for good.
 */
export abstract class BalancedRequest {
  /** Target service. */
  readonly service: string;
  /** The instance of the current (or last) attempt; set by the loop unless `direct`. */
  iid: string;
  /** The instance was given by the caller. */
  readonly direct: boolean;
  /** Affinity key. */
  readonly key: string | undefined;
  /** May run twice without harm. */
  readonly idempotent: boolean;
  /** No retry starts after this (epoch ms). */
  readonly deadline: number;
  /** Backoff retries allowed. */
  readonly maxRetries: number;
  /** Backoff retries made. */
  retries = 0;
  /** Redirects made. */
  redirects = 0;
  /** Instances tried (created on the first retry). */
  exclude: Set<string> | undefined = undefined;
  /** True between the picker's `onStart` and `onEnd` of the current attempt. */
  sent = false;
  /** When the current attempt started (`performance.now()`, 0 when the picker learns no latency). */
  sentAt = 0;
  /** Set by the owner once the request resolved or rejected: the loop then leaves it alone. */
  settled = false;
  /** A backoff wait in progress. */
  timer: NodeJS.Timeout | undefined = undefined;
  /** Gives back the bulkhead slot of the current attempt. */
  release: (() => void) | undefined = undefined;
  /** The last attempt's error. */
  lastError: RedmeshError | undefined = undefined;

  /** The loop that drives this request. */
  readonly loop: BalancingLoop;

  constructor(loop: BalancingLoop, init: BalancedRequestInit) {
    this.loop = loop;
    this.service = init.service;
    this.iid = init.iid ?? "";
    this.direct = init.iid !== undefined && init.iid !== "";
    this.key = init.key;
    this.idempotent = init.idempotent ?? false;
    this.deadline = init.deadline ?? Number.POSITIVE_INFINITY;
    this.maxRetries = init.retries ?? loop.defaultRetries;
  }

  /**
   * Send the current attempt to `instance` (`undefined`: a direct target the cache does not know yet,
   * tried anyway). Synchronous; a throw (the request cannot be encoded) fails the request.
   */
  abstract transmit(instance: Instance | undefined): void;

  /** The request failed for good: reject it (and set {@link settled}). */
  abstract reject(error: RedmeshError): void;

  /** The transport delivered the attempt to `receivers` (> 0) listeners. Default: nothing to do. */
  delivered(_receivers: number): void {}

  /** The loop sends the request again (for counters). Default: nothing. */
  onRetry(_kind: RetryKindValue): void {}

  /** A `PUBLISH` carrying the attempt answered: the loop classifies it (the port messaging calls). */
  onPublished(receivers: number, error: RedmeshError | undefined): void {
    this.loop.published(this, receivers, error);
  }
}

/** Options of one awaited run (see {@link BalancingLoop.run}). */
export interface BalancedRunOptions<T> extends BalancedRequestInit {
  /** Send the request to `instance`; resolve with its result or reject with a typed error. */
  attempt: (instance: Instance, attempt: number, signal: AbortSignal | undefined) => Promise<T>;
  /** The live instances, asked again before each attempt. @default the loop's candidate source */
  candidates?: () => readonly Instance[] | Promise<readonly Instance[]>;
  /** Cancels the waits between attempts; passed to each attempt. */
  signal?: AbortSignal;
  /** Most attempts in all, redirects and retries included. @default unlimited (the budgets bound it) */
  maxAttempts?: number;
  /** Redirects allowed. @default the loop's `redirects` */
  redirects?: number;
  /** A resolved attempt that still counts as a failure of the instance (e.g. an HTTP 5xx): the error to report. */
  failure?: (result: T) => unknown;
}

/** The balancing loop of one caller (see the module comment). */
export class BalancingLoop {
  /** The picker. */
  readonly picker: InstancePicker;
  readonly #source: CandidateSource;
  readonly #retry: RetryPolicy;
  readonly #redirects: number;
  readonly #maxPerService: number;
  readonly #bulkheads = new Map<string, Bulkhead>();
  /** Latency is measured only for pickers that learn from it. */
  readonly #measure: boolean;
  /** Reused for every pick (pickers are synchronous); fields are overwritten, never deleted. */
  readonly #ctx: { service: string; exclude: ReadonlySet<string> | undefined; key: string | undefined } = {
    service: "",
    exclude: undefined,
    key: undefined,
  };
  readonly #redispatch = (r: BalancedRequest) => {
    r.timer = undefined;
    if (!r.settled) this.dispatch(r);
  };

  constructor(options: BalancingLoopOptions) {
    this.picker = options.picker;
    this.#source = options.candidates;
    this.#retry = options.retry ?? new RetryPolicy();
    this.#redirects = count("redirects", options.redirects ?? 3);
    this.#maxPerService = count("maxInFlightPerService", options.maxInFlightPerService ?? 0);
    this.#measure = typeof options.picker.onEnd === "function";
  }

  // ------------------------------------------------------------------ callback driver (RPC, messaging)

  /** Retries of a request that names none: the policy's `maxAttempts - 1`. */
  get defaultRetries(): number {
    return this.#retry.maxAttempts - 1;
  }

  /** Run (or continue) a request: candidates from the cache (read when not cached), then one attempt. */
  dispatch(r: BalancedRequest): void {
    const cached = this.#source.cached(r.service);
    if (cached) {
      this.#attempt(r, cached);
      return;
    }
    this.#source.load(r.service).then(
      (c) => this.#attempt(r, c),
      // Discovery needed Redis and Redis is down: fail fast, typed.
      (err: unknown) => this.abandon(r, asRedmesh(err)),
    );
  }

  /** The current attempt succeeded: the picker and the bulkhead hear of it. */
  succeeded(r: BalancedRequest): void {
    this.#end(r, true, undefined);
  }

  /** The current attempt failed with `error`: it ends, then the request is sent again or rejected. */
  failed(r: BalancedRequest, error: RedmeshError): void {
    this.#end(r, false, error);
    this.#decide(r, error);
  }

  /** The request ends now with `error`, not retried (its deadline, the caller's abort, a stop, Redis down). */
  abandon(r: BalancedRequest, error: RedmeshError): void {
    if (r.timer) clearTimeout(r.timer);
    r.timer = undefined;
    this.#end(r, false, error);
    if (!r.settled) r.reject(error);
  }

  /** The outcome of the `PUBLISH` that carried the current attempt. */
  published(r: BalancedRequest, receivers: number, error: RedmeshError | undefined): void {
    if (r.settled) return;
    if (error) this.abandon(r, error);
    else if (receivers > 0) r.delivered(receivers);
    else this.gone(r, "no receiver");
  }

  /** The attempt's instance was not there (nothing ran): it is evicted and another one is tried at once. */
  gone(r: BalancedRequest, reason: string): void {
    this.failed(r, goneError(r.service, r.iid, reason));
  }

  // ------------------------------------------------------------------ awaited driver (gateway)

  /**
   * The same loop for an attempt that is awaited (an HTTP forward): resolves with the first result,
   * rejects with the final error. Same rules as the callback driver, plus `maxAttempts` in all.
   */
  async run<T>(o: BalancedRunOptions<T>): Promise<T> {
    const r = new AwaitedRequest(this, o);
    const redirects = o.redirects ?? this.#redirects;
    const maxAttempts = o.maxAttempts ?? Number.POSITIVE_INFINITY;
    for (let n = 1; ; n++) {
      if (o.signal?.aborted) throw new AbortError(undefined, { cause: o.signal.reason });
      const list = o.candidates ? await o.candidates() : await this.#candidates(r.service);
      let inst: Instance | undefined;
      let error: RedmeshError | undefined;
      try {
        inst = this.#choose(r, list);
        if (!inst) throw new NoInstanceError(r.service);
        this.#begin(r, inst);
      } catch (err) {
        error = asRedmesh(err);
      }
      if (inst && !error) {
        let result: T;
        try {
          result = await o.attempt(inst, n, o.signal);
        } catch (err) {
          error = asRedmesh(err);
          this.#end(r, false, error);
        }
        if (!error) {
          const bad = o.failure?.(result!);
          this.#end(r, bad === undefined, bad);
          return result!;
        }
      }
      const e = error as RedmeshError;
      r.lastError = e;
      const wait = n >= maxAttempts ? NO_DELAY : this.#verdict(r, e, redirects);
      if (wait === NO_DELAY) throw e;
      if (wait > 0) await abortableSleep(wait, o.signal);
    }
  }

  // ------------------------------------------------------------------ the steps

  async #candidates(service: string): Promise<readonly Instance[]> {
    return this.#source.cached(service) ?? (await this.#source.load(service));
  }

  #attempt(r: BalancedRequest, candidates: readonly Instance[]): void {
    if (r.settled) return;
    let inst: Instance | undefined;
    try {
      inst = this.#choose(r, candidates);
      if (!inst && !r.direct) throw new NoInstanceError(r.service);
      this.#begin(r, inst);
    } catch (err) {
      this.#decide(r, asRedmesh(err));
      return;
    }
    try {
      r.transmit(inst);
    } catch (err) {
      // The request cannot be encoded: final, whatever the budgets say.
      const e = asRedmesh(err, ErrorCode.SERIALIZATION);
      this.#end(r, false, e);
      if (!r.settled) r.reject(e);
    }
  }

  /**
   * Pick: the given instance when direct (`undefined` when the cache does not know it), else the
   * picker's choice among instances not tried yet, else among all (a lone instance takes a retry).
   * Throws the picker's `CircuitOpenError`, or the last attempt's error when nothing is left.
   */
  #choose(r: BalancedRequest, candidates: readonly Instance[]): Instance | undefined {
    if (r.direct) {
      for (const c of candidates) if (c.id === r.iid) return c;
      return undefined;
    }
    const ctx = this.#ctx;
    ctx.service = r.service;
    ctx.key = r.key;
    ctx.exclude = r.exclude;
    let inst: Instance | undefined;
    try {
      inst = this.picker.pick(candidates, ctx);
    } catch (err) {
      // Every untried instance has an open circuit: one already tried may still answer.
      if (r.exclude === undefined || r.exclude.size === 0) throw err;
    }
    if (inst === undefined && r.exclude !== undefined && r.exclude.size > 0) {
      ctx.exclude = undefined;
      inst = this.picker.pick(candidates, ctx);
      if (inst === undefined && r.lastError) throw r.lastError;
    }
    if (inst !== undefined) r.iid = inst.id;
    return inst;
  }

  /** Bulkhead, then the picker's `onStart`. Throws `BulkheadFullError` when the service's bulkhead is full. */
  #begin(r: BalancedRequest, inst: Instance | undefined): void {
    if (this.#maxPerService > 0) {
      const release = this.#bulkhead(r.service).tryAcquire();
      if (!release) {
        throw new BulkheadFullError(
          `${this.#maxPerService} requests to service "${r.service}" are in flight already from this caller`,
          { data: { service: r.service, maxInFlightPerService: this.#maxPerService, delivered: false } },
        );
      }
      r.release = release;
    }
    if (inst === undefined && !r.direct) return;
    this.picker.onStart?.(r.service, r.iid);
    r.sent = true;
    r.sentAt = this.#measure ? performance.now() : 0;
  }

  /** End the current attempt once: `onEnd` to the picker, the bulkhead slot back. */
  #end(r: BalancedRequest, ok: boolean, error: unknown): void {
    if (r.release) {
      r.release();
      r.release = undefined;
    }
    if (!r.sent) return;
    r.sent = false;
    const onEnd = this.picker.onEnd;
    if (onEnd !== undefined) {
      onEnd.call(this.picker, r.service, r.iid, {
        ok,
        latencyMs: r.sentAt === 0 ? 0 : performance.now() - r.sentAt,
        error,
      });
    }
  }

  /** After a failed attempt: send again (at once or after a backoff) or reject. */
  #decide(r: BalancedRequest, error: RedmeshError): void {
    if (r.settled) return;
    r.lastError = error;
    const wait = this.#verdict(r, error, this.#redirects);
    if (wait === NO_DELAY) r.reject(error);
    else if (wait === 0) this.dispatch(r);
    else r.timer = setTimeout(this.#redispatch, wait, r);
  }

  /**
   * The rule of the module comment for one failed attempt: `NO_DELAY` (-1) for final, 0 to send again
   * now, or the backoff in ms. Counts the retry and marks the instance tried.
   */
  #verdict(r: BalancedRequest, error: RedmeshError, redirects: number): number {
    if (isRedirect(error)) {
      if (error.data?.gone === true && r.iid !== "") this.#source.evict(r.service, r.iid);
      if (r.direct || r.redirects >= redirects) return NO_DELAY;
      r.redirects++;
      this.#tried(r);
      r.onRetry(RetryKind.REDIRECT);
      return 0;
    }
    if (r.retries >= r.maxRetries || !isRetrySafe(error, r.idempotent)) return NO_DELAY;
    const wait = Math.max(1, this.#retry.delay(r.retries + 1));
    if (Date.now() + wait >= r.deadline) return NO_DELAY;
    r.retries++;
    this.#tried(r);
    r.onRetry(RetryKind.BACKOFF);
    return wait;
  }

  #tried(r: BalancedRequest): void {
    if (r.direct || r.iid === "") return;
    r.exclude ??= new Set();
    r.exclude.add(r.iid);
  }

  #bulkhead(service: string): Bulkhead {
    let b = this.#bulkheads.get(service);
    if (!b) {
      b = new Bulkhead({ maxConcurrent: this.#maxPerService, name: service });
      this.#bulkheads.set(service, b);
    }
    return b;
  }
}

/** The request of an awaited run: its attempts are driven by {@link BalancingLoop.run} itself. */
class AwaitedRequest extends BalancedRequest {
  transmit(): void {}
  reject(): void {}
}

/** Reasons meaning the picked instance did not take the request: another one is tried at once. */
const REDIRECT_REASONS: ReadonlySet<unknown> = new Set(["no receiver", "connect failed", "draining"]);

/** True when `error` says the instance was not there or would not take the request (nothing ran). */
export function isRedirect(error: unknown): boolean {
  return (
    error instanceof RedmeshError &&
    error.code === ErrorCode.NO_INSTANCE &&
    REDIRECT_REASONS.has(error.data?.reason)
  );
}

/**
 * The error of an attempt whose instance was not there (`reason`: "no receiver" when a `PUBLISH`
 * reached nobody, "connect failed" when an HTTP connection was refused): retried at once elsewhere,
 * and the instance is evicted from the local discovery cache.
 */
export function goneError(service: string, iid: string, reason: string): NoInstanceError {
  return new NoInstanceError(service, { data: { reason, instance: iid, delivered: false, gone: true } });
}

function asRedmesh(err: unknown, code: string = ErrorCode.REMOTE): RedmeshError {
  if (err instanceof RedmeshError) return err;
  return new RemoteError(code, err instanceof Error ? err.message : String(err), { cause: err });
}

function count(name: string, v: number): number {
  if (!Number.isInteger(v) || v < 0) {
    throw new ValidationError(`${name} must be an integer >= 0, got ${String(v)}`, {
      code: ErrorCode.INVALID_OPTIONS,
    });
  }
  return v;
}
