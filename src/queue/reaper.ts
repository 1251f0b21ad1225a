/**
 * The upkeep side of a queue's worker: it refreshes this worker's lease, runs the reaper pass (promote
 * due delayed jobs; return the in-progress lists of workers whose lease expired or whose instance lost
 * its presence), keeps a timer for the next delayed job and listens on the `wake` channel for "a
 * delayed job is due soon".
 *
 * Every worker runs it and there is no leader: electing one would add a failure mode of its own (a
 * dead or partitioned leader stalls recovery until a new one is chosen), while the passes are safe to
 * run side by side because reap.lua and requeue.lua decide atomically in Redis (requeue.lua re-checks
 * the lease), and the jitter keeps many workers from reaping in lock step.
 *
 * @module
 */

import type { Logger } from "../logger.js";
import { loadScript } from "../redis/index.js";
import type { QueueEmitter, QueueRedis, QueueSettings } from "./options.js";

const REAP = loadScript("reap", import.meta.url);
const REQUEUE = loadScript("requeue", import.meta.url);
const LEASE = loadScript("lease", import.meta.url);

/** Delayed jobs promoted per reaper pass (the next pass, or the delay timer, takes the rest). */
const PROMOTE_BATCH = 1000;
/** Dead workers handled per reaper pass. */
const REAP_BATCH = 20;

/** The counters the reaper adds to (the worker's `WorkerCounters`). */
export interface ReaperCounters {
  /** Jobs returned from other (dead) workers by this worker's reaper. */
  requeuedOthers: number;
  /** Reaper passes run. */
  reaps: number;
}

/** Options of {@link QueueReaper}. */
export interface QueueReaperOptions {
  /** Command connection (also the one the wake channel is subscribed on). */
  redis: QueueRedis;
  /** The queue's settings and keys. */
  settings: QueueSettings;
  /** Where returned jobs of dead workers are logged. */
  logger: Logger;
  /** Where `requeued` is emitted (the `Queue`). */
  events: QueueEmitter;
  /** The worker's counters (`reaps`, `requeuedOthers` are counted here). */
  counters: ReaperCounters;
  /** The worker's error report (it knows whether the worker is down and errors are to be dropped). */
  report: (err: unknown, what: string) => void;
}

/**
 * The lease, reaper passes, delayed-job promotion and wake subscription of one worker (see the module
 * comment). Created idle; {@link QueueReaper.start} starts it. Its stop comes in two parts, so the
 * worker can keep its lease until it has returned its own jobs: {@link QueueReaper.stopPasses}, then
 * {@link QueueReaper.stopLease}.
 */
export class QueueReaper {
  readonly #redis: QueueRedis;
  readonly #s: QueueSettings;
  readonly #logger: Logger;
  readonly #events: QueueEmitter;
  readonly #counters: ReaperCounters;
  readonly #report: (err: unknown, what: string) => void;

  /** From start() until stopPasses(): the worker runs (it is in its RUNNING phase exactly then). */
  #on = false;
  #leaseTimer: NodeJS.Timeout | undefined;
  #reapTimer: NodeJS.Timeout | undefined;
  #delayTimer: NodeJS.Timeout | undefined;
  #delayAt = Number.POSITIVE_INFINITY;
  #subscribed = false;
  readonly #wakeListener = (message: string) => {
    const dueIn = Number(message);
    if (Number.isFinite(dueIn)) this.promoteAt(Date.now() + Math.max(0, dueIn));
  };

  constructor(options: QueueReaperOptions) {
    this.#redis = options.redis;
    this.#s = options.settings;
    this.#logger = options.logger;
    this.#events = options.events;
    this.#counters = options.counters;
    this.#report = options.report;
  }

  /**
   * Start refreshing the lease (every third of `leaseMs`) and run the first reaper pass at once. The
   * worker subscribes the wake channel afterwards with {@link QueueReaper.subscribeWake}.
   */
  start(): void {
    this.#on = true;
    this.#leaseTimer = setInterval(() => this.#refreshLease(), Math.max(50, Math.floor(this.#s.leaseMs / 3)));
    this.#scheduleReap(0);
  }

  /** Listen for "a delayed job is due soon" (retried from the reaper pass until it succeeds). */
  subscribeWake(): void {
    if (this.#subscribed || !this.#on) return;
    this.#subscribed = true;
    this.#redis.subscribe(this.#s.keys.wake, this.#wakeListener).then(
      // Wake-ups published before the subscription was active are missed: look at the set now.
      () => this.#promote().catch((err) => this.#report(err, "promote")),
      (err) => {
        this.#subscribed = false;
        this.#report(err, "subscribe");
      },
    );
  }

  /** Promote due delayed jobs at `atLocalMs` (local clock), unless a promotion is due sooner. */
  promoteAt(atLocalMs: number): void {
    if (!this.#on) return;
    if (atLocalMs >= this.#delayAt) return;
    clearTimeout(this.#delayTimer);
    this.#delayAt = atLocalMs;
    this.#delayTimer = setTimeout(
      () => {
        this.#delayTimer = undefined;
        this.#delayAt = Number.POSITIVE_INFINITY;
        this.#promote().catch((err) => this.#report(err, "promote"));
      },
      Math.max(0, atLocalMs - Date.now() + 1),
    );
  }

  /**
   * One reaper pass now: promote due delayed jobs and return the in-progress jobs of workers whose
   * lease expired or whose instance lost its presence. Resolves with the number of jobs returned.
   * Workers run it every `reapIntervalMs`; any process may call it.
   */
  async reap(): Promise<number> {
    this.#counters.reaps++;
    this.subscribeWake();
    const k = this.#s.keys;
    const res = await this.#redis.script<unknown[]>(REAP, this.#reapKeys(), [PROMOTE_BATCH, REAP_BATCH]);
    this.#afterPromote(res);
    let total = 0;
    for (const cid of res.slice(3).map(String)) {
      if (cid === this.#s.consumerId && this.#on) {
        // Our own lease lapsed (a stalled event loop): we are alive, so keep our jobs and renew.
        this.#refreshLease();
        continue;
      }
      const n = Number(
        await this.#redis.script(
          REQUEUE,
          [k.consumers, this.#s.activeKeyOf(cid), k.pending, k.index, k.stats],
          [cid, "0"],
        ),
      );
      if (n > 0) {
        total += n;
        this.#counters.requeuedOthers += n;
        this.#logger.warn(
          { queue: this.#s.name, consumerId: cid, count: n },
          "returned a dead worker's jobs",
        );
        if (this.#events.listenerCount("requeued") > 0)
          this.#events.emit("requeued", { consumerId: cid, count: n });
      }
    }
    return total;
  }

  /**
   * First part of the stop, when the worker stops claiming: no further reaper pass or promotion
   * (a pass under way finishes but schedules none), and the wake channel is unsubscribed. Never rejects.
   */
  async stopPasses(): Promise<void> {
    this.#on = false;
    clearTimeout(this.#reapTimer);
    clearTimeout(this.#delayTimer);
    this.#reapTimer = undefined;
    this.#delayTimer = undefined;
    await this.#redis.unsubscribe(this.#s.keys.wake, this.#wakeListener).catch(() => undefined);
  }

  /** Last part of the stop, once the worker has returned its jobs: stop refreshing the lease. */
  stopLease(): void {
    clearInterval(this.#leaseTimer);
    this.#leaseTimer = undefined;
  }

  #refreshLease(): void {
    this.#redis
      .script(LEASE, [this.#s.keys.consumers], [this.#s.consumerId, this.#s.leaseMs])
      .catch((err) => this.#report(err, "lease"));
  }

  #scheduleReap(delayMs: number): void {
    if (!this.#on) return;
    this.#reapTimer = setTimeout(() => {
      this.#reapTimer = undefined;
      this.reap()
        .catch((err) => this.#report(err, "reap"))
        .finally(() => {
          const base = this.#s.reapIntervalMs;
          // ±20% jitter so many workers do not reap in lock step.
          this.#scheduleReap(Math.round(base * (0.8 + Math.random() * 0.4)));
        });
    }, delayMs);
  }

  #reapKeys(): string[] {
    const k = this.#s.keys;
    return [k.consumers, k.index, k.delayed, k.pending];
  }

  async #promote(): Promise<void> {
    const res = await this.#redis.script<number[]>(REAP, this.#reapKeys(), [PROMOTE_BATCH, 0]);
    this.#afterPromote(res);
  }

  #afterPromote(res: unknown[]): void {
    const promoted = Number(res[0]);
    const nextDue = Number(res[1]);
    const now = Number(res[2]);
    if (promoted >= PROMOTE_BATCH) this.promoteAt(Date.now());
    else if (nextDue >= 0) this.promoteAt(Date.now() + (nextDue - now));
  }
}
