/**
 * Health: a periodic snapshot per instance (memory, CPU, event-loop lag, uptime, in-flight work,
 * custom checks, status) in `<ns>:service:<svc>:<iid>:health`, and the capped health log of warnings
 * and errors in `…:health:log` (both Hydra-compatible).
 *
 * The snapshot key lives 3 × the interval (Hydra gave it 3 s while writing it every 5 s, so it was
 * missing most of the time; that bug is not repeated).
 *
 * @module
 */

import { hostname } from "node:os";
import { type IntervalHistogram, monitorEventLoopDelay } from "node:perf_hooks";
import { safeJsonParse } from "../json.js";
import type { Keys } from "../keys.js";
import { type Logger, silentLogger } from "../logger.js";
import type { RedisLike } from "../redis/index.js";
import { InstanceStatus, type InstanceStatusValue } from "../registry/index.js";

/** Hydra caps the health log at 64 entries (MAX_ENTRIES_IN_HEALTH_LOG). */
export const HEALTH_LOG_MAX = 64;
/** Hydra keeps the health log a week after the last write (ONE_WEEK_IN_SECONDS). */
export const HEALTH_LOG_TTL_S = 604_800;

/** Result of one custom check. */
export interface CheckResult {
  ok: boolean;
  /** Free-form detail shown in health output. */
  detail?: unknown;
}

/** A custom health check: returns `true`/`false` or a {@link CheckResult}; throwing counts as failed. */
export type HealthCheck = () => boolean | CheckResult | Promise<boolean | CheckResult>;

/** A health snapshot (Hydra's fields plus redmesh's). */
export interface HealthSnapshot {
  serviceName: string;
  instanceID: string;
  hostName: string;
  /** ISO-8601 time of the sample. */
  sampledOn: string;
  /** ISO-8601 time of the write (Hydra's `updatedOn`). */
  updatedOn: string;
  processID: number;
  architecture: string;
  platform: string;
  nodeVersion: string;
  memory: NodeJS.MemoryUsage;
  uptimeSeconds: number;
  /** CPU used by this process since the previous sample, in % of one core. */
  cpuPercent: number;
  /** Event-loop delay over the last interval, in ms. */
  eventLoopLagMs: { mean: number; p99: number; max: number };
  /** Work in progress (RPC handlers, jobs…), from the service. */
  inFlight: number;
  status: InstanceStatusValue;
  checks: Record<string, CheckResult>;
  /** Extra counters the service adds (dropped logs, bad messages…). */
  counters: Record<string, number>;
}

/** Options of {@link HealthMonitor}. */
export interface HealthMonitorOptions {
  redis: RedisLike;
  keys: Keys;
  service: string;
  instanceId: string;
  /** Interval between snapshots. @default 5000 */
  intervalMs: number;
  /** Current in-flight count. */
  inFlight?: () => number;
  /** Whether the instance is draining. */
  draining?: () => boolean;
  /** Extra counters to include. */
  counters?: () => Record<string, number>;
  logger?: Logger;
  /** Time limit for one custom check. @default 1000 */
  checkTimeoutMs?: number;
}

/** Samples and writes health snapshots on a timer. */
export class HealthMonitor {
  readonly #o: HealthMonitorOptions;
  readonly #logger: Logger;
  readonly #checks = new Map<string, HealthCheck>();
  #histogram: IntervalHistogram | undefined;
  #timer: NodeJS.Timeout | undefined;
  #lastCpu = process.cpuUsage();
  #lastCpuAt = performance.now();
  #last: HealthSnapshot | undefined;
  /** Counters for tests. */
  readonly stats = { writes: 0, writeErrors: 0 };

  constructor(options: HealthMonitorOptions) {
    this.#o = options;
    this.#logger = options.logger ?? silentLogger;
  }

  /** Add (or replace) a custom check. */
  addCheck(name: string, check: HealthCheck): void {
    this.#checks.set(name, check);
  }

  /** The last snapshot taken, if any. */
  get last(): HealthSnapshot | undefined {
    return this.#last;
  }

  /** Start sampling: one snapshot now, then one per interval. */
  start(): void {
    if (this.#timer) return;
    // 20 ms resolution: fine enough for lag that matters to balancing, cheap to sample.
    this.#histogram = monitorEventLoopDelay({ resolution: 20 });
    this.#histogram.enable();
    const tick = () => {
      this.#timer = setTimeout(() => {
        this.write().finally(() => {
          if (this.#timer) tick();
        });
      }, this.#o.intervalMs);
    };
    void this.write();
    tick();
  }

  /** Stop sampling and release the histogram. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#histogram?.disable();
    this.#histogram = undefined;
  }

  /** Take a snapshot now (runs custom checks). */
  async sample(): Promise<HealthSnapshot> {
    const now = performance.now();
    const cpu = process.cpuUsage(this.#lastCpu);
    const elapsedMs = Math.max(1, now - this.#lastCpuAt);
    this.#lastCpu = process.cpuUsage();
    this.#lastCpuAt = now;
    const h = this.#histogram;
    const ns = 1e6;
    const lag = h
      ? {
          mean: Number.isFinite(h.mean) ? round(h.mean / ns) : 0,
          p99: round(h.percentile(99) / ns),
          max: round(h.max / ns),
        }
      : { mean: 0, p99: 0, max: 0 };
    h?.reset();
    const checks: Record<string, CheckResult> = {};
    await Promise.all(
      [...this.#checks].map(async ([name, fn]) => {
        checks[name] = await this.#runCheck(fn);
      }),
    );
    const failing = Object.values(checks).some((c) => !c.ok);
    const status: InstanceStatusValue = this.#o.draining?.()
      ? InstanceStatus.DRAINING
      : failing
        ? InstanceStatus.DEGRADED
        : InstanceStatus.OK;
    const ts = new Date().toISOString();
    const snap: HealthSnapshot = {
      serviceName: this.#o.service,
      instanceID: this.#o.instanceId,
      hostName: hostname(),
      sampledOn: ts,
      updatedOn: ts,
      processID: process.pid,
      architecture: process.arch,
      platform: process.platform,
      nodeVersion: process.version,
      memory: process.memoryUsage(),
      uptimeSeconds: round(process.uptime()),
      cpuPercent: round(((cpu.user + cpu.system) / 1000 / elapsedMs) * 100),
      eventLoopLagMs: lag,
      inFlight: this.#o.inFlight?.() ?? 0,
      status,
      checks,
      counters: this.#o.counters?.() ?? {},
    };
    this.#last = snap;
    return snap;
  }

  async #runCheck(fn: HealthCheck): Promise<CheckResult> {
    let t: NodeJS.Timeout | undefined;
    try {
      const limit = this.#o.checkTimeoutMs ?? 1000;
      const r = await Promise.race([
        Promise.resolve().then(fn),
        new Promise<CheckResult>((resolve) => {
          t = setTimeout(() => resolve({ ok: false, detail: `check timed out after ${limit} ms` }), limit);
        }),
      ]);
      return typeof r === "boolean" ? { ok: r } : { ok: Boolean(r?.ok), detail: r?.detail };
    } catch (err) {
      return { ok: false, detail: err instanceof Error ? err.message : String(err) };
    } finally {
      clearTimeout(t);
    }
  }

  /** Sample and write the snapshot; never throws (failures are counted). */
  async write(): Promise<void> {
    try {
      const snap = await this.sample();
      const { keys, service, instanceId: iid, intervalMs } = this.#o;
      await this.#o.redis.pipeline([
        ["SET", keys.health(service, iid), JSON.stringify(snap), "PX", intervalMs * 3],
        ["EXPIRE", keys.healthLog(service, iid), HEALTH_LOG_TTL_S],
      ]);
      this.stats.writes++;
    } catch (err) {
      this.stats.writeErrors++;
      this.#logger.debug({ err }, "health write failed");
    }
  }
}

/** One entry of the Hydra health log. */
export interface HealthLogEntry {
  ts: string;
  serviceName: string;
  type: string;
  processID: number;
  msg: string;
}

/**
 * Append to an instance's health log (LPUSH + LTRIM + EXPIRE in one MULTI, as Hydra does).
 * Rejects with a typed error when Redis is unavailable.
 */
export async function appendHealthLog(
  redis: RedisLike,
  keys: Keys,
  service: string,
  instanceId: string,
  type: string,
  msg: string,
): Promise<void> {
  const key = keys.healthLog(service, instanceId);
  const entry: HealthLogEntry = {
    ts: new Date().toISOString(),
    serviceName: service,
    type,
    processID: process.pid,
    msg,
  };
  await redis.multi([
    ["LPUSH", key, JSON.stringify(entry)],
    ["LTRIM", key, 0, HEALTH_LOG_MAX - 1],
    ["EXPIRE", key, HEALTH_LOG_TTL_S],
  ]);
}

/** Read an instance's health snapshot (`undefined` when absent or malformed). */
export async function readHealth(
  redis: RedisLike,
  keys: Keys,
  service: string,
  instanceId: string,
): Promise<HealthSnapshot | undefined> {
  const raw = await redis.command<string | null>(["GET", keys.health(service, instanceId)]);
  if (typeof raw !== "string") return undefined;
  try {
    return safeJsonParse(raw) as HealthSnapshot;
  } catch {
    return undefined;
  }
}

/** Read an instance's health log, newest first. */
export async function readHealthLog(
  redis: RedisLike,
  keys: Keys,
  service: string,
  instanceId: string,
): Promise<HealthLogEntry[]> {
  const raw = await redis.command<string[]>(["LRANGE", keys.healthLog(service, instanceId), 0, -1]);
  const out: HealthLogEntry[] = [];
  for (const r of raw) {
    try {
      out.push(safeJsonParse(r) as HealthLogEntry);
    } catch {
      /* skip malformed entries written by someone else */
    }
  }
  return out;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
