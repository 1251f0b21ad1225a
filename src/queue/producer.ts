/**
 * The producing side of a queue: `add` and `addBulk` write entries onto the pending list (or, delayed
 * or deduplicated, through add.lua) and, with `replicas` > 0, wait for replicas on the queue's own
 * producer connection.
 *
 * @module
 */

import { settleWithin } from "../async.js";
import { ErrorCode, RedmeshError, StateError, ValidationError } from "../errors.js";
import type { StopContext } from "../lifecycle.js";
import { loadScript, type RedisArg } from "../redis/index.js";
import { type EncodedJob, encodeJob, type JobOptions } from "./job.js";
import {
  type AddResult,
  type BlockingConnection,
  CHUNK,
  type QueueRedis,
  type QueueSettings,
} from "./options.js";

const ADD = loadScript("add", import.meta.url);

/** Options of {@link QueueProducer}. */
export interface QueueProducerOptions {
  /** Command connection (also what the producer connection is duplicated from). */
  redis: QueueRedis;
  /** The queue's settings and keys. */
  settings: QueueSettings;
  /** Records the queue in the service's queue index on first use. */
  announce: () => void;
  /** False once the queue is stopping: replicated adds are refused from then on. */
  accepting: () => boolean;
}

/** The producer of one queue (see the module comment). */
export class QueueProducer {
  readonly #redis: QueueRedis;
  readonly #s: QueueSettings;
  readonly #announce: () => void;
  readonly #accepting: () => boolean;
  /** The producer connection of replicated adds (`replicas` > 0), opening or open. */
  #conn: Promise<BlockingConnection> | undefined;
  /** Replicated adds in flight (stop lets them finish before closing their connection). */
  readonly #adds = new Set<Promise<unknown>>();

  constructor(options: QueueProducerOptions) {
    this.#redis = options.redis;
    this.#s = options.settings;
    this.#announce = options.announce;
    this.#accepting = options.accepting;
  }

  /** Add one job. Resolves once Redis has it (`added: false` for a duplicate `jobId`). */
  async add(body: unknown, options?: JobOptions): Promise<AddResult> {
    const [r] = await this.#addEncoded([this.#encode(body, options)]);
    return r!;
  }

  /** Add many jobs in one atomic step per chunk (one round trip each). */
  async addBulk(jobs: ReadonlyArray<{ body: unknown; options?: JobOptions }>): Promise<AddResult[]> {
    if (!Array.isArray(jobs)) {
      throw new ValidationError("addBulk expects an array of { body, options }", {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    const out: AddResult[] = [];
    for (let i = 0; i < jobs.length; i += CHUNK) {
      const part = jobs.slice(i, i + CHUNK).map((j) => this.#encode(j.body, j.options));
      out.push(...(await this.#addEncoded(part)));
    }
    return out;
  }

  /**
   * Let replicated adds in flight finish (at most `max(1000, graceMs)`, not past a forced stop), then
   * close the producer connection (destroy it when forced: adds still waiting reject now).
   */
  async close(ctx: StopContext, graceMs: number): Promise<void> {
    const opening = this.#conn;
    if (opening === undefined) return;
    if (this.#adds.size > 0) {
      await settleWithin(Promise.allSettled([...this.#adds]), Math.max(1000, graceMs), ctx.signal);
    }
    this.#conn = undefined;
    const conn = await opening.catch(() => undefined);
    if (ctx.force) conn?.destroy();
    else await conn?.close().catch(() => undefined);
  }

  #encode(body: unknown, options: JobOptions | undefined): EncodedJob {
    const s = this.#s;
    return encodeJob(
      body,
      options,
      {
        to: s.to,
        from: s.from,
        attempts: s.defaults.attempts,
        backoff: s.defaults.backoff,
        explicit: s.explicitDefaults,
      },
      s.maxBytes,
    );
  }

  async #addEncoded(jobs: EncodedJob[]): Promise<AddResult[]> {
    if (jobs.length === 0) return [];
    this.#announce();
    const k = this.#s.keys;
    const simple = jobs.every((j) => j.delay === 0 && j.unique === "" && j.priority === "0");
    if (simple) {
      // The common case needs no script: one LPUSH, exactly what Hydra's queueMessage does.
      await this.#replicated(["LPUSH", k.pending, ...jobs.map((j) => j.entry)]);
      return jobs.map((j) => ({ id: j.id, added: true }));
    }
    const args: RedisArg[] = [jobs.length];
    for (const j of jobs) args.push(j.entry, j.delay, j.unique, j.priority);
    const keys = [k.pending, k.delayed, k.ids];
    const res =
      this.#s.replicas === 0
        ? await this.#redis.script<number[]>(ADD, keys, args)
        : // EVAL, not EVALSHA: a NOSCRIPT fallback would run the script after the WAIT.
          await this.#replicated<number[]>(["EVAL", ADD.source, keys.length, ...keys, ...args]);
    const earliest = Number(res[0]);
    const now = Number(res[1]);
    if (earliest >= 0) {
      // Wake idle workers so a short delay is honoured even while they block on the pending list.
      await this.#redis.publish(k.wake, String(earliest - now)).catch(() => undefined);
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
    const n = this.#s.replicas;
    if (n === 0) return this.#redis.command<R>(args);
    if (!this.#accepting()) {
      throw new StateError(
        ErrorCode.NOT_RUNNING,
        `queue "${this.#s.name}" of "${this.#s.service}" was stopped`,
      );
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
    const conn = await this.#connection();
    const { name, service, replicaTimeoutMs: timeout } = this.#s;
    const route = { routeByKey: this.#s.keys.pending };
    const write = conn.command<R>(args, route);
    const wait = conn.command<number>(["WAIT", n, timeout], { ...route, timeoutMs: timeout + 5000 });
    const [res, acked] = await Promise.all([write, wait]);
    if (Number(acked) < n) {
      throw new RedmeshError(
        ErrorCode.NOT_REPLICATED,
        `queue "${name}" of "${service}": ${String(acked)} of ${n} replica(s) confirmed the add within ${timeout} ms; it may be lost if the primary fails over now`,
        {
          retryable: true,
          data: { queue: name, service, replicas: n, confirmed: Number(acked) },
        },
      );
    }
    return res;
  }

  /** The producer connection of replicated adds, opened on first use (again after a failed open). */
  #connection(): Promise<BlockingConnection> {
    if (this.#conn === undefined) {
      const conn = this.#redis.duplicate(`redmesh:qp:${this.#s.name}:${this.#s.consumerId.slice(0, 8)}`);
      const opening = conn.connect().then(() => conn);
      this.#conn = opening;
      opening.catch(() => {
        if (this.#conn === opening) this.#conn = undefined;
        conn.destroy();
      });
    }
    return this.#conn;
  }
}
