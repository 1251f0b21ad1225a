// Long because the claim cycle, the running handlers and the stop share one worker's bookkeeping (buffer, acks, running set).
/**
 * The consuming side of a queue: claim cycles, running handlers, acknowledgements and failures,
 * pause/resume, and the worker's part of the stop.
 *
 * A worker claims entries atomically into its own in-progress list (`LMOVE` inside cycle.lua, which
 * also acknowledges finished jobs and refreshes the lease, so one round trip serves a whole batch;
 * `BLMOVE` on a dedicated connection when the queue is empty). Success removes the entry (acks are
 * batched into the next claim); a throw or a timeout rewrites it with one more attempt and puts it
 * back (after its backoff, through the delayed set) or, out of attempts, onto the dead-letter list
 * with the reason. Its {@link QueueReaper} (`reaper.ts`) keeps its lease, promotes due delayed jobs
 * and returns the in-progress lists of dead workers.
 *
 * @module
 */

import { settleWithin } from "../async.js";
import { runWithContext } from "../context.js";
import { AbortError, ErrorCode, RedmeshError, TimeoutError } from "../errors.js";
import { LifeState, type LifeStateValue, type StopContext } from "../lifecycle.js";
import type { Logger } from "../logger.js";
import { loadScript, type RedisArg } from "../redis/index.js";
import type { QueueDurability } from "./durability.js";
import {
  backoffDelay,
  type EntryMeta,
  malformedDeadLetter,
  type ParsedEntry,
  parseEntry,
  withMeta,
} from "./job.js";
import {
  type BlockingConnection,
  CHUNK,
  type Job,
  type JobHandler,
  type QueueEmitter,
  type QueueRedis,
  type QueueSettings,
  reasonOf,
  type WorkerSettings,
} from "./options.js";
import { QueueReaper } from "./reaper.js";

const CYCLE = loadScript("cycle", import.meta.url);
const FAIL = loadScript("fail", import.meta.url);
const REQUEUE = loadScript("requeue", import.meta.url);
const RELEASE = loadScript("release", import.meta.url);

/** Raw text kept from a malformed entry (enough to recognise it, not megabytes). */
const MAX_RAW_CHARS = 4096;
/** Claim/ack round trips in flight at once per worker (2: one on the wire while the last batch runs). */
const MAX_CYCLES = 2;

/** A job whose handler runs now. */
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

/** Counts of one worker in this process (`Queue.counters`). */
export interface WorkerCounters {
  /** Jobs acknowledged. */
  processed: number;
  /** Failed attempts (malformed entries included). */
  failed: number;
  /** Jobs moved to the dead letters. */
  dead: number;
  /** Entries claimed. */
  claimed: number;
  /** Claim/ack round trips. */
  cycles: number;
  /** Entries claimed by a blocking `BLMOVE`. */
  blockingClaims: number;
  /** Jobs returned from other (dead) workers by this worker's reaper. */
  requeuedOthers: number;
  /** Reaper passes run. */
  reaps: number;
}

/** Options of {@link QueueWorker}. */
export interface QueueWorkerOptions {
  /** Command connection (also what the blocking connection is duplicated from). */
  redis: QueueRedis;
  /** The queue's settings and keys. */
  settings: QueueSettings;
  /** Where failures and requeues are logged. */
  logger: Logger;
  /** Where `failed`, `dead`, `requeued` and `error` are emitted (the `Queue`). */
  events: QueueEmitter;
  /** Announces the queue and checks Redis' configuration when the worker starts. */
  durability: QueueDurability;
}

/** The worker of one queue (see the module comment). Created idle; {@link QueueWorker.start} starts it. */
export class QueueWorker {
  readonly #redis: QueueRedis;
  readonly #s: QueueSettings;
  readonly #logger: Logger;
  readonly #events: QueueEmitter;
  readonly #durability: QueueDurability;
  readonly #reaper: QueueReaper;
  readonly #cycleKeys: string[];
  readonly #failKeys: string[];

  // The worker's own phase, not the queue's life state: RUNNING from process() on (the queue's
  // Lifecycle gets there a microtask later) and STOPPED before the queue's stop ends (background
  // retries must end before the last requeue).
  #phase: LifeStateValue = LifeState.IDLE;
  #handler: JobHandler<unknown> | undefined;
  #w: WorkerSettings | undefined;
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
  #sweepTimer: NodeJS.Timeout | undefined;
  #idleWaiters: Array<() => void> = [];
  /** Local counters (this process). */
  readonly counters: WorkerCounters = {
    processed: 0,
    failed: 0,
    dead: 0,
    claimed: 0,
    cycles: 0,
    blockingClaims: 0,
    requeuedOthers: 0,
    reaps: 0,
  };

  constructor(options: QueueWorkerOptions) {
    this.#redis = options.redis;
    this.#s = options.settings;
    this.#logger = options.logger;
    this.#events = options.events;
    this.#durability = options.durability;
    const k = this.#s.keys;
    this.#cycleKeys = [k.pending, k.active, k.consumers, k.stats, k.ids];
    this.#failKeys = [k.active, k.pending, k.delayed, k.dead, k.stats];
    this.#reaper = new QueueReaper({
      redis: this.#redis,
      settings: this.#s,
      logger: this.#logger,
      events: this.#events,
      counters: this.counters,
      report: (err, what) => this.#report(err, what),
    });
  }

  /** True while paused. */
  get paused(): boolean {
    return this.#paused;
  }

  /** Jobs running now in this process. */
  get running(): number {
    return this.#active;
  }

  /**
   * Start processing (once; the caller checks). Claiming starts in the background and survives Redis
   * outages (it resumes by itself); errors are emitted as `error`.
   */
  start(handler: JobHandler<unknown>, settings: WorkerSettings): void {
    this.#handler = handler;
    this.#w = settings;
    this.#phase = LifeState.RUNNING;
    this.#reaper.start();
    if (settings.timeout > 0) {
      // One sweep timer instead of one timer per job: precision is a fifth of the timeout.
      const every = Math.min(1000, Math.max(10, Math.floor(settings.timeout / 5)));
      this.#sweepTimer = setInterval(() => this.#sweep(), every);
    }
    this.#reaper.subscribeWake();
    this.#durability.announce();
    if (this.#s.checkDurability) this.#track(this.#durability.check().then(() => undefined));
    this.#schedulePump();
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
    return this.#phase === LifeState.RUNNING && !this.#paused;
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
    const w = this.#w;
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
      const args: RedisArg[] = [this.#s.consumerId, this.#s.leaseMs, want, acks.length, packEntries(acks)];
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
    if (this.#phase === LifeState.RUNNING) {
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
    if (this.#phase === LifeState.STOPPING) this.#checkIdle();
  }

  /** The queue looked empty: wait for the next entry with BLMOVE on the dedicated connection. */
  async #block(): Promise<void> {
    if (this.#blockingBusy || !this.#canClaim()) return;
    this.#blockingBusy = true;
    const k = this.#s.keys;
    let ok = true;
    try {
      let conn = this.#blocking;
      if (!conn) {
        conn = this.#redis.duplicate(`redmesh:q:${this.#s.name}:${this.#s.consumerId.slice(0, 8)}`);
        this.#blocking = conn;
        await conn.connect();
      }
      if (!this.#canClaim()) return;
      const raw = await conn.command<string | null>(
        ["BLMOVE", k.pending, k.active, "RIGHT", "LEFT", (this.#s.blockMs / 1000).toFixed(3)],
        // The server answers at blockMs at the latest: 2 s more is network slack, and past it the
        // connection is presumed dead (the stall watchdog then replaces it).
        { timeoutMs: this.#s.blockMs + 2000 },
      );
      if (typeof raw === "string") {
        this.counters.claimed++;
        this.counters.blockingClaims++;
        if (this.#phase === LifeState.RUNNING) {
          this.#buffer.push(raw);
          this.#drainBuffer();
        } else this.#held.push(raw);
      }
      this.#errorStreak = 0;
    } catch (err) {
      ok = false;
      if (this.#phase === LifeState.RUNNING) {
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
    if (this.#phase !== LifeState.RUNNING) return;
    if (ok) this.#schedulePump();
    else this.#later(() => this.#schedulePump(), this.#errorDelay());
  }

  #onRedisError(err: unknown, what: string): void {
    if (this.#phase === LifeState.STOPPED) return;
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
    const w = this.#w!;
    const handler = this.#handler!;
    const parsed = parseEntry(raw, this.#s.defaults, this.#s.maxBytes);
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
      endWork: this.#s.beginWork?.(),
    };
    this.#active++;
    this.#running.add(run);
    const job: Job<unknown> = {
      id: p.id,
      body: p.body,
      attempt: p.meta.n + 1,
      attempts: p.meta.a,
      queue: this.#s.name,
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
      result = runWithContext({ correlationId: cid }, () => handler(p.body, job));
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
    if (this.#phase === LifeState.STOPPING) this.#checkIdle();
    else this.#drainBuffer();
    this.#schedulePump();
  }

  /** Start buffered (claimed, not yet started) jobs while slots are free. */
  #drainBuffer(): void {
    const w = this.#w;
    if (!w || this.#paused || this.#phase !== LifeState.RUNNING) return;
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
          `job ${run.p.id} did not finish within ${this.#w?.timeout} ms (attempt ${run.p.meta.n + 1})`,
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
    if (this.#events.listenerCount("failed") > 0) {
      this.#events.emit("failed", { id: run.p.id, attempt: made, attempts: meta.a, error: err, retry });
    }
    this.#logger.debug(
      { queue: this.#s.name, id: run.p.id, attempt: made, retry, reason },
      "job attempt failed",
    );
    await this.#runFail(run.raw, entry, retry ? "retry" : "dead", delay, run.p.id, reason);
  }

  async #deadLetterMalformed(raw: string, reason: string): Promise<void> {
    this.counters.failed++;
    this.#logger.warn({ queue: this.#s.name, reason }, "malformed queue entry moved to the dead letters");
    const entry = malformedDeadLetter(raw, reason, this.#s.to, MAX_RAW_CHARS);
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
            if (this.#events.listenerCount("dead") > 0) this.#events.emit("dead", { id, reason });
          } else if (delay > 0) {
            this.#reaper.promoteAt(Date.now() + delay);
          }
        }
        return;
      } catch (err) {
        if (this.#phase === LifeState.STOPPED || tries > 50) {
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
    const k = this.#s.keys;
    const list = await this.#redis.command<string[]>(["LRANGE", k.active, 0, -1]);
    const known = this.#known(acking);
    const seen = new Map<string, number>();
    const strays: string[] = [];
    for (const e of list) {
      const n = (seen.get(e) ?? 0) + 1;
      seen.set(e, n);
      if (n > (known.get(e) ?? 0)) strays.push(e);
    }
    for (let i = 0; i < strays.length; i += CHUNK) {
      await this.#redis.script(RELEASE, [k.active, k.pending], strays.slice(i, i + CHUNK));
    }
    if (strays.length > 0) {
      this.#logger.warn({ queue: this.#s.name, count: strays.length }, "returned stray in-progress entries");
    }
    this.#needReconcile = false;
  }

  /** One reaper pass now (see {@link QueueReaper.reap}); any process may call it. */
  reap(): Promise<number> {
    return this.#reaper.reap();
  }

  #report(err: unknown, what: string): void {
    if (this.#phase === LifeState.STOPPED) return;
    const e =
      err instanceof RedmeshError
        ? err
        : new RedmeshError(ErrorCode.REDIS_UNAVAILABLE, `queue ${what} failed: ${reasonOf(err)}`, {
            cause: err,
          });
    this.#logger.debug({ err: e, queue: this.#s.name, step: what }, "queue step failed");
    if (this.#events.listenerCount("error") > 0) this.#events.emit("error", e);
  }

  #track(p: Promise<void>): void {
    const q = p.catch((err) => this.#report(err, "background")).finally(() => this.#ops.delete(q));
    this.#ops.add(q);
  }

  #checkIdle(): void {
    if (this.#active === 0) for (const w of this.#idleWaiters.splice(0)) w();
  }

  /**
   * The worker's part of the queue's stop, in this order: stop claiming (close the blocking
   * connection) → let running handlers finish within `graceMs` (not at all when forced), then abort
   * them → flush acknowledgements and failures → return whatever is still in this worker's
   * in-progress list to the front of the pending line → drop the lease. A worker never started just
   * goes down. Never rejects.
   */
  async stop(ctx: StopContext, graceMs: number): Promise<void> {
    if (this.#phase !== LifeState.RUNNING) {
      this.#phase = LifeState.STOPPED;
      return;
    }
    this.#phase = LifeState.STOPPING;
    const k = this.#s.keys;
    // Bookkeeping (acks, failures, the last requeue) gets at least a second, even with a short grace.
    const slackMs = Math.max(1000, graceMs);
    // No more reaper passes or promotions; the lease is kept until our jobs are returned (step 4).
    await this.#reaper.stopPasses();
    // 1. No new claims: the blocking BLMOVE is cut; an entry it moved stays in our list (returned below).
    this.#blocking?.destroy();
    // 2. Let running handlers finish, bounded by the grace period (a forced stop cuts the wait short).
    if (this.#active > 0 && !ctx.force) {
      await settleWithin(
        new Promise<void>((resolve) => {
          this.#idleWaiters.push(resolve);
        }),
        graceMs,
        ctx.signal,
      );
    }
    for (const run of [...this.#running]) {
      abortRun(run, new AbortError(`queue "${this.#s.name}" is stopping`));
      run.done = true;
      this.#running.delete(run);
      this.#active--;
      run.endWork?.();
    }
    // 3. Flush acknowledgements and failures (bounded: if Redis is down they stay in our list and the
    //    reaper of another worker returns them once our lease expires).
    const deadline = Date.now() + slackMs;
    while ((this.#acks.length > 0 || this.#cycles > 0) && Date.now() < deadline && !ctx.force) {
      if (this.#cycles === 0) await this.#pump();
      else await new Promise<void>((r) => setTimeout(r, 5));
      if (this.#acks.length > 0 && this.#errorStreak > 0) await new Promise<void>((r) => setTimeout(r, 50));
    }
    // Forced: still one round trip for the acks of finished jobs, or the requeue below would run them again.
    if (ctx.force && this.#acks.length > 0) await this.#pump();
    this.#phase = LifeState.STOPPED;
    if (this.#ops.size > 0) await settleWithin(Promise.allSettled([...this.#ops]), slackMs, ctx.signal);
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    clearInterval(this.#sweepTimer);
    // 4. Return what is left in our in-progress list to the front of the line, and drop the lease.
    try {
      await this.#redis.script(
        REQUEUE,
        [k.consumers, k.active, k.pending, k.index, k.stats],
        [this.#s.consumerId, "1"],
      );
    } catch (err) {
      this.#logger.warn(
        { err, queue: this.#s.name },
        "could not return in-progress jobs on stop (the reaper will)",
      );
    }
    this.#reaper.stopLease();
    this.#sweepTimer = undefined;
    await this.#blocking?.close().catch(() => undefined);
    this.#blocking = undefined;
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
