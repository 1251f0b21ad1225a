/**
 * Load figures of remote instances (in-flight work, event-loop lag, status) read from their health
 * snapshots (`src/health/health.ts`), for the least-outstanding strategy.
 *
 * Refreshes are driven by use, not by a timer: the balancer asks {@link LoadTracker.maybeRefresh} on
 * each pick, and at most one MGET per service per `refreshMs` goes to Redis (one round trip for all
 * candidate instances; in Cluster mode a service's health keys share one slot, so MGET is legal). An
 * idle caller sends nothing; a stopped tracker sends nothing and leaves no timer behind.
 *
 * @module
 */

import { ErrorCode, StateError, ValidationError } from "../errors.js";
import { safeJsonParse } from "../json.js";
import type { Keys } from "../keys.js";
import { type Logger, silentLogger } from "../logger.js";
import type { RedisLike } from "../redis/index.js";
import { InstanceStatus, type InstanceStatusValue } from "../registry/index.js";
import type { ClockMs } from "./types.js";

/** What the tracker knows about one instance's load. */
export interface LoadFigures {
  /** Work in progress the instance reported (all callers together). */
  inFlight: number;
  /** Mean event-loop delay over the instance's last health interval, in ms (as published). */
  lagMs: number;
  /** Status the instance reported. */
  status: InstanceStatusValue;
  /** When this tracker read it (clock ms). */
  readAt: number;
}

/**
 * What the balancer needs from a source of load figures. {@link LoadTracker} is the one that reads
 * Redis; anything else (a fixed table in a test, figures from another transport) can stand in.
 */
export interface LoadSource {
  /** The figures of one instance, or `undefined` when unknown. */
  get(service: string, iid: string): LoadFigures | undefined;
  /** A pick is about to look at these candidates: refresh in the background if due. */
  maybeRefresh?(service: string, instances: readonly { readonly id: string }[]): void;
  /** Drop one instance's figures. */
  forget?(service: string, iid: string): void;
  /** Drop a service's figures. */
  forgetService?(service: string): void;
}

/** Options of {@link LoadTracker}. */
export interface LoadTrackerOptions {
  /** Connection used for the MGETs. */
  redis: RedisLike;
  /** Key builder of the namespace the services live in. */
  keys: Keys;
  /**
   * Shortest time between two refreshes of one service. Health snapshots are written every 5 s by
   * default, so refreshing much faster only re-reads the same figures. @default 1000
   */
  refreshMs?: number;
  /** ClockMs. @default Date.now */
  clock?: ClockMs;
  /** pino-compatible logger. @default silent */
  logger?: Logger;
}

/** Default tracker settings. */
export const DEFAULT_LOAD_TRACKER_OPTIONS = Object.freeze({ refreshMs: 1000 });

/** Counters of a {@link LoadTracker}. */
export interface LoadTrackerStats {
  /** MGETs sent. */
  refreshes: number;
  /** MGETs that failed (Redis down); the previous figures are kept. */
  refreshErrors: number;
  /** Snapshots that were missing or malformed. */
  missing: number;
  /** Instances with figures held now. */
  instances: number;
}

interface ServiceLoad {
  figures: Map<string, LoadFigures>;
  lastRefresh: number;
  pending: Promise<void> | undefined;
}

/** Reads and caches the load figures instances publish in their health snapshots. */
export class LoadTracker implements LoadSource {
  readonly #redis: RedisLike;
  readonly #keys: Keys;
  readonly #refreshMs: number;
  readonly #clock: ClockMs;
  readonly #logger: Logger;
  readonly #services = new Map<string, ServiceLoad>();
  #running = false;
  readonly #stats = { refreshes: 0, refreshErrors: 0, missing: 0 };

  constructor(options: LoadTrackerOptions) {
    const refreshMs = options.refreshMs ?? DEFAULT_LOAD_TRACKER_OPTIONS.refreshMs;
    if (!Number.isInteger(refreshMs) || refreshMs < 0) {
      throw new ValidationError(`refreshMs must be an integer >= 0, got ${String(refreshMs)}`, {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    this.#redis = options.redis;
    this.#keys = options.keys;
    this.#refreshMs = refreshMs;
    this.#clock = options.clock ?? Date.now;
    this.#logger = options.logger ?? silentLogger;
  }

  /** True between {@link start} and {@link stop}. */
  get running(): boolean {
    return this.#running;
  }

  /** Start answering refresh requests. Idempotent. */
  start(): void {
    this.#running = true;
  }

  /** Stop: no more MGETs; waits for one in flight, then forgets every figure. Idempotent. */
  async stop(): Promise<void> {
    this.#running = false;
    await Promise.all([...this.#services.values()].map((s) => s.pending));
    this.#services.clear();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** The figures of one instance, or `undefined` when unknown. */
  get(service: string, iid: string): LoadFigures | undefined {
    return this.#services.get(service)?.figures.get(iid);
  }

  /**
   * Refresh `service`'s figures in the background when the last refresh is older than `refreshMs`
   * and none is in flight. Never throws, never waits.
   */
  maybeRefresh(service: string, instances: readonly { readonly id: string }[]): void {
    if (!this.#running) return;
    const s = this.#services.get(service);
    if (s && (s.pending || this.#clock() - s.lastRefresh < this.#refreshMs)) return;
    void this.refresh(
      service,
      instances.map((i) => i.id),
    );
  }

  /**
   * Read the health snapshots of `iids` (one MGET) and replace `service`'s figures with them: ids not
   * listed are forgotten. Resolves when done; never rejects (a failure keeps the old figures and is
   * counted). Rejects with a `StateError` only when the tracker is not started.
   */
  refresh(service: string, iids: Iterable<string>): Promise<void> {
    if (!this.#running) {
      return Promise.reject(new StateError(ErrorCode.NOT_RUNNING, "the load tracker is not started"));
    }
    let s = this.#services.get(service);
    if (!s) {
      s = { figures: new Map(), lastRefresh: 0, pending: undefined };
      this.#services.set(service, s);
    }
    if (s.pending) return s.pending;
    const ids = [...iids];
    const entry = s;
    entry.lastRefresh = this.#clock();
    if (ids.length === 0) {
      entry.figures.clear();
      return Promise.resolve();
    }
    this.#stats.refreshes++;
    entry.pending = this.#redis
      .command<Array<string | null>>(["MGET", ...ids.map((iid) => this.#keys.health(service, iid))])
      .then(
        (raw) => {
          const now = this.#clock();
          const next = new Map<string, LoadFigures>();
          for (let i = 0; i < ids.length; i++) {
            const f = parseFigures(raw[i], now);
            if (f) next.set(ids[i]!, f);
            else this.#stats.missing++;
          }
          // A stop() that ran meanwhile cleared everything: do not bring figures back.
          if (this.#running && this.#services.get(service) === entry) entry.figures = next;
        },
        (err: unknown) => {
          this.#stats.refreshErrors++;
          this.#logger.debug({ err, service }, "load figures refresh failed");
        },
      )
      .finally(() => {
        entry.pending = undefined;
      });
    return entry.pending;
  }

  /** Drop what is known about one instance (it left). */
  forget(service: string, iid: string): void {
    this.#services.get(service)?.figures.delete(iid);
  }

  /** Drop everything known about a service. */
  forgetService(service: string): void {
    this.#services.delete(service);
  }

  /** Counters. */
  stats(): LoadTrackerStats {
    let instances = 0;
    for (const s of this.#services.values()) instances += s.figures.size;
    return { ...this.#stats, instances };
  }
}

const STATUSES = new Set<string>(Object.values(InstanceStatus));

/** Extract the figures from a snapshot's JSON; `undefined` when absent or malformed. */
function parseFigures(raw: string | null | undefined, now: number): LoadFigures | undefined {
  if (typeof raw !== "string") return undefined;
  let v: unknown;
  try {
    v = safeJsonParse(raw);
  } catch {
    return undefined;
  }
  if (typeof v !== "object" || v === null) return undefined;
  const snap = v as { inFlight?: unknown; eventLoopLagMs?: { mean?: unknown }; status?: unknown };
  const inFlight = typeof snap.inFlight === "number" && snap.inFlight >= 0 ? snap.inFlight : 0;
  const mean = snap.eventLoopLagMs?.mean;
  const lagMs = typeof mean === "number" && Number.isFinite(mean) && mean >= 0 ? mean : 0;
  const status =
    typeof snap.status === "string" && STATUSES.has(snap.status)
      ? (snap.status as InstanceStatusValue)
      : InstanceStatus.OK;
  return { inFlight, lagMs, status, readAt: now };
}
