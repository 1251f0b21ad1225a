/**
 * Reading logs back: {@link tailLogs} merges the streams of several services in time order (and
 * follows them with `XREAD BLOCK` on a connection of its own), {@link queryLogs} searches one
 * service's stream backwards with filters.
 *
 * Time order: stream IDs are assigned by the one Redis server from its clock, and an `XREAD` reads
 * every listed stream at one instant, so sorting the entries of one reply by ID and never yielding
 * past the last ID of a stream whose reply was cut by `COUNT` gives a single, globally ordered
 * sequence.
 *
 * @module
 */

import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode, ValidationError } from "../errors.js";
import { assertServiceName, type Keys } from "../keys.js";
import type { RedisLike } from "../redis/index.js";
import {
  compareEntries,
  compareIds,
  idMs,
  isLogLevel,
  type LogEntry,
  LogLevel,
  type LogLevelName,
  parseStreamEntry,
} from "./types.js";

/** A connection a tail owns (for the blocking read). */
export interface TailConnection extends RedisLike {
  connect(options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<void>;
  close(options?: { timeoutMs?: number }): Promise<void>;
  destroy(): void;
}

/** A Redis connection that can open a second one (for `XREAD BLOCK`). */
export interface DuplicableRedis extends RedisLike {
  /** A new, unconnected connection with the same settings. */
  duplicate(clientName?: string): TailConnection;
}

/** Options of {@link tailLogs}. */
export interface TailOptions {
  /** Services to read. @default every registered service (re-read about once a second when following) */
  services?: readonly string[];
  /** Lowest level yielded. @default "trace" (everything) */
  level?: LogLevelName;
  /**
   * Start with entries written at or after this time (epoch ms or Date). Without it, a following tail
   * starts at the end of each stream and a non-following one at the beginning.
   */
  since?: number | Date;
  /** Keep waiting for new entries (`XREAD BLOCK`) until `signal` aborts or the loop breaks. @default false */
  follow?: boolean;
  /** Ends the tail (the iterator returns; no error). */
  signal?: AbortSignal;
  /** Entries read per stream per round trip. @default 500 */
  count?: number;
  /** Longest one blocking read waits before the tail looks for new services, in ms. @default 1000 */
  blockMs?: number;
}

/** Options of {@link queryLogs}. */
export interface QueryOptions {
  /** Service whose stream is searched. */
  service: string;
  /** Lowest level returned. @default every level */
  level?: LogLevelName;
  /** Oldest entry time (epoch ms or Date, Redis server clock), inclusive. */
  from?: number | Date;
  /** Newest entry time (epoch ms or Date, Redis server clock), inclusive. */
  to?: number | Date;
  /** Case-insensitive substring searched in the message and the serialised fields. */
  text?: string;
  /** Most entries returned: the newest matching ones, oldest first. @default 100 */
  limit?: number;
  /** Most entries examined before giving up (bounds the cost of a rare `text`). @default 100000 */
  maxScan?: number;
}

/** The max sequence number of a stream ID: `<ms>-<this>` sorts after every entry of that ms. */
const MAX_SEQ = "18446744073709551615";

/** How long a following tail on a Cluster waits between two polls that found nothing. */
const CLUSTER_POLL_MS = 100;

/**
 * XREAD of several streams in a Cluster, where streams of different services live in different slots
 * (a multi-key XREAD would be refused with CROSSSLOT): one single-stream XREAD each, in one pipeline,
 * merged into the shape of a multi-stream reply (`[key, entries]` pairs).
 */
async function readEachStream(
  redis: RedisLike,
  streams: readonly string[],
  cursors: ReadonlyMap<string, string>,
  count: number,
): Promise<Array<[string, unknown[]]>> {
  const replies = await redis.pipeline(
    streams.map((k) => ["XREAD", "COUNT", count, "STREAMS", k, cursors.get(k) ?? "0-0"]),
  );
  const out: Array<[string, unknown[]]> = [];
  replies.forEach((r) => {
    if (r instanceof Error) throw r;
    for (const pair of streamsOf(r)) out.push(pair);
  });
  return out;
}

/** The stream ID just before every entry written at `ms` (an exclusive XREAD start). */
export function idBefore(ms: number): string {
  return ms <= 0 ? "0-0" : `${ms - 1}-${MAX_SEQ}`;
}

function toMs(v: number | Date, what: string): number {
  const n = v instanceof Date ? v.getTime() : v;
  if (!Number.isFinite(n) || n < 0) {
    throw new ValidationError(`invalid ${what}: ${String(v)} (epoch ms or a Date)`, {
      code: ErrorCode.INVALID_OPTIONS,
    });
  }
  return Math.floor(n);
}

function checkLevel(level: unknown): number {
  if (level === undefined) return 0;
  if (!isLogLevel(level)) {
    throw new ValidationError(
      `invalid log level ${JSON.stringify(level)}: use one of ${Object.keys(LogLevel).join(", ")}`,
      { code: ErrorCode.INVALID_OPTIONS },
    );
  }
  return LogLevel[level];
}

/** XREAD replies: RESP3 gives a map (plain object), RESP2 an array of `[key, entries]`. */
function streamsOf(reply: unknown): Array<[string, unknown[]]> {
  if (reply === null || reply === undefined) return [];
  if (Array.isArray(reply)) {
    return reply
      .filter((x): x is [string, unknown[]] => Array.isArray(x) && Array.isArray(x[1]))
      .map((x) => [String(x[0]), x[1]]);
  }
  if (reply instanceof Map) return [...reply].map(([k, v]) => [String(k), Array.isArray(v) ? v : []]);
  if (typeof reply === "object") {
    return Object.entries(reply).map(([k, v]) => [k, Array.isArray(v) ? v : []]);
  }
  return [];
}

/**
 * Read the logs of several services merged in time order. With `follow`, waits for new entries on a
 * connection of its own (duplicated from `redis`, closed when the iterator ends) until `signal` aborts
 * or the consumer breaks out of the loop; a Redis outage pauses the tail, it does not end it.
 * Without `follow` it ends after the last entry present.
 */
export async function* tailLogs(
  redis: DuplicableRedis,
  keys: Keys,
  options: TailOptions = {},
): AsyncGenerator<LogEntry, void, undefined> {
  const minLevel = checkLevel(options.level);
  const follow = options.follow ?? false;
  const count = options.count ?? 500;
  const blockMs = options.blockMs ?? 1000;
  if (!Number.isInteger(count) || count < 1 || !Number.isInteger(blockMs) || blockMs < 1) {
    throw new ValidationError("tail: count and blockMs must be positive integers", {
      code: ErrorCode.INVALID_OPTIONS,
    });
  }
  const fixed = options.services;
  for (const s of fixed ?? []) assertServiceName(s);
  const since = options.since === undefined ? undefined : toMs(options.since, "since");
  const signal = options.signal;
  if (signal?.aborted) return;

  const cursors = new Map<string, string>();
  const startedAt = Date.now();
  let listedAt = 0;
  const addServices = async (names: readonly string[], initial: boolean) => {
    const fresh = names.map((n) => keys.log(n)).filter((k) => !cursors.has(k));
    if (fresh.length === 0) return;
    if (since !== undefined) {
      for (const k of fresh) cursors.set(k, idBefore(since));
    } else if (!follow) {
      for (const k of fresh) cursors.set(k, "0-0");
    } else if (initial) {
      // Start at the current end of each stream (resolved now: "$" would skip entries between reads).
      const lasts = await redis.pipeline(fresh.map((k) => ["XREVRANGE", k, "+", "-", "COUNT", 1]));
      fresh.forEach((k, i) => {
        const r = lasts[i];
        const id = Array.isArray(r) && Array.isArray(r[0]) ? r[0][0] : undefined;
        cursors.set(k, typeof id === "string" ? id : "0-0");
      });
    } else {
      // A service that appeared after the tail started: everything it wrote since (1 s clock margin).
      for (const k of fresh) cursors.set(k, idBefore(Math.max(0, startedAt - 1000)));
    }
  };
  const listServices = async (initial: boolean) => {
    listedAt = Date.now();
    const names = fixed ?? (await redis.command<string[]>(["SMEMBERS", keys.serviceIndex()]));
    await addServices(names, initial);
  };
  await listServices(true);

  // One blocking XREAD over every stream needs them on one server: a Cluster polls them instead.
  const conn = follow && !keys.cluster ? redis.duplicate() : undefined;
  const onAbort = () => conn?.destroy();
  signal?.addEventListener("abort", onAbort, { once: true });
  const pending: LogEntry[] = [];
  try {
    if (conn) {
      try {
        await conn.connect(signal ? { signal } : {});
      } catch (err) {
        if (signal?.aborted) return;
        throw err;
      }
    }
    for (;;) {
      if (signal?.aborted) return;
      if (follow && !fixed && Date.now() - listedAt >= blockMs) {
        try {
          await listServices(false);
        } catch {
          /* Redis down: keep the streams we know */
        }
      }
      const streams = [...cursors.keys()];
      if (streams.length === 0) {
        if (!follow) return;
        await sleep(blockMs, undefined, signal ? { signal } : {}).catch(() => undefined);
        continue;
      }
      let reply: unknown;
      try {
        reply = keys.cluster
          ? await readEachStream(redis, streams, cursors, count)
          : await (conn ?? redis).command(
              [
                "XREAD",
                "COUNT",
                count,
                ...(follow ? ["BLOCK", blockMs] : []),
                "STREAMS",
                ...streams,
                ...streams.map((k) => cursors.get(k) ?? "0-0"),
              ],
              follow ? { timeoutMs: 0 } : {},
            );
      } catch (err) {
        if (signal?.aborted) return;
        if (!follow) throw err;
        // Redis unreachable: the connection reconnects by itself; try again shortly.
        await sleep(250, undefined, signal ? { signal } : {}).catch(() => undefined);
        continue;
      }
      let watermark: string | undefined;
      let got = 0;
      for (const [key, entries] of streamsOf(reply)) {
        if (entries.length === 0) continue;
        got += entries.length;
        const lastRaw = entries[entries.length - 1];
        const lastId = Array.isArray(lastRaw) ? String(lastRaw[0]) : undefined;
        if (lastId) {
          cursors.set(key, lastId);
          // This stream may have more: nothing after its last ID may be yielded before reading it.
          if (entries.length >= count && (watermark === undefined || compareIds(lastId, watermark) < 0))
            watermark = lastId;
        }
        for (const raw of entries) {
          const e = parseStreamEntry(raw);
          if (e) pending.push(e);
        }
      }
      pending.sort(compareEntries);
      let n = pending.length;
      if (watermark !== undefined) {
        // Unread entries of the cut stream may share the watermark's millisecond: stop before it.
        const w = idMs(watermark);
        n = pending.findIndex((e) => idMs(e.id) >= w);
        if (n < 0) n = pending.length;
      }
      for (const e of pending.splice(0, n)) {
        if (LogLevel[e.level] >= minLevel) yield e;
        if (signal?.aborted) return;
      }
      if (got === 0 && !follow && pending.length === 0) return;
      // In a Cluster the streams live on different nodes and are polled without BLOCK: pause a little.
      if (got === 0 && follow && keys.cluster)
        await sleep(CLUSTER_POLL_MS, undefined, signal ? { signal } : {}).catch(() => undefined);
    }
  } finally {
    signal?.removeEventListener("abort", onAbort);
    if (conn) {
      if (signal?.aborted) conn.destroy();
      else await conn.close({ timeoutMs: 200 });
    }
  }
}

/**
 * Search one service's log, newest first, and return the newest `limit` matching entries in time
 * order (oldest first). Examines at most `maxScan` entries.
 */
export async function queryLogs(redis: RedisLike, keys: Keys, options: QueryOptions): Promise<LogEntry[]> {
  assertServiceName(options.service);
  const minLevel = checkLevel(options.level);
  const limit = options.limit ?? 100;
  const maxScan = options.maxScan ?? 100_000;
  if (!Number.isInteger(limit) || limit < 1 || !Number.isInteger(maxScan) || maxScan < 1) {
    throw new ValidationError("query: limit and maxScan must be positive integers", {
      code: ErrorCode.INVALID_OPTIONS,
    });
  }
  const from = options.from === undefined ? "-" : String(toMs(options.from, "from"));
  let end = options.to === undefined ? "+" : String(toMs(options.to, "to"));
  const needle = options.text?.toLowerCase();
  const key = keys.log(options.service);
  const out: LogEntry[] = [];
  let scanned = 0;
  const page = Math.min(1000, Math.max(limit * 4, 100));
  while (out.length < limit && scanned < maxScan) {
    const rows = await redis.command<unknown[]>(["XREVRANGE", key, end, from, "COUNT", page]);
    if (!Array.isArray(rows) || rows.length === 0) break;
    for (const raw of rows) {
      scanned++;
      const e = parseStreamEntry(raw);
      if (!e || LogLevel[e.level] < minLevel) continue;
      if (needle && !matches(e, needle)) continue;
      out.push(e);
      if (out.length >= limit) break;
    }
    const last = rows[rows.length - 1];
    if (rows.length < page || !Array.isArray(last)) break;
    end = `(${String(last[0])}`;
  }
  return out.reverse();
}

function matches(e: LogEntry, needle: string): boolean {
  if (e.msg.toLowerCase().includes(needle)) return true;
  return e.fields !== undefined && JSON.stringify(e.fields).toLowerCase().includes(needle);
}
