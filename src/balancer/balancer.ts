/**
 * `createBalancer()`: picks the instance a request goes to (random, round-robin, least-outstanding,
 * affinity), keeps a circuit breaker per instance, and never picks a draining or excluded instance.
 *
 * Everything here is synchronous and allocation-light on the hot path: a pick looks at a couple of
 * random candidates first and only builds the list of eligible instances when those were not
 * eligible. Per-instance state (outstanding count, breaker) is created on first use and dropped when
 * the instance is forgotten ({@link Balancer.forget}) or is found missing from the candidates of its
 * service while idle, so memory follows the live instances, not the churn.
 *
 * @module
 */

import { EventEmitter } from "node:events";
import { CircuitOpenError, ErrorCode, ValidationError } from "../errors.js";
import { type Logger, silentLogger } from "../logger.js";
import { type Instance, InstanceStatus } from "../registry/index.js";
import {
  type BreakerSnapshot,
  BreakerState,
  type BreakerStateValue,
  CircuitBreaker,
  type CircuitBreakerOptions,
  resolveBreakerOptions,
} from "./circuit-breaker.js";
import { DEFAULT_VIRTUAL_NODES, HashRing } from "./hash-ring.js";
import type { LoadSource } from "./load-tracker.js";
import { seededRandom } from "./random.js";
import {
  type ClockMs,
  type InstancePicker,
  type PickContext,
  type RandomSource,
  type RequestOutcome,
  Strategy,
  type StrategyName,
} from "./types.js";

/** Strategies usable without a key (the affinity fallback). */
export type KeylessStrategyName = Exclude<StrategyName, typeof Strategy.AFFINITY>;

/** Options of {@link createBalancer}. */
export interface BalancerOptions {
  /** How to pick. @default "least-outstanding" */
  strategy?: StrategyName;
  /** Strategy used by `affinity` when a pick has no `key`. @default "least-outstanding" */
  fallback?: KeylessStrategyName;
  /** Points per instance on the affinity hash ring. @default 160 */
  virtualNodes?: number;
  /** Random source. @default a {@link seededRandom} of `seed` when given, else `Math.random` */
  random?: RandomSource;
  /** Seed for a reproducible random source (ignored when `random` is given). */
  seed?: number;
  /** ClockMs for breakers and sweeps. @default Date.now */
  clock?: ClockMs;
  /** Circuit breaker settings, or `false` for none. @default DEFAULT_BREAKER_OPTIONS */
  breaker?: Partial<CircuitBreakerOptions> | false;
  /** Source of published load (in-flight, event-loop lag, status): usually a `LoadTracker`. Optional. */
  loadTracker?: LoadSource;
  /**
   * Weight of an instance's published in-flight count against one local outstanding request
   * (least-outstanding). Published counts include every caller's work but are up to a health interval
   * old, so they count less than our own exact count. @default 0.5
   */
  inFlightWeight?: number;
  /** Score added per ms of published event-loop lag above `lagBaselineMs`. @default 0.1 */
  lagWeight?: number;
  /**
   * Published lag an idle instance shows: the health monitor samples with a 20 ms timer and the
   * histogram reports the whole interval, so an idle loop reads ≈ 20 ms. @default 20
   */
  lagBaselineMs?: number;
  /**
   * An instance absent from its service's candidates is forgotten once idle (nothing outstanding,
   * circuit closed), or once absent this long whatever its state. @default 60000
   */
  forgetAfterMs?: number;
  /** pino-compatible logger (a throwing `breaker` listener is logged here). @default silent */
  logger?: Logger;
}

/** Anything that announces departed instances, e.g. `service.registry.events` (a `Discovery`). */
export interface LeaveSource {
  on(event: "leave", listener: (e: { service: string; id: string }) => void): unknown;
  off(event: "leave", listener: (e: { service: string; id: string }) => void): unknown;
}

/** Default balancer settings. */
export const DEFAULT_BALANCER_OPTIONS = Object.freeze({
  strategy: Strategy.LEAST_OUTSTANDING as StrategyName,
  fallback: Strategy.LEAST_OUTSTANDING as KeylessStrategyName,
  virtualNodes: DEFAULT_VIRTUAL_NODES,
  inFlightWeight: 0.5,
  lagWeight: 0.1,
  lagBaselineMs: 20,
  forgetAfterMs: 60_000,
});

/** A breaker state change. */
export interface BreakerEvent {
  service: string;
  iid: string;
  from: BreakerStateValue;
  to: BreakerStateValue;
  /** See {@link BreakerTransition.reason}. */
  reason: string;
}

/** Events a {@link Balancer} emits. */
export interface BalancerEvents {
  /** A circuit changed state (open → half-open is noticed when the breaker is next consulted). */
  breaker: [BreakerEvent];
}

/** Per-instance figures in {@link BalancerStats}. */
export interface InstanceStats {
  service: string;
  /** Requests sent and not yet ended. */
  outstanding: number;
  /** The breaker, when breakers are on. */
  breaker: BreakerSnapshot | undefined;
}

/** Counters returned by {@link Balancer.stats}. */
export interface BalancerStats {
  strategy: StrategyName;
  /** Picks that returned an instance. */
  picks: number;
  /** Picks that found no eligible instance (returned `undefined`). */
  empty: number;
  /** Picks rejected because every eligible instance's circuit was open. */
  circuitOpen: number;
  /** Instances forgotten (left, or swept as idle and absent). */
  forgotten: number;
  /** Per-instance state, by instance id. */
  instances: Record<string, InstanceStats>;
}

interface InstanceState {
  service: string;
  outstanding: number;
  breaker: CircuitBreaker | undefined;
  /** When a sweep first found it missing from the candidates (clock ms), while it was busy. */
  absentSince: number | undefined;
}

interface ServiceState {
  rr: number;
  /** Picks so far (sweeps are considered every few picks, not every pick: reading the clock is not free). */
  picks: number;
  ring: HashRing | undefined;
  /** The candidate ids the ring was built from, in the order they came, and their positions. */
  ringIds: string[];
  ringIndex: Map<string, number>;
  iids: Set<string>;
  lastSweep: number;
}

interface RingAcceptArg {
  candidates: readonly Instance[];
  ctx: PickContext;
  index: Map<string, number>;
}

const STRATEGIES = new Set<string>(Object.values(Strategy));

/**
 * Picks instances and tracks their outstanding requests and circuits. Implements
 * {@link InstancePicker}: call `onStart` when a request is sent and `onEnd` once when it ends.
 */
export class Balancer extends EventEmitter<BalancerEvents> implements InstancePicker {
  /** The configured strategy. */
  readonly strategy: StrategyName;
  readonly #fallback: KeylessStrategyName;
  readonly #virtualNodes: number;
  readonly #random: RandomSource;
  readonly #clock: ClockMs;
  readonly #breaker: CircuitBreakerOptions | undefined;
  readonly #tracker: LoadSource | undefined;
  readonly #inFlightWeight: number;
  readonly #lagWeight: number;
  readonly #lagBaselineMs: number;
  readonly #forgetAfterMs: number;
  readonly #logger: Logger;
  readonly #instances = new Map<string, InstanceState>();
  readonly #services = new Map<string, ServiceState>();
  readonly #counts = { picks: 0, empty: 0, circuitOpen: 0, forgotten: 0 };

  constructor(options: BalancerOptions = {}) {
    super();
    const d = DEFAULT_BALANCER_OPTIONS;
    const strategy = options.strategy ?? d.strategy;
    const fallback = options.fallback ?? d.fallback;
    if (!STRATEGIES.has(strategy))
      throw invalid(`strategy must be one of ${[...STRATEGIES].join(", ")}`, strategy);
    if (!STRATEGIES.has(fallback) || (fallback as string) === Strategy.AFFINITY) {
      throw invalid("fallback must be random, round-robin or least-outstanding", fallback);
    }
    const nonNegative = (name: string, v: number) => {
      if (typeof v !== "number" || !Number.isFinite(v) || v < 0)
        throw invalid(`${name} must be a number >= 0`, v);
      return v;
    };
    this.strategy = strategy;
    this.#fallback = fallback;
    this.#virtualNodes = options.virtualNodes ?? d.virtualNodes;
    new HashRing(this.#virtualNodes); // validates virtualNodes now rather than at the first keyed pick
    this.#random = options.random ?? (options.seed === undefined ? Math.random : seededRandom(options.seed));
    this.#clock = options.clock ?? Date.now;
    this.#breaker = options.breaker === false ? undefined : resolveBreakerOptions(options.breaker);
    this.#tracker = options.loadTracker;
    this.#inFlightWeight = nonNegative("inFlightWeight", options.inFlightWeight ?? d.inFlightWeight);
    this.#lagWeight = nonNegative("lagWeight", options.lagWeight ?? d.lagWeight);
    this.#lagBaselineMs = nonNegative("lagBaselineMs", options.lagBaselineMs ?? d.lagBaselineMs);
    this.#forgetAfterMs = nonNegative("forgetAfterMs", options.forgetAfterMs ?? d.forgetAfterMs);
    this.#logger = options.logger ?? silentLogger;
  }

  /**
   * Pick an instance of `ctx.service` among `candidates` (the live instances discovery returned).
   * Draining and excluded instances are never picked; instances whose circuit is open are skipped.
   *
   * @returns the instance, or `undefined` when no candidate is eligible (none, all draining or excluded).
   * @throws CircuitOpenError (`ERR_CIRCUIT_OPEN`, data `{service, instances}`) when every eligible
   *   candidate's circuit is open.
   */
  pick(candidates: readonly Instance[], ctx: PickContext): Instance | undefined {
    const svc = this.#serviceState(ctx.service);
    // More tracked than offered means someone left: look soon. Otherwise now and then (replacements).
    const every = svc.iids.size > candidates.length ? 7 : 255;
    if ((++svc.picks & every) === 0 && svc.iids.size > 0) this.#maybeSweep(svc, candidates, ctx.service);
    this.#tracker?.maybeRefresh?.(ctx.service, candidates);
    let picked: Instance | undefined;
    switch (this.strategy) {
      case Strategy.AFFINITY:
        picked =
          ctx.key === undefined
            ? this.#keyless(this.#fallback, candidates, ctx, svc)
            : this.#affinity(candidates, ctx, svc);
        break;
      default:
        picked = this.#keyless(this.strategy, candidates, ctx, svc);
    }
    if (picked) {
      this.#counts.picks++;
      return picked;
    }
    return this.#nothing(candidates, ctx);
  }

  /** A request was sent to `iid`: counts it outstanding and takes a trial slot of a half-open circuit. */
  onStart(service: string, iid: string): void {
    const st = this.#instanceState(service, iid);
    st.outstanding++;
    st.breaker?.onStart();
  }

  /** A request to `iid` ended: feeds its circuit breaker. */
  onEnd(service: string, iid: string, outcome: RequestOutcome): void {
    const st = this.#instanceState(service, iid);
    const started = st.outstanding > 0;
    if (started) st.outstanding--;
    st.breaker?.onEnd(outcome, started);
  }

  /** The circuit state of an instance (`closed` when unknown or when breakers are off). */
  breakerState(iid: string): BreakerStateValue {
    return this.#instances.get(iid)?.breaker?.state ?? BreakerState.CLOSED;
  }

  /** Requests to `iid` sent and not yet ended. */
  outstanding(iid: string): number {
    return this.#instances.get(iid)?.outstanding ?? 0;
  }

  /** Close an instance's circuit by hand (e.g. after an operator fixed it). */
  resetBreaker(iid: string): void {
    this.#instances.get(iid)?.breaker?.reset();
  }

  /**
   * Close every open circuit (e.g. when Redis is back after an outage: the timeouts seen meanwhile
   * were Redis's, not the instances'). Returns how many were open.
   */
  resetBreakers(): number {
    let n = 0;
    for (const st of this.#instances.values()) {
      if (!st.breaker || st.breaker.state === BreakerState.CLOSED) continue;
      st.breaker.reset();
      n++;
    }
    return n;
  }

  /** Forget an instance (it left): its outstanding count, breaker and load figures. */
  forget(service: string, iid: string): void {
    const st = this.#instances.get(iid);
    if (st) {
      this.#instances.delete(iid);
      this.#services.get(st.service)?.iids.delete(iid);
      this.#counts.forgotten++;
    }
    const svc = this.#services.get(service);
    if (svc?.ring?.has(iid)) {
      svc.ring.remove(iid);
      svc.ringIds = []; // the next keyed pick re-checks membership
    }
    this.#tracker?.forget?.(service, iid);
  }

  /**
   * Forget instances as soon as `source` says they left (e.g. `balancer.watch(svc.registry.events)`).
   * Returns the function that stops watching.
   */
  watch(source: LeaveSource): () => void {
    const onLeave = (e: { service: string; id: string }) => this.forget(e.service, e.id);
    source.on("leave", onLeave);
    return () => {
      source.off("leave", onLeave);
    };
  }

  /** Forget a service and every instance of it. */
  forgetService(service: string): void {
    const svc = this.#services.get(service);
    if (svc) for (const iid of [...svc.iids]) this.forget(service, iid);
    this.#services.delete(service);
    this.#tracker?.forgetService?.(service);
  }

  /** Counters and per-instance state. */
  stats(): BalancerStats {
    const instances: Record<string, InstanceStats> = {};
    for (const [iid, st] of this.#instances) {
      instances[iid] = { service: st.service, outstanding: st.outstanding, breaker: st.breaker?.snapshot() };
    }
    return { strategy: this.strategy, ...this.#counts, instances };
  }

  // ---- eligibility ----

  /** Not draining (by registry or published health) and not excluded. */
  #usable(inst: Instance, ctx: PickContext): boolean {
    if (inst.status === InstanceStatus.DRAINING) return false;
    if (ctx.exclude?.has(inst.id)) return false;
    return this.#tracker?.get(ctx.service, inst.id)?.status !== InstanceStatus.DRAINING;
  }

  /** The circuit lets a request through. */
  #allowed(iid: string): boolean {
    const b = this.#instances.get(iid)?.breaker;
    return b === undefined || b.allows();
  }

  #eligible(inst: Instance, ctx: PickContext): boolean {
    return this.#usable(inst, ctx) && this.#allowed(inst.id);
  }

  /** Every eligible candidate (the slow path, when sampling found none). */
  #eligibleList(candidates: readonly Instance[], ctx: PickContext): Instance[] {
    const out: Instance[] = [];
    for (const c of candidates) if (this.#eligible(c, ctx)) out.push(c);
    return out;
  }

  /** Nothing was picked: `undefined` when nothing was usable, CircuitOpenError when circuits were the reason. */
  #nothing(candidates: readonly Instance[], ctx: PickContext): undefined {
    const open: string[] = [];
    for (const c of candidates) if (this.#usable(c, ctx)) open.push(c.id);
    if (open.length === 0) {
      this.#counts.empty++;
      return undefined;
    }
    this.#counts.circuitOpen++;
    throw new CircuitOpenError(`every instance of service "${ctx.service}" has an open circuit`, {
      data: { service: ctx.service, instances: open },
    });
  }

  // ---- strategies ----

  #keyless(
    strategy: KeylessStrategyName,
    candidates: readonly Instance[],
    ctx: PickContext,
    svc: ServiceState,
  ): Instance | undefined {
    const n = candidates.length;
    if (n === 0) return undefined;
    switch (strategy) {
      case Strategy.ROUND_ROBIN: {
        const start = svc.rr % n;
        for (let k = 0; k < n; k++) {
          const i = (start + k) % n;
          const c = candidates[i]!;
          if (this.#eligible(c, ctx)) {
            svc.rr = (i + 1) % n;
            return c;
          }
        }
        return undefined;
      }
      case Strategy.RANDOM: {
        // Rejection sampling keeps the choice uniform over eligible instances; the list is built only
        // when two draws missed.
        for (let t = 0; t < 2; t++) {
          const c = candidates[this.#index(n)]!;
          if (this.#eligible(c, ctx)) return c;
        }
        const list = this.#eligibleList(candidates, ctx);
        return list.length ? list[this.#index(list.length)] : undefined;
      }
      default: {
        if (n === 1) {
          // One instance: nothing to compare, no list to build.
          const only = candidates[0]!;
          return this.#eligible(only, ctx) ? only : undefined;
        }
        // Two distinct random candidates; the list of eligible ones is built only when one is not.
        const i = this.#index(n);
        const a = candidates[i]!;
        const b = candidates[(i + 1 + this.#index(n - 1)) % n]!;
        if (this.#eligible(a, ctx) && this.#eligible(b, ctx)) return this.#lessLoaded(a, b, ctx.service);
        const list = this.#eligibleList(candidates, ctx);
        const m = list.length;
        if (m <= 1) return list[0];
        const k = this.#index(m);
        return this.#lessLoaded(list[k]!, list[(k + 1 + this.#index(m - 1)) % m]!, ctx.service);
      }
    }
  }

  /** Power of two choices: the lower score wins; a tie keeps the first (itself a random draw). */
  #lessLoaded(a: Instance, b: Instance, service: string): Instance {
    return this.#score(b, service) < this.#score(a, service) ? b : a;
  }

  /** Local outstanding count blended with the published in-flight count and event-loop lag. */
  #score(inst: Instance, service: string): number {
    let s = this.#instances.get(inst.id)?.outstanding ?? 0;
    const f = this.#tracker?.get(service, inst.id);
    if (f)
      s += this.#inFlightWeight * f.inFlight + this.#lagWeight * Math.max(0, f.lagMs - this.#lagBaselineMs);
    return s;
  }

  /** Created once: a closure per keyed pick is measurable on the hot path. */
  readonly #ringAccept = (iid: string, a: RingAcceptArg): boolean => {
    const i = a.index.get(iid);
    return i !== undefined && this.#eligible(a.candidates[i]!, a.ctx);
  };

  #affinity(candidates: readonly Instance[], ctx: PickContext, svc: ServiceState): Instance | undefined {
    let ring = svc.ring;
    if (!ring) {
      ring = new HashRing(this.#virtualNodes);
      svc.ring = ring;
    }
    // Discovery hands out the same id strings in the same order while nothing changes, so the common
    // case is one identity comparison per candidate; a change of order alone does not move the ring.
    const ids = svc.ringIds;
    let same = ids.length === candidates.length;
    for (let i = 0; same && i < candidates.length; i++) same = ids[i] === candidates[i]!.id;
    if (!same) {
      svc.ringIds = candidates.map((c) => c.id);
      svc.ringIndex = new Map(svc.ringIds.map((id, i) => [id, i]));
      ring.setMembers(svc.ringIds);
    }
    const id = ring.lookup(ctx.key as string, this.#ringAccept, { candidates, ctx, index: svc.ringIndex });
    return id === undefined ? undefined : candidates[svc.ringIndex.get(id)!];
  }

  // ---- state ----

  #index(n: number): number {
    // Guard against a random source returning exactly 1.
    return Math.min(n - 1, Math.floor(this.#random() * n));
  }

  #serviceState(service: string): ServiceState {
    let s = this.#services.get(service);
    if (!s) {
      s = {
        rr: 0,
        picks: 0,
        ring: undefined,
        ringIds: [],
        ringIndex: new Map(),
        iids: new Set(),
        lastSweep: this.#clock(),
      };
      this.#services.set(service, s);
    }
    return s;
  }

  #instanceState(service: string, iid: string): InstanceState {
    let st = this.#instances.get(iid);
    if (!st) {
      const breaker = this.#breaker
        ? new CircuitBreaker(this.#breaker, this.#clock, (t) => this.#emitBreaker({ service, iid, ...t }))
        : undefined;
      st = { service, outstanding: 0, breaker, absentSince: undefined };
      this.#instances.set(iid, st);
      this.#serviceState(service).iids.add(iid);
    }
    return st;
  }

  /** Transitions are noticed inside pick/onEnd: a listener that throws must not break those. */
  #emitBreaker(e: BreakerEvent): void {
    try {
      this.emit("breaker", e);
    } catch (err) {
      this.#logger.warn({ err, ...e }, "a breaker event listener threw");
    }
  }

  /**
   * Drop the state of instances absent from `candidates`: at once when idle (nothing outstanding,
   * circuit closed), once absent for `forgetAfterMs` otherwise. At most once a second per service,
   * which bounds the cost when callers pass subsets (a direct `iid@svc` send).
   */
  #maybeSweep(svc: ServiceState, candidates: readonly Instance[], service: string): void {
    const now = this.#clock();
    if (now - svc.lastSweep < 1000) return;
    svc.lastSweep = now;
    const present = new Set<string>();
    for (const c of candidates) present.add(c.id);
    for (const iid of [...svc.iids]) {
      const st = this.#instances.get(iid);
      if (present.has(iid)) {
        if (st) st.absentSince = undefined;
        continue;
      }
      const idle =
        st === undefined ||
        (st.outstanding === 0 && (st.breaker === undefined || st.breaker.state === BreakerState.CLOSED));
      if (st && !idle) st.absentSince ??= now;
      if (idle || now - (st?.absentSince ?? now) >= this.#forgetAfterMs) this.forget(service, iid);
    }
  }
}

function invalid(rule: string, value: unknown): ValidationError {
  return new ValidationError(
    `invalid balancer option: ${rule}, got ${JSON.stringify(value) ?? String(value)}`,
    {
      code: ErrorCode.INVALID_OPTIONS,
    },
  );
}

/** Create a {@link Balancer}. Validates the options (typed `ValidationError` on bad input). */
export function createBalancer(options: BalancerOptions = {}): Balancer {
  return new Balancer(options);
}
