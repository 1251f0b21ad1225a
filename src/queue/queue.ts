/**
 * Reliable work queues on Redis lists: at-least-once delivery, nothing lost while Redis keeps its data.
 *
 * Life of a job: `add()` LPUSHes a UMF entry onto the pending list (Hydra's `mqrecieved` for the
 * default queue, so a Hydra `queueMessage` is consumed like any other job) or ZADDs it to the delayed
 * set; a worker claims it into its own in-progress list, runs it, and acknowledges, retries or
 * dead-letters it; a reaper pass run by every worker returns the jobs of workers that died.
 *
 * {@link Queue} is the public face and composes one part per job: `options.ts` (settings, types),
 * `producer.ts` (adds), `worker.ts` (claiming, handlers), `reaper.ts` (lease, reaper passes, delayed
 * jobs), `admin.ts` (stats, dead letters, redrive) and `durability.ts` (Redis' configuration, lost data).
 *
 * Stop order (`stop()`): the worker stops claiming (its blocking connection is closed) → running
 * handlers get the grace period (none when forced), then are aborted → acknowledgements and failures
 * are flushed → whatever is still in the worker's in-progress list goes back to the front of the
 * pending line → the lease is dropped → replicated adds in flight finish and the producer connection
 * closes.
 *
 * @module
 */

import { EventEmitter } from "node:events";
import { ErrorCode, StateError, ValidationError } from "../errors.js";
import { Lifecycle, LifeState, type LifeStateValue, type StopContext, type Stoppable } from "../lifecycle.js";
import { silentLogger } from "../logger.js";
import type { CommandOptions } from "../redis/index.js";
import { QueueAdmin } from "./admin.js";
import { QueueDurability } from "./durability.js";
import type { JobOptions } from "./job.js";
import {
  type AddResult,
  DEFAULT_STOP_GRACE_MS,
  type DeadLetter,
  type JobHandler,
  type ProcessOptions,
  type QueueEvents,
  type QueueOptions,
  type QueueSettings,
  type QueueStats,
  type QueueStopOptions,
  type QueueWarning,
  resolveProcessOptions,
  resolveQueueOptions,
} from "./options.js";
import { QueueProducer } from "./producer.js";
import { QueueWorker, type WorkerCounters } from "./worker.js";

/**
 * One queue of one service: producer (`add`, `addBulk`), worker (`process`, `pause`, `resume`,
 * `reap`), and admin (`stats`, `dead`, `redrive`, `checkDurability`, `verifyData`). Constructors do no
 * I/O. Its life cycle is the one of `src/lifecycle.ts`: `process()` starts it (a producer-only queue
 * stays idle), `stop()` ends it. Create with {@link createQueue} or `service.queue(name)`.
 */
export class Queue<T = unknown> extends EventEmitter<QueueEvents> implements Stoppable {
  /** Queue name. */
  readonly name: string;
  /** Owning service. */
  readonly service: string;
  /** This worker's consumer id. */
  readonly consumerId: string;
  /** Local counters (this process). */
  readonly counters: WorkerCounters;

  readonly #s: QueueSettings;
  readonly #life: Lifecycle;
  readonly #durability: QueueDurability;
  readonly #producer: QueueProducer;
  readonly #worker: QueueWorker;
  readonly #admin: QueueAdmin;

  constructor(options: QueueOptions) {
    super();
    const s = resolveQueueOptions(options);
    this.#s = s;
    this.name = s.name;
    this.service = s.service;
    this.consumerId = s.consumerId;
    this.#life = new Lifecycle(`queue "${s.name}" of "${s.service}"`);
    const redis = options.redis;
    const logger = options.logger ?? silentLogger;
    this.#durability = new QueueDurability({ redis, settings: s, logger, events: this });
    this.#producer = new QueueProducer({
      redis,
      settings: s,
      announce: () => this.#durability.announce(),
      accepting: () => this.#life.state !== LifeState.STOPPING && this.#life.state !== LifeState.STOPPED,
    });
    this.#worker = new QueueWorker({
      redis,
      settings: s,
      logger,
      events: this,
      durability: this.#durability,
    });
    this.#admin = new QueueAdmin({ redis, settings: s });
    this.counters = this.#worker.counters;
  }

  /**
   * Life-cycle state: `idle` until `process()` (a producer-only queue stays idle), `running` while
   * the worker runs (`starting` for a microtask before), then `stopping` and `stopped`.
   */
  get state(): LifeStateValue {
    return this.#life.state;
  }

  /** The Redis keys of this queue (for tools and tests). */
  get redisKeys(): Readonly<Record<string, string>> {
    return { ...this.#s.keys };
  }

  /** True while a worker is paused. */
  get paused(): boolean {
    return this.#worker.paused;
  }

  /** Jobs running now in this process. */
  get running(): number {
    return this.#worker.running;
  }

  // ---------------------------------------------------------------- producer

  /** Add one job. Resolves once Redis has it (`added: false` for a duplicate `jobId`). */
  add(body: T, options?: JobOptions): Promise<AddResult> {
    return this.#producer.add(body, options);
  }

  /** Add many jobs in one atomic step (one round trip). */
  addBulk(jobs: ReadonlyArray<{ body: T; options?: JobOptions }>): Promise<AddResult[]> {
    return this.#producer.addBulk(jobs);
  }

  // ---------------------------------------------------------------- worker

  /**
   * Start processing with `handler` (once per queue object). Returns at once; claiming starts in the
   * background and survives Redis outages (it resumes by itself). Errors are emitted as `error`.
   */
  process(handler: JobHandler<T>, options: ProcessOptions = {}): this {
    if (typeof handler !== "function") {
      throw new ValidationError("process() needs a handler function", { code: ErrorCode.INVALID_OPTIONS });
    }
    if (this.#life.state !== LifeState.IDLE) {
      throw new StateError(
        ErrorCode.ALREADY_STARTED,
        `queue "${this.name}" already has a worker (or was stopped); create another queue object`,
      );
    }
    const settings = resolveProcessOptions(options);
    // `up` runs synchronously here and cannot fail (everything was validated above); were it to,
    // closed() would carry the reason.
    this.#life
      .start(
        async () => this.#worker.start(handler as JobHandler<unknown>, settings),
        (ctx) => this.#down(ctx, 0),
      )
      .catch(() => undefined);
    return this;
  }

  /** Stop claiming new jobs (running ones finish). Local to this worker. */
  pause(): void {
    this.#worker.pause();
  }

  /** Resume claiming after {@link pause}. */
  resume(): void {
    this.#worker.resume();
  }

  /**
   * One reaper pass now: promote due delayed jobs and return the in-progress jobs of workers whose
   * lease expired or whose instance lost its presence. Resolves with the number of jobs returned.
   * Workers run it every `reapIntervalMs`; any process may call it.
   */
  reap(): Promise<number> {
    return this.#worker.reap();
  }

  // ---------------------------------------------------------------- admin

  /** Counts (see {@link QueueStats}). `inFlight` sums every live worker's in-progress list. */
  stats(options?: CommandOptions): Promise<QueueStats> {
    return this.#admin.stats(options);
  }

  /** List dead letters, newest first. */
  dead(options: { offset?: number; count?: number } = {}): Promise<DeadLetter[]> {
    return this.#admin.dead(options);
  }

  /**
   * Move dead letters back to the pending line with their attempts reset (all of them, the first
   * `count`, or those whose id is in `ids`). A malformed entry goes back as the raw text it was.
   * Resolves with the number moved.
   */
  redrive(options: { count?: number; ids?: readonly string[] } = {}): Promise<number> {
    return this.#admin.redrive(options);
  }

  // ---------------------------------------------------------------- durability

  /**
   * Read Redis' eviction policy and persistence; emit a `warning` (and log it) when the queue is not
   * durable. Resolves with the warnings (empty when all is well).
   */
  checkDurability(): Promise<QueueWarning[]> {
    return this.#durability.check();
  }

  /**
   * After a reconnect: did Redis keep this queue's data? Emits (and logs) a `QUEUE_DATA_LOST` warning
   * when the queue's entry in the service's queue index is gone. Resolves with `true` when data was
   * lost. Never rejects.
   */
  verifyData(): Promise<boolean> {
    return this.#durability.verifyData();
  }

  // ---------------------------------------------------------------- life cycle

  /**
   * Stop (see the module comment for the order): running handlers get `graceMs` to finish, then
   * their signal aborts and their jobs go back to the pending line (not counted as attempts).
   * `force: true` skips the grace period (and cuts one under way short). Memoised: every call returns
   * the same promise, which never rejects. A producer-only queue just closes its producer connection.
   */
  stop(options: QueueStopOptions = {}): Promise<void> {
    const graceMs = options.force ? 0 : (options.graceMs ?? DEFAULT_STOP_GRACE_MS);
    return this.#life.stop((ctx) => this.#down(ctx, graceMs), options);
  }

  /** Resolves once the queue is fully down (with `undefined`: a queue goes down only when asked). */
  closed(): Promise<Error | undefined> {
    return this.#life.closed();
  }

  async #down(ctx: StopContext, graceMs: number): Promise<void> {
    await this.#worker.stop(ctx, graceMs);
    await this.#producer.close(ctx, graceMs);
  }

  /** Same as `stop()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** Create a queue (no I/O until used). */
export function createQueue<T = unknown>(options: QueueOptions): Queue<T> {
  return new Queue<T>(options);
}
