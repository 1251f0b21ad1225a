/**
 * What the dashboard collects and when. Idle, it reads nothing; `snapshot()` then reads once with a
 * discovery of its own. The first page starts the active period ({@link Collector.activate}): one
 * discovery kept for it, one snapshot every `intervalMs` and right after each registry event, pushed
 * only when it differs from the last one. The last page to leave ends it ({@link Collector.deactivate}).
 *
 * @module
 */

import type { Keys } from "../keys.js";
import type { DuplicableRedis } from "../log/index.js";
import type { Logger } from "../logger.js";
import { type QueueRedis, readQueueStats } from "../queue/index.js";
import { createDiscovery, type Discovery } from "../registry/index.js";
import { collectSnapshot, type DashboardSnapshot, type QueueStatsSource } from "./snapshot.js";

/** Registry events arriving within this many ms are served by one collection. */
const EVENT_COALESCE_MS = 10;

/** Where changed snapshots go (the connected pages). */
export interface SnapshotSink {
  /** One snapshot, serialised. */
  snapshot(json: string): void;
}

/** Options of {@link Collector}. */
export interface CollectorOptions {
  /** The connection to read with (the dashboard's). */
  redis: DuplicableRedis;
  /** Key builder of the namespace shown. */
  keys: Keys;
  /** Queue statistics source; without it, every queue the services indexed. */
  queueStats?: QueueStatsSource | undefined;
  /** Collection period of the active period, in ms. */
  intervalMs: number;
  /** Also list Hydra instances. */
  hydraInterop: boolean;
  /** Diagnostics. */
  logger: Logger;
  /** Receives every snapshot that differs from the previous one, while active. */
  sink: SnapshotSink;
}

/** Reads snapshots: once on demand, and periodically during the active period. */
export class Collector {
  readonly #o: CollectorOptions;
  #active = false;
  #stopped = false;
  /** Discovery of the active period: created by its first collection, stopped when it ends. */
  #live: { discovery: Discovery; ready: Promise<void> } | undefined;
  #timer: NodeJS.Timeout | undefined;
  #collecting: Promise<void> | undefined;
  /** When the pending collection timer fires (epoch ms). */
  #due = 0;
  /** A registry event arrived during a collection: collect again right after it. */
  #again = false;
  #lastJson: string | undefined;
  /** Discoveries still stopping, which {@link stop} waits for. */
  readonly #ending = new Set<Promise<unknown>>();
  /** Counters: snapshots read, and snapshots pushed because they changed. */
  readonly stats = { collections: 0, snapshotsPushed: 0 };

  constructor(options: CollectorOptions) {
    this.#o = options;
  }

  /** True while a collection is scheduled or running. */
  get active(): boolean {
    return this.#timer !== undefined || this.#collecting !== undefined;
  }

  /** The last snapshot pushed in this active period (serialised), for a page that opens now. */
  get last(): string | undefined {
    return this.#lastJson;
  }

  /**
   * Read one snapshot now. Parts that cannot be read are listed in `errors`; rejects only when
   * discovery cannot start (Redis unreachable).
   */
  async snapshot(): Promise<DashboardSnapshot> {
    const { redis, keys } = this.#o;
    this.stats.collections++;
    let discovery = await this.#liveDiscovery();
    let temporary: Discovery | undefined;
    if (!discovery) {
      // No page open: a discovery just for this read (a running one would reconcile every second).
      temporary = this.#newDiscovery();
      try {
        await temporary.start();
      } catch (err) {
        await temporary.stop();
        throw err;
      }
      discovery = temporary;
    }
    try {
      return await collectSnapshot({
        redis,
        keys,
        namespace: keys.namespace,
        discovery,
        // Without a source of its own, every queue the services indexed (see readQueueStats).
        queueStats:
          this.#o.queueStats ??
          (async () => readQueueStats(redis as QueueRedis, keys, await discovery.services())),
      });
    } finally {
      await temporary?.stop();
    }
  }

  /** Begin the active period (the first page opened): collect now, then every `intervalMs`. */
  activate(): void {
    if (this.#stopped || this.#active) return;
    this.#active = true;
    this.#lastJson = undefined;
    if (this.#timer === undefined && this.#collecting === undefined) this.#tick();
  }

  /** End the active period (the last page left): stop the timer and the discovery. */
  deactivate(): void {
    this.#active = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#lastJson = undefined;
    const live = this.#live;
    this.#live = undefined;
    if (live) this.#track(live.ready.then(() => live.discovery.stop()));
  }

  /**
   * End the active period for good; resolves once the collection under way and the discovery stops
   * have ended (never rejects).
   */
  stop(): Promise<void> {
    this.#stopped = true;
    this.deactivate();
    return Promise.all([this.#collecting?.catch(() => undefined), ...this.#ending]).then(() => undefined);
  }

  #newDiscovery(): Discovery {
    const { redis, keys, hydraInterop, logger } = this.#o;
    return createDiscovery({ redis, keys, hydraInterop, logger });
  }

  /** The discovery of the active period, started on first use; `undefined` outside it. */
  async #liveDiscovery(): Promise<Discovery | undefined> {
    if (!this.#live && this.#active) {
      const discovery = this.#newDiscovery();
      // Registry events (join, leave, routes, config) trigger a collection at once instead of at the
      // next interval: an instance shows up on the page within milliseconds of its start().
      const soon = () => this.#collectSoon();
      discovery.on("event", soon).on("join", soon).on("leave", soon);
      const ready = discovery.start().catch(async (err: unknown) => {
        // Redis unreachable: drop it; the next collection tries a new one.
        if (this.#live?.discovery === discovery) this.#live = undefined;
        await discovery.stop();
        throw err;
      });
      this.#live = { discovery, ready };
    }
    const live = this.#live;
    if (!live) return undefined;
    await live.ready;
    return live.discovery;
  }

  #track(p: Promise<unknown>): void {
    const settled = p.catch(() => undefined);
    this.#ending.add(settled);
    void settled.finally(() => this.#ending.delete(settled));
  }

  /** Collect again shortly (bursts of events coalesce into one collection). */
  #collectSoon(): void {
    if (!this.#active) return;
    if (this.#collecting) {
      this.#again = true;
      return;
    }
    if (this.#timer !== undefined && this.#due - Date.now() <= EVENT_COALESCE_MS) return;
    clearTimeout(this.#timer);
    this.#schedule(EVENT_COALESCE_MS);
  }

  #schedule(ms: number): void {
    this.#due = Date.now() + ms;
    this.#timer = setTimeout(() => this.#tick(), ms);
  }

  #tick(): void {
    this.#timer = undefined;
    this.#again = false;
    this.#collecting = this.snapshot()
      .catch((err: unknown): DashboardSnapshot => {
        this.#o.logger.debug({ err }, "dashboard: snapshot failed");
        // Keep showing what was last known, with the reason it is not current.
        const last =
          this.#lastJson === undefined ? undefined : (JSON.parse(this.#lastJson) as DashboardSnapshot);
        return {
          namespace: this.#o.keys.namespace,
          services: last?.services ?? [],
          queues: last?.queues ?? { available: false, reason: "not read yet" },
          errors: [`cannot read the mesh: ${err instanceof Error ? err.message : String(err)}`],
        };
      })
      .then((snap) => {
        const json = JSON.stringify(snap);
        if (json === this.#lastJson || !this.#active) return;
        this.#lastJson = json;
        this.stats.snapshotsPushed++;
        this.#o.sink.snapshot(json);
      })
      .finally(() => {
        this.#collecting = undefined;
        if (this.#active) this.#schedule(this.#again ? EVENT_COALESCE_MS : this.#o.intervalMs);
      });
  }
}
