/**
 * Registration of this instance: the `:service` key, the `nodes` entry, presence with its heartbeat,
 * the instance and service indexes, routes, and deregistration on stop.
 *
 * Heartbeat cost: one `EVALSHA` per interval (SET PX + ZADD inside), i.e. 2 Redis writes per second
 * per instance at the defaults, the same as Hydra's SETEX + HSET. When the heartbeat finds its
 * presence had expired or its index entry missing (Redis restarted or flushed, or the process stalled
 * past its TTL) it re-registers everything at once and announces itself again.
 *
 * @module
 */

import { normalizeRoutePattern } from "../envelope/index.js";
import type { Keys } from "../keys.js";
import { type Logger, silentLogger } from "../logger.js";
import { loadScript, type RedisLike } from "../redis/index.js";
import type { NodeEntry, RegistryEvent } from "./types.js";

const REGISTER = loadScript("register", import.meta.url);
const HEARTBEAT = loadScript("heartbeat", import.meta.url);
/** Delay of the next heartbeat after a failed one (a fifth of the default 1 s interval). */
const RETRY_AFTER_FAILURE_MS = 200;
const DEREGISTER = loadScript("deregister", import.meta.url);

/** Options of {@link Registration}. */
export interface RegistrationOptions {
  redis: RedisLike;
  keys: Keys;
  service: string;
  instanceId: string;
  /** Builds the current `nodes` entry (called at each registration and update). */
  node: () => NodeEntry;
  /** Service type written in the `:service` key (Hydra's `serviceType`). @default "" */
  serviceType?: string;
  /** Presence TTL. @default 3000 */
  presenceTtlMs: number;
  /** Heartbeat interval. @default 1000 */
  heartbeatMs: number;
  logger?: Logger;
  /** Called after a heartbeat found the registration lost and restored it. */
  onReregistered?: () => void;
}

/** This instance's registration. `register()` then `startHeartbeat()`; `deregister()` on stop. */
export class Registration {
  readonly #o: RegistrationOptions;
  readonly #logger: Logger;
  #timer: NodeJS.Timeout | undefined;
  #beating = false;
  #registered = false;
  #routes: string[] = [];
  /** Counters for health and tests. */
  readonly stats = { heartbeats: 0, heartbeatErrors: 0, reregistrations: 0 };
  /** Slowest heartbeat round trip (ms) since the last {@link takeSlowestHeartbeat}; a failure counts as +Infinity. */
  #slowestMs = 0;

  /** The slowest heartbeat round trip since the previous call (ms), and reset. Health uses it. */
  takeSlowestHeartbeat(): number {
    const v = this.#slowestMs;
    this.#slowestMs = 0;
    return v;
  }

  constructor(options: RegistrationOptions) {
    this.#o = options;
    this.#logger = options.logger ?? silentLogger;
  }

  /** True between a successful `register()` and `deregister()`. */
  get registered(): boolean {
    return this.#registered;
  }

  /** Write every registration key and announce the instance (`join`). */
  async register(): Promise<void> {
    const { keys, service, instanceId: iid } = this.#o;
    const node = this.#o.node();
    const serviceEntry = JSON.stringify({
      serviceName: service,
      type: this.#o.serviceType ?? "",
      registeredOn: new Date().toISOString(),
    });
    await this.#o.redis.script(
      REGISTER,
      [keys.service(service), keys.presence(service, iid), keys.instanceIndex(service)],
      [iid, this.#o.presenceTtlMs, serviceEntry],
    );
    const cmds: Array<Array<string | number>> = [
      ["HSET", keys.nodes(), iid, JSON.stringify(node)],
      ["SADD", keys.serviceIndex(), service],
    ];
    if (this.#routes.length > 0) cmds.push(["SADD", keys.routes(service), ...this.#routes]);
    await this.#pipelineOrThrow(cmds);
    this.#registered = true;
    await this.#publish({ t: "join", svc: service, iid, ttl: this.#o.presenceTtlMs, node });
  }

  /** Start the presence heartbeat (first beat after one interval; `register()` just wrote presence). */
  startHeartbeat(): void {
    if (this.#timer) return;
    const tick = (delayMs: number) => {
      this.#timer = setTimeout(() => {
        const failures = this.stats.heartbeatErrors;
        this.heartbeat().finally(() => {
          // After a failed beat, try again soon: presence may have expired during the outage, and
          // callers see no instance until it is written again. A standalone connection also beats on
          // `ready`, but a Cluster shard failing over gives no such event (cluster-faults.test.ts).
          const failed = this.stats.heartbeatErrors > failures;
          if (this.#timer)
            tick(failed ? Math.min(this.#o.heartbeatMs, RETRY_AFTER_FAILURE_MS) : this.#o.heartbeatMs);
        });
      }, delayMs);
    };
    tick(this.#o.heartbeatMs);
  }

  /** Stop the heartbeat timer. */
  stopHeartbeat(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * One heartbeat now. Never throws: failures are counted and logged (Redis may be down; the next
   * beat or the reconnect handler restores presence).
   */
  async heartbeat(): Promise<void> {
    if (this.#beating || !this.#registered) return;
    this.#beating = true;
    const { keys, service, instanceId: iid } = this.#o;
    const t0 = performance.now();
    try {
      const [lost] = await this.#o.redis.script<[number, number]>(
        HEARTBEAT,
        [keys.presence(service, iid), keys.instanceIndex(service)],
        [iid, this.#o.presenceTtlMs],
        { timeoutMs: this.#o.presenceTtlMs },
      );
      this.stats.heartbeats++;
      this.#slowestMs = Math.max(this.#slowestMs, performance.now() - t0);
      if (lost === 1) {
        this.stats.reregistrations++;
        this.#logger.warn(
          { service, iid },
          "presence was lost (Redis restarted or the process stalled); re-registering",
        );
        await this.register();
        this.#o.onReregistered?.();
      }
    } catch (err) {
      this.stats.heartbeatErrors++;
      this.#slowestMs = Number.POSITIVE_INFINITY;
      this.#logger.debug({ err }, "heartbeat failed");
    } finally {
      this.#beating = false;
    }
  }

  /** Rewrite this instance's `nodes` entry (status change, port known…) and announce it. */
  async update(): Promise<void> {
    if (!this.#registered) return;
    const { keys, service, instanceId: iid } = this.#o;
    const node = this.#o.node();
    await this.#o.redis.command(["HSET", keys.nodes(), iid, JSON.stringify(node)]);
    await this.#publish({ t: "update", svc: service, iid, node });
  }

  /**
   * Register HTTP routes (`[get]/v1/orders/:id`, …) in the Hydra-compatible routes set. Like Hydra,
   * the set is replaced: it holds exactly the routes the service answers now.
   */
  async registerRoutes(routes: readonly string[]): Promise<string[]> {
    const normalized = [...new Set(routes.map((r) => normalizeRoutePattern(r)))].sort();
    this.#routes = normalized;
    if (!this.#registered) return normalized;
    const { keys, service } = this.#o;
    const cmds: Array<Array<string | number>> = [["DEL", keys.routes(service)]];
    if (normalized.length > 0) cmds.push(["SADD", keys.routes(service), ...normalized]);
    await this.#o.redis.multi(cmds);
    await this.#publish({ t: "routes", svc: service });
    return normalized;
  }

  /** Routes registered by this instance. */
  get routes(): readonly string[] {
    return this.#routes;
  }

  /** Remove presence, index entry, health snapshot and `nodes` entry, and announce `leave`. */
  async deregister(): Promise<void> {
    this.stopHeartbeat();
    if (!this.#registered) return;
    this.#registered = false;
    const { keys, service, instanceId: iid } = this.#o;
    await this.#o.redis.script(
      DEREGISTER,
      [keys.presence(service, iid), keys.instanceIndex(service), keys.health(service, iid)],
      [iid],
    );
    await this.#pipelineOrThrow([["HDEL", keys.nodes(), iid]]);
    await this.#publish({ t: "leave", svc: service, iid });
  }

  async #publish(ev: RegistryEvent): Promise<void> {
    await this.#o.redis.publish(this.#o.keys.events(), JSON.stringify(ev), { timeoutMs: 5000 });
  }

  async #pipelineOrThrow(cmds: Array<Array<string | number>>): Promise<void> {
    const res = await this.#o.redis.pipeline(cmds);
    const err = res.find((r) => r instanceof Error);
    if (err) throw err;
  }
}
