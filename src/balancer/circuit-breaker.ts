/**
 * A circuit breaker for one instance: `closed` → `open` after too many failures (N in a row, or a
 * failure rate over a rolling window), → `half-open` after a cool-down, letting a few trial requests
 * through, → `closed` when they succeed or `open` again on the first failure.
 *
 * No timers: the cool-down is checked against the injected clock when the breaker is asked, so an
 * idle breaker costs nothing and tests run on a fake clock.
 *
 * @module
 */

import { ErrorCode, isRedmeshError, ValidationError } from "../errors.js";
import type { ClockMs, RequestOutcome } from "./types.js";

/** Breaker states. */
export const BreakerState = {
  CLOSED: "closed",
  OPEN: "open",
  HALF_OPEN: "half-open",
} as const;
/** Union of breaker states. */
export type BreakerStateValue = (typeof BreakerState)[keyof typeof BreakerState];

/** How an outcome counts for the breaker. */
export type OutcomeClass = "success" | "failure" | "ignore";

/**
 * Options of {@link CircuitBreaker}. The rate defaults are Hystrix's (50 % over 10 s in 10 buckets,
 * at least 20 requests, 5 s sleep window), which have held up in production for a decade.
 */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit (0 disables this trigger). @default 5 */
  consecutiveFailures: number;
  /** Failure rate (0-1] over the window that opens the circuit (0 disables this trigger). @default 0.5 */
  failureRate: number;
  /** Fewest requests in the window before the failure rate counts. @default 20 */
  minimumRequests: number;
  /** Length of the rolling window. @default 10000 */
  windowMs: number;
  /** Buckets the window is split into (its time resolution). @default 10 */
  windowBuckets: number;
  /** Time the circuit stays open before letting trial requests through. @default 5000 */
  cooldownMs: number;
  /** Trial requests admitted while half-open; that many successes close the circuit. @default 1 */
  halfOpenRequests: number;
  /**
   * How an outcome counts. Default ({@link classifyOutcome}): success when `ok`; ignored when the
   * caller aborted or Redis itself was unavailable (not the instance's fault); a failure when the error
   * is retryable or not a redmesh error (timeouts, lost instances, overload); success otherwise (the
   * instance answered with an application error, so it is alive).
   */
  classify: (outcome: RequestOutcome) => OutcomeClass;
}

/** The default outcome classification (see {@link CircuitBreakerOptions.classify}). */
export function classifyOutcome(outcome: RequestOutcome): OutcomeClass {
  if (outcome.ok) return "success";
  const err = outcome.error;
  if (isRedmeshError(err)) {
    if (err.code === ErrorCode.ABORTED || err.code === ErrorCode.REDIS_UNAVAILABLE) return "ignore";
    return err.retryable ? "failure" : "success";
  }
  return "failure";
}

/** Default breaker settings. */
export const DEFAULT_BREAKER_OPTIONS: Readonly<CircuitBreakerOptions> = Object.freeze({
  consecutiveFailures: 5,
  failureRate: 0.5,
  minimumRequests: 20,
  windowMs: 10_000,
  windowBuckets: 10,
  cooldownMs: 5_000,
  halfOpenRequests: 1,
  classify: classifyOutcome,
});

/** Validate and complete breaker options (throws a `ValidationError` naming the bad field). */
export function resolveBreakerOptions(options: Partial<CircuitBreakerOptions> = {}): CircuitBreakerOptions {
  const o = { ...DEFAULT_BREAKER_OPTIONS, ...options };
  const bad = (field: string, rule: string) =>
    new ValidationError(
      `breaker option ${field} must be ${rule}, got ${String(o[field as keyof typeof o])}`,
      {
        code: ErrorCode.INVALID_OPTIONS,
      },
    );
  const int = (v: number, min: number) => Number.isInteger(v) && v >= min;
  if (!int(o.consecutiveFailures, 0)) throw bad("consecutiveFailures", "an integer >= 0");
  if (!(o.failureRate >= 0 && o.failureRate <= 1)) throw bad("failureRate", "a number from 0 to 1");
  if (!int(o.minimumRequests, 1)) throw bad("minimumRequests", "an integer >= 1");
  if (!int(o.windowBuckets, 1) || o.windowBuckets > 1000)
    throw bad("windowBuckets", "an integer from 1 to 1000");
  if (!int(o.windowMs, o.windowBuckets)) throw bad("windowMs", "an integer >= windowBuckets");
  if (!int(o.cooldownMs, 0)) throw bad("cooldownMs", "an integer >= 0");
  if (!int(o.halfOpenRequests, 1)) throw bad("halfOpenRequests", "an integer >= 1");
  if (typeof o.classify !== "function") throw bad("classify", "a function");
  return o;
}

/** A state change, as passed to the breaker's `onTransition` callback. */
export interface BreakerTransition {
  from: BreakerStateValue;
  to: BreakerStateValue;
  /** Why: `"consecutive"`, `"rate"`, `"cooldown"`, `"trial-failed"`, `"trial-succeeded"`, `"reset"`. */
  reason: string;
}

/** A snapshot of one breaker. */
export interface BreakerSnapshot {
  state: BreakerStateValue;
  /** Failures in a row. */
  consecutiveFailures: number;
  /** Requests and failures counted in the rolling window. */
  windowRequests: number;
  windowFailures: number;
  /** When an open circuit half-opens (clock ms), or `undefined`. */
  openUntil: number | undefined;
  /** Trials in flight while half-open. */
  trialsInFlight: number;
}

/** One instance's circuit breaker. Options must already be resolved ({@link resolveBreakerOptions}). */
export class CircuitBreaker {
  readonly #o: CircuitBreakerOptions;
  readonly #clock: ClockMs;
  readonly #onTransition: ((t: BreakerTransition) => void) | undefined;
  #state: BreakerStateValue = BreakerState.CLOSED;
  #consecutive = 0;
  #openUntil = 0;
  #trials = 0;
  /** Requests started (onStart) and not ended. */
  #inFlight = 0;
  /** Of those, the ones already in flight when the circuit half-opened: their ends are not trials. */
  #earlier = 0;
  #trialSuccesses = 0;
  // Rolling window: ring of buckets; #bucketStart[i] is the epoch (in bucket units) bucket i holds.
  readonly #bucketMs: number;
  readonly #reqs: Uint32Array;
  readonly #fails: Uint32Array;
  readonly #epochs: Float64Array;

  constructor(options: CircuitBreakerOptions, clock: ClockMs, onTransition?: (t: BreakerTransition) => void) {
    this.#o = options;
    this.#clock = clock;
    this.#onTransition = onTransition;
    this.#bucketMs = Math.ceil(options.windowMs / options.windowBuckets);
    this.#reqs = new Uint32Array(options.windowBuckets);
    this.#fails = new Uint32Array(options.windowBuckets);
    this.#epochs = new Float64Array(options.windowBuckets).fill(-1);
  }

  /** Current state (an open circuit whose cool-down has passed turns half-open here). */
  get state(): BreakerStateValue {
    if (this.#state === BreakerState.OPEN && this.#clock() >= this.#openUntil) {
      this.#trials = 0;
      this.#trialSuccesses = 0;
      this.#earlier = this.#inFlight;
      this.#set(BreakerState.HALF_OPEN, "cooldown");
    }
    return this.#state;
  }

  /** True when a request may be sent now (closed, or half-open with a free trial slot). */
  allows(): boolean {
    const s = this.state;
    return (
      s === BreakerState.CLOSED || (s === BreakerState.HALF_OPEN && this.#trials < this.#o.halfOpenRequests)
    );
  }

  /** A request was sent (takes a trial slot while half-open). */
  onStart(): void {
    this.#inFlight++;
    if (this.state === BreakerState.HALF_OPEN) this.#trials++;
  }

  /**
   * A request ended. `started` says whether {@link onStart} was called for it. While half-open, the
   * first ends are taken to be those of requests sent before the circuit half-opened (they started a
   * whole cool-down earlier, so they finish first): they are counted but decide nothing; the trials'
   * outcomes decide.
   */
  onEnd(outcome: RequestOutcome, started = true): void {
    const kind = this.#o.classify(outcome);
    const state = this.state;
    if (started && this.#inFlight > 0) this.#inFlight--;
    let trial = true;
    if (state === BreakerState.HALF_OPEN && started) {
      if (this.#earlier > 0) {
        this.#earlier--;
        trial = false;
      } else if (this.#trials > 0) this.#trials--;
    }
    if (kind === "ignore") return;
    const failed = kind === "failure";
    // One clock read per outcome: it is not free on every machine.
    const now = this.#clock();
    this.#count(failed, now);
    if (failed) this.#consecutive++;
    else this.#consecutive = 0;
    if (state === BreakerState.HALF_OPEN) {
      if (!trial) return;
      if (failed) this.#open("trial-failed");
      else if (++this.#trialSuccesses >= this.#o.halfOpenRequests) this.#close("trial-succeeded");
      return;
    }
    if (state !== BreakerState.CLOSED || !failed) return;
    const n = this.#o.consecutiveFailures;
    if (n > 0 && this.#consecutive >= n) {
      this.#open("consecutive");
      return;
    }
    if (this.#o.failureRate > 0) {
      const { requests, failures } = this.#window(now);
      if (requests >= this.#o.minimumRequests && failures / requests >= this.#o.failureRate)
        this.#open("rate");
    }
  }

  /** Force the circuit closed and clear its counts. */
  reset(): void {
    this.#close("reset");
  }

  /** A snapshot for stats. */
  snapshot(): BreakerSnapshot {
    const state = this.state;
    const { requests, failures } = this.#window(this.#clock());
    return {
      state,
      consecutiveFailures: this.#consecutive,
      windowRequests: requests,
      windowFailures: failures,
      openUntil: state === BreakerState.OPEN ? this.#openUntil : undefined,
      trialsInFlight: state === BreakerState.HALF_OPEN ? this.#trials : 0,
    };
  }

  #open(reason: string): void {
    this.#openUntil = this.#clock() + this.#o.cooldownMs;
    this.#trials = 0;
    this.#trialSuccesses = 0;
    this.#set(BreakerState.OPEN, reason);
  }

  #close(reason: string): void {
    this.#consecutive = 0;
    this.#trials = 0;
    this.#trialSuccesses = 0;
    this.#reqs.fill(0);
    this.#fails.fill(0);
    this.#epochs.fill(-1);
    this.#set(BreakerState.CLOSED, reason);
  }

  #set(to: BreakerStateValue, reason: string): void {
    const from = this.#state;
    if (from === to) return;
    this.#state = to;
    this.#onTransition?.({ from, to, reason });
  }

  #count(failed: boolean, now: number): void {
    const epoch = Math.floor(now / this.#bucketMs);
    const i = epoch % this.#reqs.length;
    if (this.#epochs[i] !== epoch) {
      this.#epochs[i] = epoch;
      this.#reqs[i] = 0;
      this.#fails[i] = 0;
    }
    this.#reqs[i]!++;
    if (failed) this.#fails[i]!++;
  }

  #window(now: number): { requests: number; failures: number } {
    const oldest = Math.floor(now / this.#bucketMs) - this.#reqs.length + 1;
    let requests = 0;
    let failures = 0;
    for (let i = 0; i < this.#reqs.length; i++) {
      if (this.#epochs[i]! >= oldest) {
        requests += this.#reqs[i]!;
        failures += this.#fails[i]!;
      }
    }
    return { requests, failures };
  }
}
