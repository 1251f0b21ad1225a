/**
 * A queue's read and operations commands: counts (`stats`), the dead letters (`dead`) and sending
 * them back (`redrive`). They start nothing and hold no state: any process may call them, on a queue
 * object that never processes or adds.
 *
 * @module
 */

import { ErrorCode, ValidationError } from "../errors.js";
import { type CommandOptions, loadScript, type RedisArg, type RedisLike } from "../redis/index.js";
import { parseEntry, withMeta } from "./job.js";
import { CHUNK, type DeadLetter, type QueueSettings, type QueueStats } from "./options.js";

const REDRIVE = loadScript("redrive", import.meta.url);

/** Run a pipeline and throw its first failed reply (a pipeline resolves with errors in place). */
export async function pipelineOrThrow(
  redis: RedisLike,
  cmds: ReadonlyArray<readonly RedisArg[]>,
  options?: CommandOptions,
): Promise<unknown[]> {
  const res = await redis.pipeline(cmds, options);
  const err = res.find((r) => r instanceof Error);
  if (err) throw err;
  return res;
}

/** A hash reply (RESP2 flat array, RESP3 map or object) as a plain record. */
export function toRecord(v: unknown): Record<string, unknown> {
  if (Array.isArray(v)) {
    const o: Record<string, unknown> = {};
    for (let i = 0; i + 1 < v.length; i += 2) o[String(v[i])] = v[i + 1];
    return o;
  }
  if (v instanceof Map) return Object.fromEntries(v);
  return typeof v === "object" && v !== null ? (v as Record<string, unknown>) : {};
}

/** Options of {@link QueueAdmin}. */
export interface QueueAdminOptions {
  /** Command connection. */
  redis: RedisLike;
  /** The queue's settings and keys. */
  settings: QueueSettings;
}

/** The read/ops commands of one queue (see the module comment). */
export class QueueAdmin {
  readonly #redis: RedisLike;
  readonly #s: QueueSettings;

  constructor(options: QueueAdminOptions) {
    this.#redis = options.redis;
    this.#s = options.settings;
  }

  /** Counts (see {@link QueueStats}). `inFlight` sums every live worker's in-progress list. */
  async stats(options?: CommandOptions): Promise<QueueStats> {
    const k = this.#s.keys;
    const [pending, delayed, dead, hash, consumers] = await pipelineOrThrow(
      this.#redis,
      [
        ["LLEN", k.pending],
        ["ZCARD", k.delayed],
        ["LLEN", k.dead],
        ["HGETALL", k.stats],
        ["ZRANGE", k.consumers, 0, -1],
      ],
      options,
    );
    const cids = (consumers as string[]) ?? [];
    const lens =
      cids.length > 0
        ? await pipelineOrThrow(
            this.#redis,
            cids.map((c) => ["LLEN", this.#s.activeKeyOf(c)]),
            options,
          )
        : [];
    const h = toRecord(hash);
    const n = (key: string) => Number(h[key] ?? 0);
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
    const list = await this.#redis.command<string[]>([
      "LRANGE",
      this.#s.keys.dead,
      offset,
      offset + count - 1,
    ]);
    return list.map((entry) => {
      const r = parseEntry(entry, this.#s.defaults, Number.POSITIVE_INFINITY);
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
        const r = parseEntry(d.entry, this.#s.defaults, Number.POSITIVE_INFINITY);
        if (!r.ok) fresh = d.entry;
        else {
          const { e: _e, ft: _ft, ...meta } = r.entry.meta;
          fresh = withMeta(r.entry, { ...meta, n: 0 });
        }
      }
      pairs.push(d.entry, fresh);
    }
    const k = this.#s.keys;
    let moved = 0;
    for (let i = 0; i < pairs.length; i += CHUNK * 2) {
      moved += Number(await this.#redis.script(REDRIVE, [k.dead, k.pending], pairs.slice(i, i + CHUNK * 2)));
    }
    return moved;
  }
}
