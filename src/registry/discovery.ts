/**
 * Discovery: who is out there, served from a local cache.
 *
 * The cache is filled on first use of a service, kept fresh by registry events (join / leave / update /
 * routes, published by every instance) and reconciled on a timer, so a call that needs an instance
 * costs no Redis round trip. Liveness comes from the per-service instance index (a ZSET of presence
 * deadlines on the Redis clock), so nothing here ever uses KEYS or SCAN. With Hydra interop on, Hydra
 * instances (which only write presence keys and the `nodes` hash) are found through the `nodes` hash
 * plus one PTTL per candidate, during reconciliation only.
 *
 * @module
 */

import { EventEmitter } from "node:events";
import { ErrorCode, StateError } from "../errors.js";
import { safeJsonParse } from "../json.js";
import { assertServiceName, isInstanceId, isServiceName, type Keys } from "../keys.js";
import { type Logger, silentLogger } from "../logger.js";
import { loadScript, type RedisLike } from "../redis/index.js";
import { type Instance, InstanceStatus, type NodeEntry, type RegistryEvent } from "./types.js";

const LIVE_INSTANCES = loadScript("live-instances", import.meta.url);

/** Options of {@link createDiscovery}. */
export interface DiscoveryOptions {
  /** Connection used for reads and the events subscription. */
  redis: RedisLike;
  /** Key builder of the namespace. */
  keys: Keys;
  /** Logger. @default silent */
  logger?: Logger;
  /**
   * How often cached services are re-read from Redis (catches crashed instances and missed events).
   * @default 1000
   */
  reconcileMs?: number;
  /**
   * Index entries dead for longer than this are pruned (and their `nodes` entries removed).
   * @default 60000
   */
  pruneAfterMs?: number;
  /**
   * Also discover Hydra instances through the `nodes` hash.
   * @default false (the service turns it on for namespace "hydra")
   */
  hydraInterop?: boolean;
}

/** Default discovery settings. */
export const DEFAULT_DISCOVERY_OPTIONS = Object.freeze({
  reconcileMs: 1000,
  pruneAfterMs: 60_000,
  hydraInterop: false,
});

/** Events emitted by {@link Discovery}. */
export interface DiscoveryEvents {
  /** An instance appeared (seen through an event or a reconciliation). */
  join: [Instance];
  /** An instance left or was found dead. */
  leave: [{ service: string; id: string }];
  /** A service's routes changed. */
  routes: [{ service: string }];
  /** A raw registry event arrived (config changes and the like). */
  event: [RegistryEvent];
}

interface CacheEntry {
  instances: Map<string, Instance>;
  loadedAt: number;
  /** When the last successful read was sent: Redis answered about a moment at or after this. */
  confirmedAt: number;
  loading: Promise<void> | undefined;
  /** The live instances as last computed (shared, never mutated); `undefined` after any change. */
  live: readonly Instance[] | undefined;
  /** When `live` may next change by time alone (the earliest deadline it relies on). */
  liveUntil: number;
  /**
   * Instances seen leaving, and when (local ms): a read sent before that moment may still list them,
   * and must not bring them back. Emptied by every read sent after them.
   */
  left: Map<string, number>;
}

/**
 * The live instances of a cache entry. An instance's presence deadline passing is not enough to drop
 * it: only a read sent after the deadline proves Redis saw no heartbeat. So while Redis cannot be read
 * (a pause, an outage of this caller's connection) instances are kept, not reported gone; once Redis
 * answers, the reconciliation (every `reconcileMs`) drops the dead ones.
 *
 * The list is computed once and shared until the entry changes or the clock passes the earliest
 * deadline it relies on (an instance whose deadline is after `confirmedAt` stays live whatever the
 * clock says), so a call does not allocate one.
 */
function liveList(entry: CacheEntry, now: number): readonly Instance[] {
  if (entry.live !== undefined && now < entry.liveUntil) return entry.live;
  const out: Instance[] = [];
  let until = Number.POSITIVE_INFINITY;
  for (const inst of entry.instances.values()) {
    if (inst.deadline > entry.confirmedAt) out.push(inst);
    else if (inst.deadline > now) {
      out.push(inst);
      if (inst.deadline < until) until = inst.deadline;
    }
  }
  entry.live = out;
  entry.liveUntil = until;
  return out;
}

/** The discovery cache. Get one from {@link createDiscovery}; `start()` subscribes, `stop()` releases. */
export class Discovery extends EventEmitter<DiscoveryEvents> {
  readonly #redis: RedisLike;
  readonly #keys: Keys;
  readonly #logger: Logger;
  readonly #reconcileMs: number;
  readonly #pruneAfterMs: number;
  readonly #hydra: boolean;
  readonly #cache = new Map<string, CacheEntry>();
  #services: Set<string> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  /** Redis clock minus local clock, in ms (from the last script reply). */
  #clockOffset = 0;
  readonly #onEvent = (raw: string) => this.#handleEvent(raw);
  /** Counters for health and tests. */
  readonly stats = { reconciles: 0, events: 0, badEvents: 0, pruned: 0, reconcileErrors: 0 };

  constructor(options: DiscoveryOptions) {
    super();
    this.#redis = options.redis;
    this.#keys = options.keys;
    this.#logger = options.logger ?? silentLogger;
    this.#reconcileMs = options.reconcileMs ?? DEFAULT_DISCOVERY_OPTIONS.reconcileMs;
    this.#pruneAfterMs = options.pruneAfterMs ?? DEFAULT_DISCOVERY_OPTIONS.pruneAfterMs;
    this.#hydra = options.hydraInterop ?? DEFAULT_DISCOVERY_OPTIONS.hydraInterop;
  }

  /** Subscribe to registry events and start reconciling. */
  async start(): Promise<void> {
    if (this.#running) return;
    this.#running = true;
    await this.#redis.subscribe(this.#keys.events(), this.#onEvent);
    this.#schedule();
  }

  /** Stop reconciling and unsubscribe. Idempotent. */
  async stop(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    try {
      await this.#redis.unsubscribe(this.#keys.events(), this.#onEvent);
    } catch {
      /* the connection is going away anyway */
    }
    this.#cache.clear();
  }

  #schedule(): void {
    if (!this.#running) return;
    this.#timer = setTimeout(() => {
      this.reconcile()
        .catch(() => {
          this.stats.reconcileErrors++;
        })
        .finally(() => this.#schedule());
    }, this.#reconcileMs);
    this.#timer.unref();
  }

  /** Re-read every cached service now (called on the timer and after a reconnect). */
  async reconcile(): Promise<void> {
    this.stats.reconciles++;
    const names = [...this.#cache.keys()];
    await Promise.all(names.map((n) => this.#load(n)));
  }

  /** Forget everything cached (after a reconnect, events may have been missed). */
  invalidate(): void {
    for (const e of this.#cache.values()) e.loadedAt = 0;
    this.#services = undefined;
  }

  #handleEvent(raw: string): void {
    let ev: RegistryEvent;
    try {
      ev = safeJsonParse(raw) as RegistryEvent;
      if (typeof ev !== "object" || ev === null || typeof ev.t !== "string" || !isServiceName(ev.svc)) {
        throw new Error("bad shape");
      }
    } catch {
      this.stats.badEvents++;
      return;
    }
    this.stats.events++;
    const entry = this.#cache.get(ev.svc);
    switch (ev.t) {
      case "join":
      case "update": {
        if (!isInstanceId(ev.iid)) {
          this.stats.badEvents++;
          return;
        }
        this.#services?.add(ev.svc);
        if (entry) {
          entry.left.delete(ev.iid);
          const prev = entry.instances.get(ev.iid);
          const ttl = ev.t === "join" && typeof ev.ttl === "number" ? ev.ttl : 0;
          const inst = toInstance(
            ev.svc,
            ev.iid,
            Math.max(prev?.deadline ?? 0, Date.now() + ttl),
            ev.node,
            true,
          );
          entry.instances.set(ev.iid, inst);
          entry.live = undefined;
          if (!prev) this.emit("join", inst);
        }
        break;
      }
      case "leave":
        if (entry) entry.left.set(ev.iid, Date.now());
        if (entry?.instances.delete(ev.iid)) {
          entry.live = undefined;
          this.emit("leave", { service: ev.svc, id: ev.iid });
        }
        break;
      case "routes":
        this.emit("routes", { service: ev.svc });
        break;
      default:
        break;
    }
    this.emit("event", ev);
  }

  async #load(service: string): Promise<void> {
    let entry = this.#cache.get(service);
    if (!entry) {
      entry = {
        instances: new Map(),
        loadedAt: 0,
        confirmedAt: 0,
        loading: undefined,
        live: undefined,
        liveUntil: 0,
        left: new Map(),
      };
      this.#cache.set(service, entry);
    }
    if (entry.loading) return entry.loading;
    const e = entry;
    const sentAt = Date.now();
    e.loading = this.#read(service)
      .then((found) => {
        // A read sent before a leave event may still list the instance: it stays gone.
        for (const [id, at] of e.left) {
          if (at >= sentAt) found.delete(id);
          else e.left.delete(id);
        }
        const before = e.instances;
        e.instances = found;
        e.loadedAt = Date.now();
        e.confirmedAt = sentAt;
        e.live = undefined;
        for (const [id, inst] of found) if (!before.has(id)) this.emit("join", inst);
        for (const id of before.keys()) if (!found.has(id)) this.emit("leave", { service, id });
      })
      .finally(() => {
        e.loading = undefined;
      });
    return e.loading;
  }

  async #read(service: string): Promise<Map<string, Instance>> {
    const t0 = Date.now();
    const reply = await this.#redis.script<Array<string | number>>(
      LIVE_INSTANCES,
      [this.#keys.instanceIndex(service)],
      [this.#pruneAfterMs],
    );
    const t1 = Date.now();
    const redisNow = Number(reply[0]);
    this.#clockOffset = redisNow - (t0 + t1) / 2;
    const deadlines = new Map<string, number>();
    for (let i = 1; i + 1 < reply.length; i += 2) {
      const id = String(reply[i]);
      if (isInstanceId(id)) deadlines.set(id, Number(reply[i + 1]) - this.#clockOffset);
    }
    const out = new Map<string, Instance>();
    const ids = [...deadlines.keys()];
    if (ids.length > 0) {
      const raw = await this.#redis.command<Array<string | null>>(["HMGET", this.#keys.nodes(), ...ids]);
      ids.forEach((id, i) => {
        const node = parseNode(raw[i]);
        out.set(id, toInstance(service, id, deadlines.get(id) ?? 0, node, true));
      });
    }
    if (this.#hydra) await this.#readHydra(service, out);
    return out;
  }

  /** Hydra instances: nodes entries of this service whose presence key is alive. */
  async #readHydra(service: string, out: Map<string, Instance>): Promise<void> {
    const all = await this.#redis.command<Record<string, string>>(["HGETALL", this.#keys.nodes()]);
    const candidates: Array<[string, NodeEntry]> = [];
    for (const [id, raw] of Object.entries(all)) {
      if (out.has(id) || !isInstanceId(id)) continue;
      const node = parseNode(raw);
      if (node?.serviceName === service) candidates.push([id, node]);
    }
    if (candidates.length === 0) return;
    const ttls = await this.#redis.pipeline(
      candidates.map(([id]) => ["PTTL", this.#keys.presence(service, id)]),
    );
    const now = Date.now();
    candidates.forEach(([id, node], i) => {
      const ttl = ttls[i];
      if (typeof ttl === "number" && ttl > 0)
        out.set(id, toInstance(service, id, now + ttl, node, node.rm !== undefined));
    });
  }

  /**
   * Live instances of a service, from the cache (read from Redis on first use). Instances whose
   * presence deadline has passed are left out once a read sent after that deadline confirmed it, so an
   * unreachable or paused Redis never makes live instances look gone.
   */
  async instances(service: string): Promise<Instance[]> {
    assertServiceName(service);
    if (!this.#running) throw new StateError(ErrorCode.NOT_RUNNING, "discovery is not started");
    let entry = this.#cache.get(service);
    if (!entry || entry.loadedAt === 0) {
      await this.#load(service);
      entry = this.#cache.get(service);
    }
    return entry ? liveList(entry, Date.now()).slice() : [];
  }

  /**
   * The cached live instances of a service without any I/O, or `undefined` when the service is not
   * cached yet (hot paths use this, then fall back to {@link instances}).
   */
  cachedInstances(service: string): readonly Instance[] | undefined {
    const entry = this.#cache.get(service);
    if (!entry || entry.loadedAt === 0) return undefined;
    return liveList(entry, Date.now());
  }

  /** Drop one instance from the cache at once (e.g. PUBLISH reached no receiver). */
  evict(service: string, id: string): void {
    const entry = this.#cache.get(service);
    // A read already on its way may still list it: only a read sent after now brings it back.
    entry?.left.set(id, Date.now());
    if (entry?.instances.delete(id)) {
      entry.live = undefined;
      this.emit("leave", { service, id });
    }
  }

  /** Every registered service name (the service index, plus Hydra services when interop is on). */
  async services(): Promise<string[]> {
    if (!this.#services) {
      const names = await this.#redis.command<string[]>(["SMEMBERS", this.#keys.serviceIndex()]);
      const set = new Set(names.filter((n) => isServiceName(n)));
      if (this.#hydra) {
        const all = await this.#redis.command<string[]>(["HVALS", this.#keys.nodes()]);
        for (const v of all) {
          const n = parseNode(v);
          if (n && isServiceName(n.serviceName)) set.add(n.serviceName);
        }
      }
      this.#services = set;
      // The list only grows through join events; re-read it after a reconciliation period.
      setTimeout(() => {
        this.#services = undefined;
      }, this.#reconcileMs).unref();
    }
    return [...this.#services].sort();
  }

  /**
   * Every live instance of every service, with its node entry. Prunes `nodes` entries of instances
   * whose presence is gone (checked per instance, so a live instance is never pruned).
   */
  async nodes(): Promise<Instance[]> {
    const all = await this.#redis.command<Record<string, string>>(["HGETALL", this.#keys.nodes()]);
    const byService = new Map<string, string[]>();
    for (const [id, raw] of Object.entries(all)) {
      const node = parseNode(raw);
      const svc = node?.serviceName;
      if (!svc || !isServiceName(svc)) continue;
      const list = byService.get(svc) ?? [];
      list.push(id);
      byService.set(svc, list);
    }
    for (const s of await this.services()) if (!byService.has(s)) byService.set(s, []);
    const out: Instance[] = [];
    const stale: Array<[string, string]> = [];
    for (const [svc, ids] of byService) {
      const live = await this.instances(svc);
      const liveIds = new Set(live.map((x) => x.id));
      out.push(...live);
      for (const id of ids) if (!liveIds.has(id)) stale.push([svc, id]);
    }
    if (stale.length > 0) await this.#prune(stale);
    return out.sort((a, b) => a.service.localeCompare(b.service) || a.id.localeCompare(b.id));
  }

  async #prune(stale: Array<[string, string]>): Promise<void> {
    const exists = await this.#redis.pipeline(
      stale.map(([svc, id]) => ["EXISTS", this.#keys.presence(svc, id)]),
    );
    const dead = stale.filter((_, i) => exists[i] === 0).map(([, id]) => id);
    if (dead.length === 0) return;
    await this.#redis.command(["HDEL", this.#keys.nodes(), ...dead]);
    this.stats.pruned += dead.length;
    this.#logger.debug({ dead }, "pruned nodes entries of dead instances");
  }

  /** Routes per service: `{ svc: ["[get]/v1/x/:id", …] }`; one service when `service` is given. */
  async routes(service?: string): Promise<Record<string, string[]>> {
    const names = service === undefined ? await this.services() : [service];
    if (service !== undefined) assertServiceName(service);
    const replies = await this.#redis.pipeline(names.map((n) => ["SMEMBERS", this.#keys.routes(n)]));
    const out: Record<string, string[]> = {};
    names.forEach((n, i) => {
      const r = replies[i];
      if (Array.isArray(r) && r.length > 0) out[n] = (r as string[]).map(String).sort();
      else if (service !== undefined) out[n] = [];
    });
    return out;
  }
}

/** Parse a `nodes` hash value; `undefined` when malformed. */
export function parseNode(raw: unknown): NodeEntry | undefined {
  if (typeof raw !== "string") return undefined;
  try {
    const v = safeJsonParse(raw);
    if (typeof v !== "object" || v === null || typeof (v as NodeEntry).serviceName !== "string")
      return undefined;
    return v as NodeEntry;
  } catch {
    return undefined;
  }
}

function toInstance(
  service: string,
  id: string,
  deadline: number,
  node: NodeEntry | undefined,
  redmesh: boolean,
): Instance {
  return {
    service,
    id,
    deadline,
    node,
    redmesh: redmesh && node?.rm !== undefined,
    status: node?.rm?.status ?? InstanceStatus.OK,
  };
}

/** Create a discovery cache (call `start()` before use). */
export function createDiscovery(options: DiscoveryOptions): Discovery {
  return new Discovery(options);
}
