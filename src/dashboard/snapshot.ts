/**
 * What the dashboard shows, gathered from Redis in one pass: services → live instances → latest
 * health, routes, config versions, and queue stats through a pluggable seam. Read-only: nothing here
 * writes to Redis (discovery's `nodes()` prunes dead entries, so it is not used).
 *
 * @module
 */

import { createConfigClient } from "../config/index.js";
import type { HealthSnapshot } from "../health/index.js";
import { safeJsonParse } from "../json.js";
import type { Keys } from "../keys.js";
import type { RedisLike } from "../redis/index.js";
import type { Discovery } from "../registry/index.js";

/** Queue counters of one queue, as the queue module's `stats()` gives them. */
export interface DashboardQueueStats {
  service: string;
  queue: string;
  pending: number;
  inFlight: number;
  delayed: number;
  dead: number;
  processed: number;
  failed: number;
}

/** The seam for queue statistics: the queue module (or anything else) plugs in here. */
export type QueueStatsSource = () => Promise<DashboardQueueStats[]>;

/** The parts of a health snapshot the page shows. */
export interface DashboardHealth {
  status: string;
  cpuPercent: number;
  rssBytes: number;
  heapUsedBytes: number;
  lagP99Ms: number;
  lagMeanMs: number;
  inFlight: number;
  uptimeSeconds: number;
  /** ISO-8601 time of the sample. */
  sampledOn: string;
  checks: Array<{ name: string; ok: boolean }>;
}

/** One live instance. */
export interface DashboardInstance {
  id: string;
  version: string;
  status: string;
  host: string;
  pid: number | null;
  /** `ip:port` when the instance advertises an HTTP address. */
  address: string | null;
  /** ISO-8601 start time, when known. */
  startedOn: string | null;
  /** False for Hydra (or unknown) instances. */
  redmesh: boolean;
  /** Latest health, `null` while the instance has written none (or it expired). */
  health: DashboardHealth | null;
}

/** One service. */
export interface DashboardService {
  name: string;
  instances: DashboardInstance[];
  routes: string[];
  /** Active config version and every stored one (natural order); `null` when none is stored. */
  config: { active: string | null; versions: string[] } | null;
}

/** Everything the page shows except the log tail. */
export interface DashboardSnapshot {
  namespace: string;
  services: DashboardService[];
  /** Queue stats, or why there are none. */
  queues: { available: true; items: DashboardQueueStats[] } | { available: false; reason: string };
  /** Parts that could not be read this round (shown as a warning; the rest is still current). */
  errors: string[];
}

/** What {@link collectSnapshot} reads through. */
export interface CollectContext {
  redis: RedisLike;
  keys: Keys;
  namespace: string;
  discovery: Discovery;
  queueStats?: QueueStatsSource | undefined;
}

const message = (err: unknown) => (err instanceof Error ? err.message : String(err));
const num = (v: unknown) => (typeof v === "number" && Number.isFinite(v) ? v : 0);

function toHealth(raw: unknown): DashboardHealth | null {
  if (typeof raw !== "string") return null;
  let h: Partial<HealthSnapshot>;
  try {
    h = safeJsonParse(raw) as Partial<HealthSnapshot>;
  } catch {
    return null;
  }
  if (typeof h !== "object" || h === null) return null;
  const checks =
    typeof h.checks === "object" && h.checks !== null
      ? Object.entries(h.checks).map(([name, c]) => ({ name, ok: Boolean(c?.ok) }))
      : [];
  return {
    status: typeof h.status === "string" ? h.status : "unknown",
    cpuPercent: num(h.cpuPercent),
    rssBytes: num(h.memory?.rss),
    heapUsedBytes: num(h.memory?.heapUsed),
    lagP99Ms: num(h.eventLoopLagMs?.p99),
    lagMeanMs: num(h.eventLoopLagMs?.mean),
    inFlight: num(h.inFlight),
    uptimeSeconds: num(h.uptimeSeconds),
    sampledOn: typeof h.sampledOn === "string" ? h.sampledOn : "",
    checks: checks.sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/**
 * Read one snapshot. Never rejects: a part that fails (Redis down, a queue seam that throws) is
 * reported in `errors` and left empty.
 */
export async function collectSnapshot(ctx: CollectContext): Promise<DashboardSnapshot> {
  const errors: string[] = [];
  const { redis, keys, discovery } = ctx;
  let names: string[] = [];
  try {
    names = await discovery.services();
  } catch (err) {
    errors.push(`services: ${message(err)}`);
  }
  const queuesP = readQueues(ctx.queueStats);
  const services = await Promise.all(
    names.map(async (name): Promise<DashboardService> => {
      const svc: DashboardService = { name, instances: [], routes: [], config: null };
      try {
        const list = await discovery.instances(name);
        const [healthRaw, routesRaw] = await Promise.all([
          list.length === 0
            ? Promise.resolve([])
            : redis.pipeline(list.map((i) => ["GET", keys.health(name, i.id)])),
          redis.command<string[]>(["SMEMBERS", keys.routes(name)]),
        ]);
        svc.routes = (Array.isArray(routesRaw) ? routesRaw.map(String) : []).sort();
        svc.instances = list
          .map(
            (i, k): DashboardInstance => ({
              id: i.id,
              version: i.node?.version ?? "?",
              status: i.status,
              host: i.node?.hostName ?? "",
              pid: typeof i.node?.processID === "number" ? i.node.processID : null,
              address: i.node?.ip && i.node.port ? `${i.node.ip}:${i.node.port}` : null,
              startedOn: i.node?.rm?.startedOn ?? null,
              redmesh: i.redmesh,
              health: toHealth(healthRaw[k]),
            }),
          )
          .sort((a, b) => a.id.localeCompare(b.id));
      } catch (err) {
        errors.push(`${name}: ${message(err)}`);
      }
      try {
        const history = await createConfigClient({ redis, keys, service: name }).history();
        if (history.length > 0) {
          svc.config = {
            active: history.find((h) => h.active)?.version ?? null,
            versions: history.map((h) => h.version),
          };
        }
      } catch (err) {
        errors.push(`${name} config: ${message(err)}`);
      }
      return svc;
    }),
  );
  const queues = await queuesP;
  if (queues.available === false && queues.error) errors.push(`queues: ${queues.reason}`);
  return {
    namespace: ctx.namespace,
    services,
    queues: queues.available
      ? { available: true, items: queues.items }
      : { available: false, reason: queues.reason },
    errors,
  };
}

type QueueRead =
  | { available: true; items: DashboardQueueStats[] }
  | { available: false; reason: string; error: boolean };

async function readQueues(source: QueueStatsSource | undefined): Promise<QueueRead> {
  if (!source)
    return { available: false, reason: "queue statistics are not connected to this dashboard", error: false };
  try {
    const items = await source();
    if (!Array.isArray(items)) throw new TypeError("queueStats() did not return an array");
    return {
      available: true,
      items: items
        .map((q) => ({
          service: String(q.service),
          queue: String(q.queue),
          pending: num(q.pending),
          inFlight: num(q.inFlight),
          delayed: num(q.delayed),
          dead: num(q.dead),
          processed: num(q.processed),
          failed: num(q.failed),
        }))
        .sort((a, b) => a.service.localeCompare(b.service) || a.queue.localeCompare(b.queue)),
    };
  } catch (err) {
    return { available: false, reason: `could not read queue statistics: ${message(err)}`, error: true };
  }
}
