/**
 * What a queue is configured with and what it hands out: its options and defaults (validated once, in
 * {@link resolveQueueOptions} and {@link resolveProcessOptions}), the settings and key names its parts
 * share, and the public types of jobs, results, warnings and events.
 *
 * @module
 */

import { randomUUID } from "node:crypto";
import { DEFAULT_MAX_MESSAGE_BYTES } from "../envelope/index.js";
import {
  ErrorCode,
  type RedmeshError,
  RedmeshError as RedmeshErrorClass,
  ValidationError,
} from "../errors.js";
import { assertInstanceId, assertResourceName, assertServiceName, type Keys } from "../keys.js";
import type { StopOptions } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import type { RedisLike } from "../redis/index.js";
import { type Backoff, checkAttempts, type JobDefaults, resolveBackoff } from "./job.js";

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

/** Options of `createQueue`. Durations are in milliseconds. */
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

/** Options of `Queue.process`. */
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

/** Options of `Queue.stop`. */
export interface QueueStopOptions extends StopOptions {
  /**
   * How long running handlers may take to finish before their signal aborts and their jobs go back
   * to the pending line. `force: true` means 0.
   * @default 5000
   */
  graceMs?: number;
}

/** Default of {@link QueueStopOptions.graceMs}. */
export const DEFAULT_STOP_GRACE_MS = 5000;

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

/** Result of `Queue.add`. */
export interface AddResult {
  /** Job id. */
  id: string;
  /** False when a job with this `jobId` already exists (nothing was added). */
  added: boolean;
}

/** Counts returned by `Queue.stats`. */
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

/** A dead letter, as listed by `Queue.dead`. */
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

/** Events a `Queue` emits. */
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

/** What the queue's parts emit through: the `Queue` itself (an `EventEmitter<QueueEvents>`). */
export interface QueueEmitter {
  emit<K extends keyof QueueEvents>(event: K, ...args: QueueEvents[K]): boolean;
  listenerCount(event: keyof QueueEvents): number;
}

/** The Redis keys (and the wake-up channel) of one queue, as seen by one consumer. */
export interface QueueKeys {
  /** Pending list (`mqrecieved` for the default queue). */
  readonly pending: string;
  /** This consumer's in-progress list. */
  readonly active: string;
  /** Sorted set of worker leases (consumer id → expiry). */
  readonly consumers: string;
  /** Hash of lifetime counters. */
  readonly stats: string;
  /** Set of deduplicated job ids. */
  readonly ids: string;
  /** Sorted set of delayed jobs (due time → entry). */
  readonly delayed: string;
  /** Dead-letter list. */
  readonly dead: string;
  /** The service's instance index (the reaper reads presence from it). */
  readonly index: string;
  /** The service's queue index (tools list queues from it). */
  readonly names: string;
  /** Pub/sub channel: "a delayed job is due in N ms". */
  readonly wake: string;
}

/** A queue's validated settings, shared read-only by its parts. */
export interface QueueSettings {
  /** Queue name. */
  readonly name: string;
  /** Owning service. */
  readonly service: string;
  /** This worker's consumer id. */
  readonly consumerId: string;
  /** {@link QueueOptions.leaseMs}. */
  readonly leaseMs: number;
  /** {@link QueueOptions.reapIntervalMs}. */
  readonly reapIntervalMs: number;
  /** {@link QueueOptions.blockMs}. */
  readonly blockMs: number;
  /** {@link QueueOptions.maxMessageBytes}. */
  readonly maxBytes: number;
  /** {@link QueueOptions.checkDurability}. */
  readonly checkDurability: boolean;
  /** {@link QueueOptions.replicas}. */
  readonly replicas: number;
  /** {@link QueueOptions.replicaTimeoutMs}. */
  readonly replicaTimeoutMs: number;
  /** `frm` of added jobs. */
  readonly from: string;
  /** `to` of added jobs (the owning service's route). */
  readonly to: string;
  /** Attempts and backoff for jobs that do not say. */
  readonly defaults: JobDefaults;
  /** The queue was given its own attempts/backoff: added jobs always carry them. */
  readonly explicitDefaults: boolean;
  /** Key names. */
  readonly keys: QueueKeys;
  /** The in-progress list of any consumer of this queue. */
  readonly activeKeyOf: (consumerId: string) => string;
  /** {@link QueueOptions.beginWork}. */
  readonly beginWork: (() => () => void) | undefined;
}

/** Settings of one worker, from {@link ProcessOptions}. */
export interface WorkerSettings {
  /** Jobs run at once. */
  readonly concurrency: number;
  /** Jobs claimed ahead of free slots. */
  readonly prefetch: number;
  /** Handler deadline in ms; 0 = none. */
  readonly timeout: number;
}

/** Entries per script call of a bulk operation (keeps each script short: Redis runs them one at a time). */
export const CHUNK = 500;
/** Longest reason kept on a dead letter; longer messages are clipped. */
const MAX_REASON_CHARS = 1000;

function invalid(message: string): ValidationError {
  return new ValidationError(message, { code: ErrorCode.INVALID_OPTIONS });
}

/** An integer number of milliseconds in `[min, max]`, or a `ValidationError` naming `what`. */
export function checkMs(v: unknown, what: string, min: number, max = 86_400_000): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
    throw invalid(`${what} must be an integer number of milliseconds from ${min} to ${max}`);
  }
  return v;
}

function replicaCount(v: unknown): number {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > 16) {
    throw invalid("replicas must be an integer from 0 to 16");
  }
  return v;
}

/** Validate {@link QueueOptions} once (the constructor's only work) and derive the key names. */
export function resolveQueueOptions(options: QueueOptions): QueueSettings {
  if (typeof options !== "object" || options === null) throw invalid("queue options are required");
  const d = DEFAULT_QUEUE_OPTIONS;
  assertServiceName(options.service);
  const name = options.name ?? d.name;
  assertResourceName("queue", name);
  const consumerId = options.consumerId ?? randomUUID().replace(/-/g, "");
  assertInstanceId(consumerId);
  if (!options.redis || typeof options.redis.duplicate !== "function") {
    throw invalid("queue option `redis` must be a connection with duplicate()");
  }
  const leaseMs = checkMs(options.leaseMs ?? d.leaseMs, "leaseMs", 100);
  const reapIntervalMs = checkMs(options.reapIntervalMs ?? d.reapIntervalMs, "reapIntervalMs", 10);
  const blockMs = checkMs(options.blockMs ?? d.blockMs, "blockMs", 10, 60_000);
  const maxBytes = checkMs(
    options.maxMessageBytes ?? d.maxMessageBytes,
    "maxMessageBytes",
    64,
    512 * 1024 * 1024,
  );
  const replicas = replicaCount(options.replicas ?? d.replicas);
  const replicaTimeoutMs = checkMs(
    options.replicaTimeoutMs ?? d.replicaTimeoutMs,
    "replicaTimeoutMs",
    1,
    60_000,
  );
  const defaults: JobDefaults = {
    attempts: checkAttempts(options.attempts ?? d.attempts),
    backoff: resolveBackoff(options.backoff ?? d.backoff),
  };
  const k = options.keys;
  const svc = options.service;
  return {
    name,
    service: svc,
    consumerId,
    leaseMs,
    reapIntervalMs,
    blockMs,
    maxBytes,
    checkDurability: options.checkDurability ?? d.checkDurability,
    replicas,
    replicaTimeoutMs,
    from: options.from ?? `${svc}:/`,
    to: `${svc}:/`,
    defaults,
    explicitDefaults: options.attempts !== undefined || options.backoff !== undefined,
    keys: {
      pending: name === "default" ? k.queuePending(svc) : k.queue(svc, name, "pending"),
      active: k.queueConsumer(svc, name, "active", consumerId),
      consumers: k.queue(svc, name, "consumers"),
      stats: k.queue(svc, name, "stats"),
      ids: k.queue(svc, name, "ids"),
      delayed: k.queue(svc, name, "delayed"),
      dead: k.queue(svc, name, "dead"),
      index: k.instanceIndex(svc),
      names: k.queueIndex(svc),
      // A pub/sub channel (built by keys.ts like every name).
      wake: k.queue(svc, name, "wake"),
    },
    activeKeyOf: (cid: string) => k.queueConsumer(svc, name, "active", cid),
    beginWork: options.beginWork,
  };
}

/** Validate {@link ProcessOptions}. */
export function resolveProcessOptions(options: ProcessOptions): WorkerSettings {
  const concurrency = options.concurrency ?? DEFAULT_PROCESS_OPTIONS.concurrency;
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 10_000) {
    throw invalid("concurrency must be an integer from 1 to 10000");
  }
  const timeout = checkMs(options.timeout ?? DEFAULT_PROCESS_OPTIONS.timeout, "timeout", 0);
  const prefetch = options.prefetch ?? concurrency;
  if (!Number.isInteger(prefetch) || prefetch < 0 || prefetch > 10_000) {
    throw invalid("prefetch must be an integer from 0 to 10000");
  }
  return { concurrency, prefetch, timeout };
}

/** An error as the one-line reason stored on a dead letter or in a warning (clipped). */
export function reasonOf(err: unknown): string {
  let s: string;
  if (err instanceof RedmeshErrorClass) s = `${err.code}: ${err.message}`;
  else if (err instanceof Error) s = `${err.name}: ${err.message}`;
  else s = String(err);
  return s.length > MAX_REASON_CHARS ? `${s.slice(0, MAX_REASON_CHARS)}…` : s;
}
