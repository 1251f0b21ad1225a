/**
 * The dashboard's live log tail, shared by every page: the newest entries of every service first (so a
 * page that opens shows recent history), then new ones as they are written. It reads with `tailLogs`,
 * which blocks in `XREAD BLOCK` on a connection of its own, duplicated from the dashboard's and
 * destroyed the moment the tail is stopped. The last `bufferSize` entries are kept for pages that
 * open later.
 *
 * @module
 */

import { setTimeout as sleep } from "node:timers/promises";
import type { Keys } from "../keys.js";
import {
  compareEntries,
  compareIds,
  type DuplicableRedis,
  type LogEntry,
  LogLevel,
  queryLogs,
  tailLogs,
} from "../log/index.js";
import type { Logger } from "../logger.js";

/** Where the tail's entries go (the connected pages). */
export interface LogSink {
  /** A batch (the backlog), oldest first. */
  logs(entries: readonly LogEntry[]): void;
  /** One new entry. */
  log(entry: LogEntry): void;
}

/** Options of {@link LogTail}. */
export interface LogTailOptions {
  /** The connection to read with; the blocking read runs on a duplicate of it. */
  redis: DuplicableRedis;
  /** Key builder of the namespace shown. */
  keys: Keys;
  /** Most entries kept (and read as the backlog). */
  bufferSize: number;
  /** Pause before a tail that failed starts again, in ms. */
  retryMs: number;
  /** Diagnostics. */
  logger: Logger;
  /** Receives the backlog, then every new entry. */
  sink: LogSink;
}

/** The shared log tail. `start()` begins a run, `stop()` aborts it; a later `start()` begins a new one. */
export class LogTail {
  readonly #o: LogTailOptions;
  #run: { abort: AbortController; done: Promise<void> } | undefined;
  /** Runs aborted but not yet ended, which {@link stop} waits for. */
  readonly #ending = new Set<Promise<void>>();
  #recent: LogEntry[] = [];
  /** Counters: entries received. */
  readonly stats = { entries: 0 };

  constructor(options: LogTailOptions) {
    this.#o = options;
  }

  /** True while a run is under way. */
  get active(): boolean {
    return this.#run !== undefined;
  }

  /** The buffered entries at or above `minLevel`, oldest first (what a page that opens gets). */
  recent(minLevel: number): LogEntry[] {
    return this.#recent.filter((e) => LogLevel[e.level] >= minLevel);
  }

  /** Begin a run (no-op while one is under way). */
  start(): void {
    if (this.#run) return;
    const abort = new AbortController();
    this.#run = { abort, done: this.#follow(abort.signal) };
  }

  /**
   * Abort the run (its connection is destroyed at once) and forget the buffer: a page that opens later
   * gets a fresh backlog from Redis, not what was buffered back then. Resolves once every aborted
   * run has ended (never rejects).
   */
  stop(): Promise<void> {
    const run = this.#run;
    this.#run = undefined;
    this.#recent = [];
    if (run) {
      run.abort.abort();
      const ended = run.done.catch(() => undefined);
      this.#ending.add(ended);
      void ended.finally(() => this.#ending.delete(ended));
    }
    return Promise.all(this.#ending).then(() => undefined);
  }

  /**
   * One run: the newest `bufferSize` entries of every service, then follow from just before the
   * backlog was read. A failure (the tail only ends on one while Redis is unreachable at its start)
   * restarts it after `retryMs`. Duplicates are skipped per service by stream ID: the follow starts
   * with a clock margin, and `tailLogs` reads a service that appears later from a little before it
   * appeared, so entries of different services can arrive out of global order (a single "last ID"
   * would drop them).
   */
  async #follow(signal: AbortSignal): Promise<void> {
    const { redis, keys, bufferSize, sink } = this.#o;
    const lastIds = new Map<string, string>();
    let sinceMs: number | undefined;
    while (!signal.aborted) {
      try {
        if (sinceMs === undefined) {
          // 1 s margin: the writers' and Redis's clocks may differ slightly.
          const startedAt = Date.now() - 1000;
          const names = await redis.command<string[]>(["SMEMBERS", keys.serviceIndex()]);
          const perService = await Promise.all(
            names.map((service) => queryLogs(redis, keys, { service, limit: bufferSize })),
          );
          if (signal.aborted) return;
          for (const list of perService) {
            const last = list.at(-1);
            if (last) lastIds.set(last.service, last.id);
          }
          const backlog = perService.flat().sort(compareEntries).slice(-bufferSize);
          if (backlog.length > 0) {
            this.stats.entries += backlog.length;
            this.#recent.push(...backlog);
            sink.logs(backlog);
          }
          sinceMs = Math.max(0, startedAt);
        }
        // After a failure this re-reads from the same point (bounded by the stream caps): the per-service
        // positions skip what was shown, and a service that was quiet loses nothing.
        for await (const e of tailLogs(redis, keys, { follow: true, since: sinceMs, signal })) {
          const last = lastIds.get(e.service);
          if (last !== undefined && compareIds(e.id, last) <= 0) continue;
          lastIds.set(e.service, e.id);
          this.#push(e);
        }
      } catch (err) {
        this.#o.logger.debug({ err }, "dashboard: log tail failed; retrying");
      }
      if (!signal.aborted) await sleep(this.#o.retryMs, undefined, { signal }).catch(() => undefined);
    }
  }

  #push(e: LogEntry): void {
    this.stats.entries++;
    this.#recent.push(e);
    const max = this.#o.bufferSize;
    if (this.#recent.length > max) this.#recent.splice(0, this.#recent.length - max);
    this.#o.sink.log(e);
  }
}
