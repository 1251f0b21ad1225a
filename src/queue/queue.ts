/**
 * Reliable work queues on Redis lists: at-least-once delivery, nothing lost while Redis keeps its data.
 *
 * Life of a job: `add()` LPUSHes a UMF entry onto the pending list (Hydra's `mqrecieved` for the
 * default queue, so a Hydra `queueMessage` is consumed like any other job) or ZADDs it to the delayed
 * set. A worker claims entries atomically into its own in-progress list (`LMOVE` inside a Lua script
 * that also acknowledges finished jobs and refreshes the worker's lease, so one round trip serves a
 * whole batch; `BLMOVE` on a dedicated connection when the queue is empty). Success removes the entry
 * (acks are batched into the next claim); a throw or a timeout rewrites it with one more attempt and
 * puts it back (after its backoff, through the delayed set) or, out of attempts, onto the dead-letter
 * list with the reason. A reaper pass run by every worker (no leader) promotes due delayed jobs and
 * returns the in-progress lists of workers whose lease expired or whose instance lost its presence.
 *
 * Stop order (`stop()`): stop claiming (close the blocking connection) → let running handlers finish
 * within the grace period, then abort them → flush acknowledgements and failures → return whatever is
 * still in this worker's in-progress list to the front of the pending line → drop the lease.
 *
 * @module
 */

import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { settleWithin } from "../async.js";
import { runWithContext } from "../context.js";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../envelope/index.js";
import {
  AbortError,
  ErrorCode,
  type RedmeshError,
  RedmeshError as RedmeshErrorClass,
  StateError,
  TimeoutError,
  ValidationError,
} from "../errors.js";
import { assertInstanceId, assertResourceName, assertServiceName, type Keys } from "../keys.js";
import { type Logger, silentLogger } from "../logger.js";
import { type CommandOptions, loadScript, type RedisArg, type RedisLike } from "../redis/index.js";
import {
  type Backoff,
  backoffDelay,
  checkAttempts,
  type EncodedJob,
  type EntryMeta,
  encodeJob,
  type JobDefaults,
  type JobOptions,
  malformedDeadLetter,
  type ParsedEntry,
  parseEntry,
  resolveBackoff,
  withMeta,
} from "./job.js";

const ADD = loadScript("add", import.meta.url);
const CYCLE = loadScript("cycle", import.meta.url);
const FAIL = loadScript("fail", import.meta.url);
const REAP = loadScript("reap", import.meta.url);
const REQUEUE = loadScript("requeue", import.meta.url);
const LEASE = loadScript("lease", import.meta.url);
const REDRIVE = loadScript("redrive", import.meta.url);
const RELEASE = loadScript("release", import.meta.url);

/** A connection for blocking commands (what `RedisConnection.duplicate()` returns). */
export interface BlockingConnection extends RedisLike {
  connect(options?: { timeoutMs?: number }): Promise<void>;
  close(options?: { timeoutMs?: number }): Promise<void>;
  destroy(): void;
}

/** The connection a queue needs: commands, scripts, pub/sub, and a way to open a blocking connection. */
export interface QueueRedis extends RedisLike {
  duplicate(clientName?: string): BlockingConnection;
}

/** Options of {@link createQueue}. Durations are in milliseconds. */
export interface QueueOptions {
  /** Command connection (a service's `redis`). Not closed by the queue. */
  redis: QueueRedis;
  /** Key builder of the namespace. */
  keys: Keys;
  /** Service that owns the queue (its keys carry that service's name). */
  service: string;
  /** Queue name; `"default"` is the service's own Hydra-compatible queue (`mqrecieved`). @default "default" */
  name?: string;
  /**
   * Worker identity: the in-progress list and lease are per consumer. A service passes its instance
   * id, so the reaper can also use the registry's presence. @default a fresh random id
   */
  consumerId?: string;
  /** Sender route written in `frm` of added jobs. @default `"<service>:/"` */
  from?: string;
  /** Attempts for jobs that do not say (and for Hydra messages). @default 3 */
  attempts?: number;
  /** Backoff for jobs that do not say. @default { type: "exponential", delay: 100 } */
  backoff?: Backoff;
  /** Worker lease: a worker silent for this long loses its in-progress jobs to others. @default 5000 */
  leaseMs?: number;
  /** How often each worker runs the reaper pass (jittered ±20%). @default 1000 */
  reapIntervalMs?: number;
  /** Longest a blocking claim waits before looking again. @default 1000 */
  blockMs?: number;
  /** Largest entry accepted (add) or processed (claim). @default 1 MiB */
  maxMessageBytes?: number;
  /** Check Redis' eviction policy and persistence when a worker starts, and warn. @default true */
  checkDurability?: boolean;
  /**
   * Replicas that must have an added job before `add`/`addBulk` resolves (Redis `WAIT`, sent right
   * behind the write on the queue's own producer connection). Redis replicates asynchronously: a
   * primary that fails over just after acknowledging a write loses it, so with `0` an add acknowledged
   * in the moment around a failover can vanish. With `1`, an add that resolved is on a replica too,
   * and survives a failover to it; one that no replica confirmed within `replicaTimeoutMs` rejects
   * with a retryable `ERR_NOT_REPLICATED` (the job may or may not be in the queue: adding it again is
   * at-least-once; give it a `jobId` to add it once). The price: each add waits for a replica's
   * acknowledgement, one more connection per producing queue, and while no replica is connected
   * (after the primary was lost, until a replica is back) every add fails after `replicaTimeoutMs`.
   * Adds after `stop()` reject with `ERR_NOT_RUNNING`.
   * @default 0
   */
  replicas?: number;
  /** How long an add waits for `replicas` to confirm it (see {@link QueueOptions.replicas}). @default 1000 */
  replicaTimeoutMs?: number;
  /** Count each running job as in-flight work of the owning service (returns the "done" function). */
  beginWork?: () => () => void;
  /** pino-compatible logger. @default silent */
  logger?: Logger;
}

/** Default queue settings. */
export const DEFAULT_QUEUE_OPTIONS = Object.freeze({
  name: "default",
  attempts: 3,
  backoff: Object.freeze({ type: "exponential", delay: 100 }) as Backoff,
  // Lease ≥ presence TTL (3 s) so a worker on a busy event loop is not robbed; refreshed every third.
  leaseMs: 5000,
  reapIntervalMs: 1000,
  blockMs: 1000,
  maxMessageBytes: DEFAULT_MAX_MESSAGE_BYTES,
  checkDurability: true,
  replicas: 0,
  replicaTimeoutMs: 1000,
});

/** Options of {@link Queue.process}. */
export interface ProcessOptions {
  /** Jobs run at once by this worker. @default 10 */
  concurrency?: number;
  /**
   * Jobs claimed ahead of free slots, so the next batch is on its way while the last one runs (they
   * wait, leased, in this worker's in-progress list). 0 claims only for free slots.
   * @default concurrency
   */
  prefetch?: number;
  /**
   * Handler deadline in ms (0 = none): past it the job's `signal` aborts and the job counts as failed
   * (retried or dead-lettered). @default 30000
   */
  timeout?: number;
}

/** Default worker settings. */
export const DEFAULT_PROCESS_OPTIONS = Object.freeze({ concurrency: 10, timeout: 30_000 });

/** What a handler receives besides the body. */
export interface Job<T = unknown> {
  /** Job id (the UMF `mid`). */
  readonly id: string;
  /** The payload. */
  readonly body: T;
  /** This attempt, from 1. */
  readonly attempt: number;
  /** Attempts allowed in total. */
  readonly attempts: number;
  /** Queue name. */
  readonly queue: string;
  /** Aborts when the handler's timeout passes or the worker stops past its grace period. */
  readonly signal: AbortSignal;
  /** The whole entry (short-form UMF: `to, frm, mid, ts, ver, bdy`, …). */
  readonly message: Readonly<Record<string, unknown>>;
}

/** A job handler. Resolve to acknowledge; throw (or reject) to fail the attempt. */
export type JobHandler<T = unknown> = (body: T, job: Job<T>) => unknown;

/** Result of {@link Queue.add}. */
export interface AddResult {
  /** Job id. */
  id: string;
  /** False when a job with this `jobId` already exists (nothing was added). */
  added: boolean;
}

/** Counts returned by {@link Queue.stats}. */
export interface QueueStats {
  /** Waiting in the pending list. */
  pending: number;
  /** Claimed by a worker and not yet finished (sum of every in-progress list). */
  inFlight: number;
  /** Waiting for their time in the delayed set (delayed jobs and retries in backoff). */
  delayed: number;
  /** In the dead-letter list. */
  dead: number;
  /** Jobs acknowledged, ever. */
  processed: number;
  /** Failed attempts, ever (each retry and each dead letter counts one). */
  failed: number;
  /** Failed attempts that were retried, ever. */
  retried: number;
  /** Jobs returned from dead or stopping workers, ever. */
  requeued: number;
  /** Workers holding a lease. */
  consumers: number;
}

/** A dead letter, as listed by {@link Queue.dead}. */
export interface DeadLetter {
  /** Job id. */
  id: string;
  /** Payload (`null` for malformed entries: see `raw`). */
  body: unknown;
  /** Why it was dead-lettered (the last error message). */
  reason: string;
  /** Attempts made. */
  attempts: number;
  /** When it was dead-lettered (epoch ms), when known. */
  failedAt: number | undefined;
  /** For malformed entries: the raw text found in the list. */
  raw: string | undefined;
  /** The stored entry (exact string). */
  entry: string;
}

/** Durability warnings (see `docs/queues.md`). */
export const QueueWarningCode = {
  /** `maxmemory-policy` is not `noeviction`: Redis may evict queue keys under memory pressure. */
  EVICTION_POLICY: "QUEUE_EVICTION_POLICY",
  /** No AOF: a Redis crash loses the jobs written since the last snapshot (or all, with no RDB). */
  NO_PERSISTENCE: "QUEUE_NO_PERSISTENCE",
  /** The configuration could not be read (CONFIG not allowed): durability unknown. */
  UNKNOWN: "QUEUE_DURABILITY_UNKNOWN",
  /** Redis came back without this queue's data (restarted without persistence, flushed): jobs were lost. */
  DATA_LOST: "QUEUE_DATA_LOST",
} as const;
/** Union of warning codes. */
export type QueueWarningCodeValue = (typeof QueueWarningCode)[keyof typeof QueueWarningCode];

/** A durability warning. */
export interface QueueWarning {
  code: QueueWarningCodeValue;
  message: string;
  data: Record<string, string>;
}

/** A failed attempt. */
export interface JobFailure {
  id: string;
  attempt: number;
  attempts: number;
  error: unknown;
  /** True when the job will be retried, false when it goes to the dead letters. */
  retry: boolean;
}

/** Events a {@link Queue} emits. */
export interface QueueEvents {
  /** Redis is not configured for durable queues (emitted once per queue, also logged). */
  warning: [QueueWarning];
  /** A handler failed an attempt. */
  failed: [JobFailure];
  /** A job (or a malformed entry) went to the dead letters. */
  dead: [{ id: string; reason: string }];
  /** A reaper pass returned another worker's in-progress jobs. */
  requeued: [{ consumerId: string; count: number }];
  /** A non-fatal error (Redis down…); emitted only when someone listens. */
  error: [RedmeshError];
}

const QueueState = { IDLE: "idle", RUNNING: "running", STOPPING: "stopping", STOPPED: "stopped" } as const;
type QueueStateValue = (typeof QueueState)[keyof typeof QueueState];

interface Running {
  raw: string;
  p: ParsedEntry;
  /** Created on first use of `job.signal` (most handlers never look at it). */
  ac: AbortController | undefined;
  /** Set once the job is aborted (timeout, stop). */
  abortReason: unknown;
  deadline: number;
  done: boolean;
  endWork: (() => void) | undefined;
}

interface Worker {
  handler: JobHandler<unknown>;
  concurrency: number;
  prefetch: number;
  timeout: number;
}

/** Longest reason kept on a dead letter; longer messages are clipped. */
const MAX_REASON_CHARS = 1000;
/** Raw text kept from a malformed entry (enough to recognise it, not megabytes). */
const MAX_RAW_CHARS = 4096;
/** Delayed jobs promoted per reaper pass (the next pass, or the delay timer, takes the rest). */
const PROMOTE_BATCH = 1000;
/** Dead workers handled per reaper pass. */
const REAP_BATCH = 20;
/** Claim/ack round trips in flight at once per worker (2: one on the wire while the last batch runs). */
const MAX_CYCLES = 2;
/** Entries per redrive/release script call (keeps each script short). */
const CHUNK = 500;

function ms(v: unknown, what: string, min: number, max = 86_400_000): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw new ValidationError(`${what} must be an integer number of milliseconds from ${min} to ${max}`, {
      code: ErrorCode.INVALID_OPTIONS,
    });
  }
  return v;
}

function replicaCount(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 16) {
    throw new ValidationError("replicas must be an integer from 0 to 16", {
      code: ErrorCode.INVALID_OPTIONS,
    });
  }
  return v;
}

function reasonOf(err: unknown): string {
  let s: string;
  if (err instanceof RedmeshErrorClass) s = `${err.code}: ${err.message}`;
  else if (err instanceof Error) s = `${err.name}: ${err.message}`;
  else s = String(err);
  return s.length > MAX_REASON_CHARS ? `${s.slice(0, MAX_REASON_CHARS)}…` : s;
}

/**
 * One queue of one service: producer (`add`, `addBulk`), worker (`process`), and admin (`stats`,
 * `dead`, `redrive`, `pause`, `resume`, `reap`). Constructors do no I/O. Create with {@link createQueue}
 * or `service.queue(name)`.
 */
export class Queue<T = unknown> extends EventEmitter<QueueEvents> {
  /** Queue name. */
  readonly name: string;
  /** Owning service. */
  readonly service: string;
  /** This worker's consumer id. */
  readonly consumerId: string;

  readonly #redis: QueueRedis;
  readonly #logger: Logger;
  readonly #o: {
    leaseMs: number;
    reapIntervalMs: number;
    blockMs: number;
    maxBytes: number;
    checkDurability: boolean;
    replicas: number;
    replicaTimeoutMs: number;
    from: string;
    to: string;
  };
  readonly #defaults: JobDefaults;
  readonly #explicitDefaults: boolean;
  readonly #beginWork: (() => () => void) | undefined;
  readonly #k: {
    pending: string;
    active: string;
    consumers: string;
    stats: string;
    ids: string;
    delayed: string;
    dead: string;
    index: string;
    names: string;
    wake: string;
  };
  readonly #cycleKeys: string[];
  readonly #failKeys: string[];

  #state: QueueStateValue = QueueState.IDLE;
  #worker: Worker | undefined;
  #paused = false;
  #active = 0;
  readonly #running = new Set<Running>();
  /** Entries whose failure is being written (multiset), to recognise strays. */
  readonly #failing = new Map<string, number>();
  /** Entries claimed while stopping: left in the in-progress list for stop() to return. */
  readonly #held: string[] = [];
  /** Claimed entries waiting for a free slot (prefetch), from `#bufferHead` on. */
  readonly #buffer: string[] = [];
  #bufferHead = 0;
  #acks: string[] = [];
  #ackIds: string[] = [];
  #cycles = 0;
  #claiming = 0;
  #pumpAgain = false;
  #pumpScheduled = false;
  #blocking: BlockingConnection | undefined;
  #blockingBusy = false;
  #needReconcile = false;
  #errorStreak = 0;
  readonly #ops = new Set<Promise<void>>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #leaseTimer: NodeJS.Timeout | undefined;
  #reapTimer: NodeJS.Timeout | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #delayTimer: NodeJS.Timeout | undefined;
  #delayAt = Number.POSITIVE_INFINITY;
  #warned = false;
  #subscribed = false;
  #stopping: Promise<void> | undefined;
  #idleWaiters: Array<() => void> = [];
  readonly #wakeListener = (message: string) => {
    const dueIn = Number(message);
    if (Number.isFinite(dueIn)) this.#scheduleDelayed(Date.now() + Math.max(0, dueIn));
  };
  /** Local counters (this process). */
  readonly counters = {
    processed: 0,
    failed: 0,
    dead: 0,
    claimed: 0,
    cycles: 0,
    blockingClaims: 0,
    requeuedOthers: 0,
    reaps: 0,
  };

  constructor(options: QueueOptions) {
    super();
    if (typeof options !== "object" || options === null) {
      throw new ValidationError("queue options are required", { code: ErrorCode.INVALID_OPTIONS });
    }
    const d = DEFAULT_QUEUE_OPTIONS;
    assertServiceName(options.service);
    const name = options.name ?? d.name;
    assertResourceName("queue", name);
    const consumerId = options.consumerId ?? randomUUID().replace(/-/g, "");
    assertInstanceId(consumerId);
    if (!options.redis || typeof options.redis.duplicate !== "function") {
      throw new ValidationError("queue option `redis` must be a connection with duplicate()", {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    this.name = name;
    this.service = options.service;
    this.consumerId = consumerId;
    this.#redis = options.redis;
    this.#logger = options.logger ?? silentLogger;
    this.#beginWork = options.beginWork;
    const leaseMs = ms(options.leaseMs ?? d.leaseMs, "leaseMs", 100);
    this.#o = {
      leaseMs,
      reapIntervalMs: ms(options.reapIntervalMs ?? d.reapIntervalMs, "reapIntervalMs", 10),
      blockMs: ms(options.blockMs ?? d.blockMs, "blockMs", 10, 60_000),
      maxBytes: ms(options.maxMessageBytes ?? d.maxMessageBytes, "maxMessageBytes", 64, 512 * 1024 * 1024),
      checkDurability: options.checkDurability ?? d.checkDurability,
      replicas: replicaCount(options.replicas ?? d.replicas),
      replicaTimeoutMs: ms(options.replicaTimeoutMs ?? d.replicaTimeoutMs, "replicaTimeoutMs", 1, 60_000),
      from: options.from ?? `${options.service}:/`,
      to: `${options.service}:/`,
    };
    this.#explicitDefaults = options.attempts !== undefined || options.backoff !== undefined;
    this.#defaults = {
      attempts: checkAttempts(options.attempts ?? d.attempts),
      backoff: resolveBackoff(options.backoff ?? d.backoff),
    };
    const k = options.keys;
    const svc = options.service;
    this.#k = {
      pending: name === "default" ? k.queuePending(svc) : k.queue(svc, name, "pending"),
      active: k.queueConsumer(svc, name, "active", consumerId),
      consumers: k.queue(svc, name, "consumers"),
      stats: k.queue(svc, name, "stats"),
      ids: k.queue(svc, name, "ids"),
      delayed: k.queue(svc, name, "delayed"),
      dead: k.queue(svc, name, "dead"),
      index: k.instanceIndex(svc),
      names: k.queueIndex(svc),
      // A pub/sub channel (built by keys.ts like every name): "a delayed job is due in N ms".
      wake: k.queue(svc, name, "wake"),
    };
    this.#keysFor = (cid: string) => k.queueConsumer(svc, name, "active", cid);
    this.#cycleKeys = [this.#k.pending, this.#k.active, this.#k.consumers, this.#k.stats, this.#k.ids];
    this.#failKeys = [this.#k.active, this.#k.pending, this.#k.delayed, this.#k.dead, this.#k.stats];
  }

  readonly #keysFor: (consumerId: string) => string;

  /** The Redis keys of this queue (for tools and tests). */
  get redisKeys(): Readonly<Record<string, string>> {
    return { ...this.#k };
  }

  /** True while a worker is paused. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Jobs running now in this process. */
  get running(): number {
    return this.#active;
  }

  // ---------------------------------------------------------------- producer

  /** Add one job. Resolves once Redis has it (`added: false` for a duplicate `jobId`). */
  async add(body: T, options?: JobOptions): Promise<AddResult> {
    const [r] = await this.#addEncoded([this.#encode(body, options)]);
    return r!;
  }

  /** Add many jobs in one atomic step (one round trip). */
  async addBulk(jobs: ReadonlyArray<{ body: T; options?: JobOptions }>): Promise<AddResult[]> {
    if (!Array.isArray(jobs)) {
      throw new ValidationError("addBulk expects an array of { body, options }", {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    const out: AddResult[] = [];
    // Chunks keep each script call short (Redis runs scripts one at a time).
    for (let i = 0; i < jobs.length; i += CHUNK) {
      const part = jobs.slice(i, i + CHUNK).map((j) => this.#encode(j.body, j.options));
      out.push(...(await this.#addEncoded(part)));
    }
    return out;
  }

  #encode(body: unknown, options: JobOptions | undefined): EncodedJob {
    return encodeJob(
      body,
      options,
      {
        to: this.#o.to,
        from: this.#o.from,
        attempts: this.#defaults.attempts,
        backoff: this.#defaults.backoff,
        explicit: this.#explicitDefaults,
      },
      this.#o.maxBytes,
    );
  }

  /** Record this queue's name in the service's queue index (once; tools list queues from it). */
  #announce(): void {
    if (this.#announced) return;
    this.#announced = true;
    this.#redis.command(["SADD", this.#k.names, this.name]).catch(() => {
      this.#announced = false; // try again next time
    });
  }

  #announced = false;
  /** The producer connection of replicated adds (`replicas` > 0), opening or open. */
  #producer: Promise<BlockingConnection> | undefined;
  /** Replicated adds in flight (stop lets them finish before closing their connection). */
  readonly #adds = new Set<Promise<unknown>>();

  /**
   * After a reconnect: did Redis keep this queue's data? The queue's entry in the service's queue
   * index, written on first use, is the witness: if it is gone, Redis lost (or someone flushed) the
   * queue's keys, so jobs pending, in flight or delayed before are gone too. Logged as an error and
   * emitted as a `QUEUE_DATA_LOST` warning; the queue then carries on with what Redis has. Resolves
   * with `true` when data was lost. Never rejects.
   */
  async verifyData(): Promise<boolean> {
    if (!this.#announced) return false;
    let present: unknown;
    try {
      present = await this.#redis.command(["SISMEMBER", this.#k.names, this.name]);
    } catch {
      return false; // unknown now; the next reconnect checks again
    }
    if (Number(present) === 1) return false;
    const w: QueueWarning = {
      code: QueueWarningCode.DATA_LOST,
      message: `Redis no longer holds queue "${this.service}/${this.name}": it restarted without persistence or was flushed; jobs queued before are lost`,
      data: { service: this.service, queue: this.name },
    };
    this.#logger.error({ service: this.service, queue: this.name }, w.message);
    if (this.listenerCount("warning") > 0) this.emit("warning", w);
    this.#announced = false;
    this.#announce();
    return true;
  }

  async #addEncoded(jobs: EncodedJob[]): Promise<AddResult[]> {
    if (jobs.length === 0) return [];
    this.#announce();
    const simple = jobs.every((j) => j.delay === 0 && j.unique === "" && j.priority === "0");
    if (simple) {
      // The common case needs no script: one LPUSH, exactly what Hydra's queueMessage does.
      await this.#replicated(["LPUSH", this.#k.pending, ...jobs.map((j) => j.entry)]);
      return jobs.map((j) => ({ id: j.id, added: true }));
    }
    const args: RedisArg[] = [jobs.length];
    for (const j of jobs) args.push(j.entry, j.delay, j.unique, j.priority);
    const keys = [this.#k.pending, this.#k.delayed, this.#k.ids];
    const res =
      this.#o.replicas === 0
        ? await this.#redis.script<number[]>(ADD, keys, args)
        : // EVAL, not EVALSHA: a NOSCRIPT fallback would run the script after the WAIT.
          await this.#replicated<number[]>(["EVAL", ADD.source, keys.length, ...keys, ...args]);
    const earliest = Number(res[0]);
    const now = Number(res[1]);
    if (earliest >= 0) {
      // Wake idle workers so a short delay is honoured even while they block on the pending list.
      await this.#redis.publish(this.#k.wake, String(earliest - now)).catch(() => undefined);
    }
    return jobs.map((j, i) => ({ id: j.id, added: Number(res[i + 2]) === 1 }));
  }

  /**
   * Send an add's write; when `replicas` > 0, send it with `WAIT` right behind it in the same tick on
   * the queue's own producer connection. The same connection: WAIT counts the replicas that have this
   * connection's writes (a WAIT sent on a new connection after a failover would confirm nothing yet
   * return at once). Its own connection: WAIT blocks the connection it runs on, for up to
   * `replicaTimeoutMs` when a replica is slow or gone, and the service's calls and heartbeats must not
   * queue behind it.
   */
  async #replicated<R = unknown>(args: RedisArg[]): Promise<R> {
    const n = this.#o.replicas;
    if (n === 0) return this.#redis.command<R>(args);
    if (this.#stopping) {
      throw new StateError(ErrorCode.NOT_RUNNING, `queue "${this.name}" of "${this.service}" was stopped`);
    }
    const run = this.#replicatedOn<R>(args, n);
    this.#adds.add(run);
    try {
      return await run;
    } finally {
      this.#adds.delete(run);
    }
  }

  async #replicatedOn<R>(args: RedisArg[], n: number): Promise<R> {
    const conn = await this.#producerConnection();
    const timeout = this.#o.replicaTimeoutMs;
    const route = { routeByKey: this.#k.pending };
    const write = conn.command<R>(args, route);
    const wait = conn.command<number>(["WAIT", n, timeout], { ...route, timeoutMs: timeout + 5000 });
    const [res, acked] = await Promise.all([write, wait]);
    if (Number(acked) < n) {
      throw new RedmeshErrorClass(
        ErrorCode.NOT_REPLICATED,
        `queue "${this.name}" of "${this.service}": ${String(acked)} of ${n} replica(s) confirmed the add within ${timeout} ms; it may be lost if the primary fails over now`,
        {
          retryable: true,
          data: { queue: this.name, service: this.service, replicas: n, confirmed: Number(acked) },
        },
      );
    }
    return res;
  }

  /** The producer connection of replicated adds, opened on first use (again after a failed open). */
  #producerConnection(): Promise<BlockingConnection> {
    if (this.#producer === undefined) {
      const conn = this.#redis.duplicate(`redmesh:qp:${this.name}:${this.consumerId.slice(0, 8)}`);
      const opening = conn.connect().then(() => conn);
      this.#producer = opening;
      opening.catch(() => {
        if (this.#producer === opening) this.#producer = undefined;
        conn.destroy();
      });
    }
    return this.#producer;
  }

  /** Let replicated adds in flight finish (bounded), then close the producer connection. */
  async #closeProducer(graceMs: number): Promise<void> {
    const opening = this.#producer;
    if (opening === undefined) return;
    if (this.#adds.size > 0) await settleWithin(Promise.allSettled([...this.#adds]), graceMs);
    this.#producer = undefined;
    const conn = await opening.catch(() => undefined);
    await conn?.close().catch(() => undefined);
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
    if (this.#worker || this.#state !== QueueState.IDLE) {
      throw new StateError(
        ErrorCode.ALREADY_STARTED,
        `queue "${this.name}" already has a worker (or was stopped); create another queue object`,
      );
    }
    const concurrency = options.concurrency ?? DEFAULT_PROCESS_OPTIONS.concurrency;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 10_000) {
      throw new ValidationError("concurrency must be an integer from 1 to 10000", {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    const timeout = ms(options.timeout ?? DEFAULT_PROCESS_OPTIONS.timeout, "timeout", 0);
    const prefetch = options.prefetch ?? concurrency;
    if (!Number.isInteger(prefetch) || prefetch < 0 || prefetch > 10_000) {
      throw new ValidationError("prefetch must be an integer from 0 to 10000", {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    this.#worker = { handler: handler as JobHandler<unknown>, concurrency, prefetch, timeout };
    this.#state = QueueState.RUNNING;
    this.#leaseTimer = setInterval(() => this.#refreshLease(), Math.max(50, Math.floor(this.#o.leaseMs / 3)));
    this.#scheduleReap(0);
    if (timeout > 0) {
      // One sweep timer instead of one timer per job: precision is a fifth of the timeout.
      const every = Math.min(1000, Math.max(10, Math.floor(timeout / 5)));
      this.#sweepTimer = setInterval(() => this.#sweep(), every);
    }
    this.#subscribeWake();
    this.#announce();
    if (this.#o.checkDurability) this.#track(this.checkDurability().then(() => undefined));
    this.#schedulePump();
    return this;
  }

  /** Listen for "a delayed job is due soon" (retried from the reaper pass until it succeeds). */
  #subscribeWake(): void {
    if (this.#subscribed || this.#state !== QueueState.RUNNING) return;
    this.#subscribed = true;
    this.#redis.subscribe(this.#k.wake, this.#wakeListener).then(
      // Wake-ups published before the subscription was active are missed: look at the set now.
      () => this.#promote().catch((err) => this.#report(err, "promote")),
      (err) => {
        this.#subscribed = false;
        this.#report(err, "subscribe");
      },
    );
  }

  /** Stop claiming new jobs (running ones finish). Local to this worker. */
  pause(): void {
    this.#paused = true;
  }

  /** Resume claiming after {@link pause}. */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.#drainBuffer();
    this.#schedulePump();
  }

  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    setImmediate(() => {
      this.#pumpScheduled = false;
      void this.#pump();
    });
  }

  #canClaim(): boolean {
    return this.#state === QueueState.RUNNING && !this.#paused;
  }

  /**
   * One round trip: acknowledge what finished, claim what the free slots and the prefetch can take.
   * Up to {@link MAX_CYCLES} round trips overlap, so jobs run while the next batch is on its way. The
   * in-progress list holds at most `2 × (concurrency + prefetch)` entries (claimed, running, and
   * finished ones whose acknowledgement is on the wire), plus one from a blocking claim.
   */
  async #pump(): Promise<void> {
    if (this.#cycles >= MAX_CYCLES || (this.#needReconcile && this.#cycles > 0)) {
      this.#pumpAgain = true;
      return;
    }
    const w = this.#worker;
    if (!w) return;
    const waiting = this.#buffer.length - this.#bufferHead;
    const want = this.#canClaim()
      ? Math.max(0, w.concurrency + w.prefetch - this.#active - waiting - this.#claiming)
      : 0;
    if (want === 0 && this.#acks.length === 0 && !this.#needReconcile) return;
    this.#cycles++;
    this.#claiming += want;
    const acks = this.#acks;
    const ids = this.#ackIds;
    this.#acks = [];
    this.#ackIds = [];
    let claimed: string[];
    try {
      if (this.#needReconcile && !this.#blockingBusy) await this.#reconcile(acks);
      const args: RedisArg[] = [this.consumerId, this.#o.leaseMs, want, acks.length, packEntries(acks)];
      for (const id of ids) args.push(id);
      claimed = await this.#redis.script<string[]>(CYCLE, this.#cycleKeys, args);
      this.#errorStreak = 0;
    } catch (err) {
      // The acks are still in the in-progress list: try again (acking twice is harmless).
      this.#acks = acks.concat(this.#acks);
      this.#ackIds = ids.concat(this.#ackIds);
      this.#cycles--;
      this.#claiming -= want;
      this.#onRedisError(err, "claim");
      return;
    }
    this.#cycles--;
    this.#claiming -= want;
    this.counters.claimed += claimed.length;
    this.counters.cycles++;
    // Entries claimed while stopping stay in the in-progress list: stop() returns them.
    if (this.#state === QueueState.RUNNING) {
      for (const raw of claimed) this.#buffer.push(raw);
      this.#drainBuffer();
    } else {
      this.#held.push(...claimed);
    }
    if (want > 0 && claimed.length < want) void this.#block();
    if (this.#pumpAgain || this.#acks.length > 0) {
      this.#pumpAgain = false;
      this.#schedulePump();
    }
    if (this.#state === QueueState.STOPPING) this.#checkIdle();
  }

  /** The queue looked empty: wait for the next entry with BLMOVE on the dedicated connection. */
  async #block(): Promise<void> {
    if (this.#blockingBusy || !this.#canClaim()) return;
    this.#blockingBusy = true;
    let ok = true;
    try {
      let conn = this.#blocking;
      if (!conn) {
        conn = this.#redis.duplicate(`redmesh:q:${this.name}:${this.consumerId.slice(0, 8)}`);
        this.#blocking = conn;
        await conn.connect();
      }
      if (!this.#canClaim()) return;
      const raw = await conn.command<string | null>(
        ["BLMOVE", this.#k.pending, this.#k.active, "RIGHT", "LEFT", (this.#o.blockMs / 1000).toFixed(3)],
        // The server answers at blockMs at the latest: 2 s more is network slack, and past it the
        // connection is presumed dead (the stall watchdog then replaces it).
        { timeoutMs: this.#o.blockMs + 2000 },
      );
      if (typeof raw === "string") {
        this.counters.claimed++;
        this.counters.blockingClaims++;
        if (this.#state === QueueState.RUNNING) {
          this.#buffer.push(raw);
          this.#drainBuffer();
        } else this.#held.push(raw);
      }
      this.#errorStreak = 0;
    } catch (err) {
      ok = false;
      if (this.#state === QueueState.RUNNING) {
        // Drop the blocking connection: a BLMOVE that failed here (deadline, failover) may still sit
        // in its client's queue and run later on a new primary, moving an entry into our list after
        // the reconciliation below looked (a Sentinel failover lost a job that way). Destroyed, it
        // either ran already (the reconciliation finds the entry) or never runs.
        this.#blocking?.destroy();
        this.#blocking = undefined;
        // The reply may be lost after Redis moved an entry: look for strays once Redis is back.
        this.#needReconcile = true;
        this.#report(err, "blocking claim");
      }
    } finally {
      this.#blockingBusy = false;
    }
    if (this.#state !== QueueState.RUNNING) return;
    if (ok) this.#schedulePump();
    else this.#later(() => this.#schedulePump(), this.#errorDelay());
  }

  #onRedisError(err: unknown, what: string): void {
    if (this.#state === QueueState.STOPPED) return;
    this.#needReconcile = true;
    this.#report(err, what);
    this.#later(() => this.#schedulePump(), this.#errorDelay());
  }

  #errorDelay(): number {
    // 50 ms doubling to 1 s: a restarted Redis is found again within a second.
    const d = Math.min(1000, 50 * 2 ** Math.min(this.#errorStreak, 5));
    this.#errorStreak++;
    return d;
  }

  #later(fn: () => void, delayMs: number): void {
    const t = setTimeout(() => {
      this.#timers.delete(t);
      fn();
    }, delayMs);
    this.#timers.add(t);
  }

  /** What this worker knows it holds in its in-progress list (a multiset). */
  #known(extra: readonly string[]): Map<string, number> {
    const m = new Map<string, number>(this.#failing);
    const add = (raw: string) => m.set(raw, (m.get(raw) ?? 0) + 1);
    for (const r of this.#running) add(r.raw);
    for (const raw of this.#acks) add(raw);
    for (const raw of this.#held) add(raw);
    for (let i = this.#bufferHead; i < this.#buffer.length; i++) add(this.#buffer[i]!);
    for (const raw of extra) add(raw);
    return m;
  }

  #dispatch(raw: string): void {
    const w = this.#worker!;
    const parsed = parseEntry(raw, this.#defaults, this.#o.maxBytes);
    if (!parsed.ok) {
      this.#track(this.#deadLetterMalformed(raw, parsed.reason));
      return;
    }
    const p = parsed.entry;
    const run: Running = {
      raw,
      p,
      ac: undefined,
      abortReason: undefined,
      deadline: w.timeout > 0 ? Date.now() + w.timeout : Number.POSITIVE_INFINITY,
      done: false,
      endWork: this.#beginWork?.(),
    };
    this.#active++;
    this.#running.add(run);
    const job: Job<unknown> = {
      id: p.id,
      body: p.body,
      attempt: p.meta.n + 1,
      attempts: p.meta.a,
      queue: this.name,
      get signal() {
        if (!run.ac) {
          run.ac = new AbortController();
          if (run.abortReason !== undefined) run.ac.abort(run.abortReason);
        }
        return run.ac.signal;
      },
      message: p.obj,
    };
    const cid = typeof p.obj.cid === "string" && p.obj.cid.length > 0 ? p.obj.cid : p.id;
    let result: unknown;
    try {
      result = runWithContext({ correlationId: cid }, () => w.handler(p.body, job));
    } catch (err) {
      this.#finish(run, false, err);
      return;
    }
    if (
      result !== null &&
      typeof result === "object" &&
      typeof (result as Promise<unknown>).then === "function"
    ) {
      (result as Promise<unknown>).then(
        () => this.#finish(run, true, undefined),
        (err: unknown) => this.#finish(run, false, err),
      );
    } else {
      this.#finish(run, true, undefined);
    }
  }

  #finish(run: Running, ok: boolean, err: unknown): void {
    if (run.done) return;
    run.done = true;
    this.#running.delete(run);
    this.#active--;
    run.endWork?.();
    if (ok) {
      this.counters.processed++;
      this.#acks.push(run.raw);
      if (run.p.meta.u === 1) this.#ackIds.push(run.p.id);
    } else {
      this.#track(this.#fail(run, err));
    }
    if (this.#state === QueueState.STOPPING) this.#checkIdle();
    else this.#drainBuffer();
    this.#schedulePump();
  }

  /** Start buffered (claimed, not yet started) jobs while slots are free. */
  #drainBuffer(): void {
    const w = this.#worker;
    if (!w || this.#paused || this.#state !== QueueState.RUNNING) return;
    while (this.#active < w.concurrency && this.#bufferHead < this.#buffer.length) {
      const raw = this.#buffer[this.#bufferHead++]!;
      this.#dispatch(raw);
    }
    if (this.#bufferHead === this.#buffer.length) {
      this.#buffer.length = 0;
      this.#bufferHead = 0;
    } else if (this.#bufferHead > 1024) {
      this.#buffer.splice(0, this.#bufferHead);
      this.#bufferHead = 0;
    }
  }

  #sweep(): void {
    const now = Date.now();
    for (const run of this.#running) {
      if (run.deadline <= now) {
        const err = new TimeoutError(
          `job ${run.p.id} did not finish within ${this.#worker?.timeout} ms (attempt ${run.p.meta.n + 1})`,
        );
        abortRun(run, err);
        this.#finish(run, false, err);
      }
    }
  }

  async #fail(run: Running, err: unknown): Promise<void> {
    const meta = run.p.meta;
    const made = meta.n + 1;
    const retry = made < meta.a;
    const reason = reasonOf(err);
    this.counters.failed++;
    const next: EntryMeta = { ...meta, n: made };
    if (!retry) {
      next.e = reason;
      next.ft = Date.now();
    }
    const entry = withMeta(run.p, next);
    const delay = retry ? backoffDelay(meta, made) : 0;
    if (this.listenerCount("failed") > 0) {
      this.emit("failed", { id: run.p.id, attempt: made, attempts: meta.a, error: err, retry });
    }
    this.#logger.debug(
      { queue: this.name, id: run.p.id, attempt: made, retry, reason },
      "job attempt failed",
    );
    await this.#runFail(run.raw, entry, retry ? "retry" : "dead", delay, run.p.id, reason);
  }

  async #deadLetterMalformed(raw: string, reason: string): Promise<void> {
    this.counters.failed++;
    this.#logger.warn({ queue: this.name, reason }, "malformed queue entry moved to the dead letters");
    const entry = malformedDeadLetter(raw, reason, this.#o.to, MAX_RAW_CHARS);
    await this.#runFail(raw, entry, "dead", 0, "", `malformed entry: ${reason}`);
  }

  /** Run fail.lua, retrying through Redis outages until it succeeds or the worker stops. */
  async #runFail(
    raw: string,
    entry: string,
    mode: "retry" | "dead",
    delay: number,
    id: string,
    reason: string,
  ): Promise<void> {
    this.#failing.set(raw, (this.#failing.get(raw) ?? 0) + 1);
    try {
      await this.#runFailLoop(raw, entry, mode, delay, id, reason);
    } finally {
      const n = this.#failing.get(raw) ?? 1;
      if (n <= 1) this.#failing.delete(raw);
      else this.#failing.set(raw, n - 1);
    }
  }

  async #runFailLoop(
    raw: string,
    entry: string,
    mode: "retry" | "dead",
    delay: number,
    id: string,
    reason: string,
  ): Promise<void> {
    for (let tries = 0; ; tries++) {
      try {
        const [removed] = await this.#redis.script<[number, number]>(FAIL, this.#failKeys, [
          raw,
          entry,
          mode,
          delay,
        ]);
        if (Number(removed) === 1) {
          if (mode === "dead") {
            this.counters.dead++;
            if (this.listenerCount("dead") > 0) this.emit("dead", { id, reason });
          } else if (delay > 0) {
            this.#scheduleDelayed(Date.now() + delay);
          }
        }
        return;
      } catch (err) {
        if (this.#state === QueueState.STOPPED || tries > 50) {
          // Still in the in-progress list: returned by stop() or by the reaper after the lease.
          return;
        }
        this.#needReconcile = true;
        this.#report(err, "fail");
        await new Promise<void>((r) => this.#later(r, this.#errorDelay()));
      }
    }
  }

  /**
   * After a Redis error, a claim's reply may have been lost although Redis moved the entry: return
   * every entry of this worker's in-progress list that it does not know about.
   */
  async #reconcile(acking: readonly string[]): Promise<void> {
    const list = await this.#redis.command<string[]>(["LRANGE", this.#k.active, 0, -1]);
    const known = this.#known(acking);
    const seen = new Map<string, number>();
    const strays: string[] = [];
    for (const e of list) {
      const n = (seen.get(e) ?? 0) + 1;
      seen.set(e, n);
      if (n > (known.get(e) ?? 0)) strays.push(e);
    }
    for (let i = 0; i < strays.length; i += CHUNK) {
      await this.#redis.script(RELEASE, [this.#k.active, this.#k.pending], strays.slice(i, i + CHUNK));
    }
    if (strays.length > 0) {
      this.#logger.warn({ queue: this.name, count: strays.length }, "returned stray in-progress entries");
    }
    this.#needReconcile = false;
  }

  #refreshLease(): void {
    this.#redis
      .script(LEASE, [this.#k.consumers], [this.consumerId, this.#o.leaseMs])
      .catch((err) => this.#report(err, "lease"));
  }

  #scheduleReap(delayMs: number): void {
    if (this.#state !== QueueState.RUNNING) return;
    this.#reapTimer = setTimeout(() => {
      this.#reapTimer = undefined;
      this.reap()
        .catch((err) => this.#report(err, "reap"))
        .finally(() => {
          const base = this.#o.reapIntervalMs;
          // ±20% jitter so many workers do not reap in lock step.
          this.#scheduleReap(Math.round(base * (0.8 + Math.random() * 0.4)));
        });
    }, delayMs);
  }

  #scheduleDelayed(atLocalMs: number): void {
    if (this.#state !== QueueState.RUNNING) return;
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

  async #promote(): Promise<void> {
    const res = await this.#redis.script<number[]>(
      REAP,
      [this.#k.consumers, this.#k.index, this.#k.delayed, this.#k.pending],
      [PROMOTE_BATCH, 0],
    );
    this.#afterPromote(res);
  }

  #afterPromote(res: unknown[]): void {
    const promoted = Number(res[0]);
    const nextDue = Number(res[1]);
    const now = Number(res[2]);
    if (promoted >= PROMOTE_BATCH) this.#scheduleDelayed(Date.now());
    else if (nextDue >= 0) this.#scheduleDelayed(Date.now() + (nextDue - now));
  }

  /**
   * One reaper pass now: promote due delayed jobs and return the in-progress jobs of workers whose
   * lease expired or whose instance lost its presence. Resolves with the number of jobs returned.
   * Workers run it every `reapIntervalMs`; any process may call it.
   */
  async reap(): Promise<number> {
    this.counters.reaps++;
    this.#subscribeWake();
    const res = await this.#redis.script<unknown[]>(
      REAP,
      [this.#k.consumers, this.#k.index, this.#k.delayed, this.#k.pending],
      [PROMOTE_BATCH, REAP_BATCH],
    );
    this.#afterPromote(res);
    let total = 0;
    for (const cid of res.slice(3).map(String)) {
      if (cid === this.consumerId && this.#state === QueueState.RUNNING) {
        // Our own lease lapsed (a stalled event loop): we are alive, so keep our jobs and renew.
        this.#refreshLease();
        continue;
      }
      const n = Number(
        await this.#redis.script(
          REQUEUE,
          [this.#k.consumers, this.#keysFor(cid), this.#k.pending, this.#k.index, this.#k.stats],
          [cid, "0"],
        ),
      );
      if (n > 0) {
        total += n;
        this.counters.requeuedOthers += n;
        this.#logger.warn({ queue: this.name, consumerId: cid, count: n }, "returned a dead worker's jobs");
        if (this.listenerCount("requeued") > 0) this.emit("requeued", { consumerId: cid, count: n });
      }
    }
    return total;
  }

  // ---------------------------------------------------------------- admin

  /** Counts (see {@link QueueStats}). `inFlight` sums every live worker's in-progress list. */
  async stats(options?: CommandOptions): Promise<QueueStats> {
    const [pending, delayed, dead, hash, consumers] = await this.#pipelineOrThrow(
      [
        ["LLEN", this.#k.pending],
        ["ZCARD", this.#k.delayed],
        ["LLEN", this.#k.dead],
        ["HGETALL", this.#k.stats],
        ["ZRANGE", this.#k.consumers, 0, -1],
      ],
      options,
    );
    const cids = (consumers as string[]) ?? [];
    const lens =
      cids.length > 0
        ? await this.#pipelineOrThrow(
            cids.map((c) => ["LLEN", this.#keysFor(c)]),
            options,
          )
        : [];
    const h = toRecord(hash);
    const n = (k: string) => Number(h[k] ?? 0);
    return {
      pending: Number(pending),
      inFlight: lens.reduce<number>((s, x) => s + Number(x), 0),
      delayed: Number(delayed),
      dead: Number(dead),
      processed: n("processed"),
      failed: n("failed"),
      retried: n("retried"),
      requeued: n("requeued"),
      consumers: cids.length,
    };
  }

  /** List dead letters, newest first. */
  async dead(options: { offset?: number; count?: number } = {}): Promise<DeadLetter[]> {
    const offset = options.offset ?? 0;
    const count = options.count ?? 100;
    if (!Number.isInteger(offset) || offset < 0 || !Number.isInteger(count) || count < 1 || count > 100_000) {
      throw new ValidationError("dead(): offset must be ≥ 0 and count from 1 to 100000", {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    const list = await this.#redis.command<string[]>(["LRANGE", this.#k.dead, offset, offset + count - 1]);
    return list.map((entry) => {
      const r = parseEntry(entry, this.#defaults, Number.POSITIVE_INFINITY);
      if (!r.ok) {
        return { id: "", body: null, reason: r.reason, attempts: 0, failedAt: undefined, raw: entry, entry };
      }
      const m = r.entry.meta;
      return {
        id: r.entry.id,
        body: r.entry.body,
        reason: m.e ?? "unknown",
        attempts: m.n,
        failedAt: m.ft,
        raw: m.raw,
        entry,
      };
    });
  }

  /**
   * Move dead letters back to the pending line with their attempts reset (all of them, the first
   * `count`, or those whose id is in `ids`). A malformed entry goes back as the raw text it was.
   * Resolves with the number moved.
   */
  async redrive(options: { count?: number; ids?: readonly string[] } = {}): Promise<number> {
    const count = options.count ?? 100_000;
    const wanted = options.ids ? new Set(options.ids) : undefined;
    const letters = await this.dead({ count });
    const pairs: string[] = [];
    for (const d of letters) {
      if (wanted && !wanted.has(d.id)) continue;
      let fresh: string;
      if (d.raw !== undefined) fresh = d.raw;
      else {
        const r = parseEntry(d.entry, this.#defaults, Number.POSITIVE_INFINITY);
        if (!r.ok) fresh = d.entry;
        else {
          const { e: _e, ft: _ft, ...meta } = r.entry.meta;
          fresh = withMeta(r.entry, { ...meta, n: 0 });
        }
      }
      pairs.push(d.entry, fresh);
    }
    let moved = 0;
    for (let i = 0; i < pairs.length; i += CHUNK * 2) {
      moved += Number(
        await this.#redis.script(REDRIVE, [this.#k.dead, this.#k.pending], pairs.slice(i, i + CHUNK * 2)),
      );
    }
    return moved;
  }

  /**
   * Read Redis' eviction policy and persistence; emit a `warning` (and log it) when the queue is not
   * durable. Resolves with the warnings (empty when all is well).
   */
  async checkDurability(): Promise<QueueWarning[]> {
    const warnings: QueueWarning[] = [];
    try {
      // On a Cluster, ask the master holding this queue (nodes may be configured differently).
      const res = await this.#pipelineOrThrow(
        [
          ["CONFIG", "GET", "maxmemory-policy"],
          ["CONFIG", "GET", "appendonly"],
          ["CONFIG", "GET", "save"],
        ],
        { routeByKey: this.#k.pending },
      );
      const get = (r: unknown, k: string) => String(toRecord(r)[k] ?? "");
      const policy = get(res[0], "maxmemory-policy");
      const aof = get(res[1], "appendonly");
      const save = get(res[2], "save");
      if (policy !== "noeviction") {
        warnings.push({
          code: QueueWarningCode.EVICTION_POLICY,
          message: `Redis maxmemory-policy is "${policy}": under memory pressure Redis may evict queue keys and lose jobs; set it to "noeviction"`,
          data: { maxmemoryPolicy: policy },
        });
      }
      if (aof !== "yes") {
        warnings.push({
          code: QueueWarningCode.NO_PERSISTENCE,
          message:
            save.trim() === ""
              ? "Redis has no persistence (appendonly no, no save points): a Redis restart loses every queued job; enable appendonly"
              : `Redis persists by snapshots only (save "${save}"): a Redis crash loses jobs written since the last snapshot; enable appendonly`,
          data: { appendonly: aof, save },
        });
      }
    } catch (err) {
      warnings.push({
        code: QueueWarningCode.UNKNOWN,
        message: `could not read Redis' configuration (${reasonOf(err)}): queue durability unknown`,
        data: {},
      });
    }
    if (!this.#warned && warnings.length > 0) {
      this.#warned = true;
      for (const w of warnings) {
        this.#logger.warn({ queue: this.name, service: this.service, code: w.code, ...w.data }, w.message);
        if (this.listenerCount("warning") > 0) this.emit("warning", w);
      }
    }
    return warnings;
  }

  async #pipelineOrThrow(
    cmds: ReadonlyArray<readonly RedisArg[]>,
    options?: CommandOptions,
  ): Promise<unknown[]> {
    const res = await this.#redis.pipeline(cmds, options);
    const err = res.find((r) => r instanceof Error);
    if (err) throw err;
    return res;
  }

  #report(err: unknown, what: string): void {
    if (this.#state === QueueState.STOPPED) return;
    const e =
      err instanceof RedmeshErrorClass
        ? err
        : new RedmeshErrorClass(ErrorCode.REDIS_UNAVAILABLE, `queue ${what} failed: ${reasonOf(err)}`, {
            cause: err,
          });
    this.#logger.debug({ err: e, queue: this.name, step: what }, "queue step failed");
    if (this.listenerCount("error") > 0) this.emit("error", e);
  }

  #track(p: Promise<void>): void {
    const q = p.catch((err) => this.#report(err, "background")).finally(() => this.#ops.delete(q));
    this.#ops.add(q);
  }

  // ---------------------------------------------------------------- life cycle

  #checkIdle(): void {
    if (this.#active === 0) for (const w of this.#idleWaiters.splice(0)) w();
  }

  /**
   * Stop the worker (see the module comment for the order): running handlers get `graceMs` to finish,
   * then their signal aborts and their jobs go back to the pending line (not counted as attempts).
   * Idempotent; never rejects. A producer-only queue just stops.
   */
  stop(options: { graceMs?: number } = {}): Promise<void> {
    if (this.#stopping) return this.#stopping;
    this.#stopping = this.#doStop(options.graceMs ?? 5000);
    return this.#stopping;
  }

  async #doStop(graceMs: number): Promise<void> {
    if (this.#state !== QueueState.RUNNING) {
      this.#state = QueueState.STOPPED;
      await this.#closeProducer(Math.max(1000, graceMs));
      return;
    }
    this.#state = QueueState.STOPPING;
    clearTimeout(this.#reapTimer);
    clearTimeout(this.#delayTimer);
    this.#reapTimer = undefined;
    this.#delayTimer = undefined;
    await this.#redis.unsubscribe(this.#k.wake, this.#wakeListener).catch(() => undefined);
    // 1. No new claims: the blocking BLMOVE is cut; an entry it moved stays in our list (returned below).
    this.#blocking?.destroy();
    // 2. Let running handlers finish, bounded by the grace period.
    if (this.#active > 0) {
      await settleWithin(
        new Promise<void>((resolve) => {
          this.#idleWaiters.push(resolve);
        }),
        graceMs,
      );
    }
    for (const run of [...this.#running]) {
      abortRun(run, new AbortError(`queue "${this.name}" is stopping`));
      run.done = true;
      this.#running.delete(run);
      this.#active--;
      run.endWork?.();
    }
    // 3. Flush acknowledgements and failures (bounded: if Redis is down they stay in our list and the
    //    reaper of another worker returns them once our lease expires).
    const deadline = Date.now() + Math.max(1000, graceMs);
    while ((this.#acks.length > 0 || this.#cycles > 0) && Date.now() < deadline) {
      if (this.#cycles === 0) await this.#pump();
      else await new Promise<void>((r) => setTimeout(r, 5));
      if (this.#acks.length > 0 && this.#errorStreak > 0) await new Promise<void>((r) => setTimeout(r, 50));
    }
    this.#state = QueueState.STOPPED;
    if (this.#ops.size > 0) await settleWithin(Promise.allSettled([...this.#ops]), Math.max(1000, graceMs));
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    clearInterval(this.#sweepTimer);
    // 4. Return what is left in our in-progress list to the front of the line, and drop the lease.
    try {
      await this.#redis.script(
        REQUEUE,
        [this.#k.consumers, this.#k.active, this.#k.pending, this.#k.index, this.#k.stats],
        [this.consumerId, "1"],
      );
    } catch (err) {
      this.#logger.warn(
        { err, queue: this.name },
        "could not return in-progress jobs on stop (the reaper will)",
      );
    }
    clearInterval(this.#leaseTimer);
    this.#leaseTimer = undefined;
    this.#sweepTimer = undefined;
    await this.#blocking?.close().catch(() => undefined);
    this.#blocking = undefined;
    await this.#closeProducer(Math.max(1000, graceMs));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }
}

/** `"<byte length>:<entry>"` concatenated: many entries in one argument (see cycle.lua). */
function packEntries(entries: readonly string[]): string {
  let out = "";
  for (const e of entries) out += `${Buffer.byteLength(e)}:${e}`;
  return out;
}

function abortRun(run: Running, reason: unknown): void {
  if (run.abortReason !== undefined) return;
  run.abortReason = reason;
  run.ac?.abort(reason);
}

function toRecord(v: unknown): Record<string, unknown> {
  if (Array.isArray(v)) {
    const o: Record<string, unknown> = {};
    for (let i = 0; i + 1 < v.length; i += 2) o[String(v[i])] = v[i + 1];
    return o;
  }
  if (v instanceof Map) return Object.fromEntries(v);
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : {};
}

/** Create a queue (no I/O until used). */
export function createQueue<T = unknown>(options: QueueOptions): Queue<T> {
  return new Queue<T>(options);
}
