/**
 * Queue entries: how a job is written into the list and read back.
 *
 * An entry is a UMF message in the short form, exactly what Hydra's `queueMessage` LPUSHes
 * (`to, frm, mid, ts, ver, bdy`), plus one field Hydra ignores, `rmq`, with the job's delivery
 * bookkeeping: `a` attempts allowed, `n` attempts made, `b` backoff base (ms), `bt` backoff type
 * (`"f"` fixed, `"e"` exponential), `bm` backoff cap (ms), `u` 1 when the id is deduplicated, and on
 * dead letters `e` the reason and `ft` the failure time. A Hydra message has no `rmq`: it gets the
 * queue's defaults. Anything that is not a JSON object with a `bdy` (or `body`) is malformed.
 *
 * @module
 */

import { randomUUID } from "node:crypto";
import { decodeJobEntry, encodeJobEntry, reencodeJobEntry } from "../envelope/index.js";
import { ErrorCode, MessageError, ValidationError } from "../errors.js";

/** How long to wait before a retry. A number is a fixed delay in ms. */
export type Backoff =
  | number
  | {
      /** `fixed`: always `delay`; `exponential`: `delay × 2^(attempt-1)`. */
      type: "fixed" | "exponential";
      /** Base delay in ms. */
      delay: number;
      /** Cap in ms for exponential backoff. @default 60000 */
      maxDelay?: number;
    };

/** Options of one job (`queue.add(body, options)`). */
export interface JobOptions {
  /** Delay before the job becomes claimable, in ms. @default 0 */
  delay?: number;
  /** Attempts in total (1 = no retry). @default the queue's `attempts` (3) */
  attempts?: number;
  /** Delay between attempts. @default the queue's `backoff` (exponential from 100 ms) */
  backoff?: Backoff;
  /**
   * Job id. When given, the job is deduplicated: adding an id that still exists (pending, delayed,
   * in flight or dead) is a no-op that resolves with `added: false`. @default a random UUID
   */
  jobId?: string;
  /** `"high"` puts the job at the front of the line (claimed next). @default "normal" */
  priority?: "high" | "normal";
}

/** Delivery bookkeeping stored in an entry's `rmq` field. */
export interface EntryMeta {
  /** Attempts allowed. */
  a: number;
  /** Attempts made so far. */
  n: number;
  /** Backoff base, ms. */
  b: number;
  /** Backoff type: fixed or exponential. */
  bt: "f" | "e";
  /** Backoff cap, ms. */
  bm: number;
  /** 1 when the job id is deduplicated. */
  u?: 1;
  /** Dead letters: why the job was dead-lettered. */
  e?: string;
  /** Dead letters: when (epoch ms). */
  ft?: number;
  /** Malformed entries: the raw text as found in the list. */
  raw?: string;
}

/** An entry read back from a list. */
export interface ParsedEntry {
  /** The parsed object (short-form UMF plus `rmq`). */
  obj: Record<string, unknown>;
  /** Job id (`mid`). */
  id: string;
  /** The payload (`bdy`). */
  body: unknown;
  /** Delivery bookkeeping (defaults filled in for Hydra messages). */
  meta: EntryMeta;
}

/** The result of {@link parseEntry}: a job, or the reason the entry is malformed. */
export type ParseResult = { ok: true; entry: ParsedEntry } | { ok: false; reason: string };

/** Queue-level defaults applied to jobs that do not say otherwise. */
export interface JobDefaults {
  attempts: number;
  /** Resolved backoff `[base ms, type, cap ms]` (see {@link resolveBackoff}). */
  backoff: [number, "f" | "e", number];
}

/** Largest accepted attempts value: retries beyond this are a configuration mistake. */
const MAX_ATTEMPTS = 1000;
/** Largest delay or backoff: one year, so a typo cannot park a job for centuries. */
const MAX_DELAY_MS = 365 * 86_400_000;

function bad(message: string): ValidationError {
  return new ValidationError(message, { code: ErrorCode.INVALID_OPTIONS });
}

function checkMs(v: unknown, what: string): number {
  if (typeof v !== "number" || !Number.isFinite(v) || v < 0 || v > MAX_DELAY_MS) {
    throw bad(`${what} must be a number of milliseconds between 0 and ${MAX_DELAY_MS}`);
  }
  return Math.floor(v);
}

/** Validate a backoff and reduce it to `[base, type, cap]`. */
export function resolveBackoff(b: unknown): [number, "f" | "e", number] {
  if (typeof b === "number") return [checkMs(b, "backoff"), "f", 60_000];
  if (typeof b !== "object" || b === null) throw bad("backoff must be a number or { type, delay }");
  const o = b as { type?: unknown; delay?: unknown; maxDelay?: unknown };
  if (o.type !== "fixed" && o.type !== "exponential") {
    throw bad('backoff.type must be "fixed" or "exponential"');
  }
  return [
    checkMs(o.delay, "backoff.delay"),
    o.type === "fixed" ? "f" : "e",
    o.maxDelay === undefined ? 60_000 : checkMs(o.maxDelay, "backoff.maxDelay"),
  ];
}

/** Validate attempts. */
export function checkAttempts(a: unknown): number {
  if (typeof a !== "number" || !Number.isInteger(a) || a < 1 || a > MAX_ATTEMPTS) {
    throw bad(`attempts must be an integer from 1 to ${MAX_ATTEMPTS}`);
  }
  return a;
}

/** What `add()` sends to Redis for one job. */
export interface EncodedJob {
  id: string;
  entry: string;
  delay: number;
  unique: string;
  priority: "0" | "1";
}

const JOB_OPTION_KEYS = new Set(["delay", "attempts", "backoff", "jobId", "priority"]);

/**
 * Encode one job as a Hydra-compatible UMF entry (`envelope/job.ts`). Throws a {@link ValidationError}
 * for bad options, a `SerializationError` for a body that cannot be serialised, a `MessageError` when
 * the entry is over `maxBytes`.
 */
export function encodeJob(
  body: unknown,
  options: JobOptions | undefined,
  defaults: {
    to: string;
    from: string;
    attempts: number;
    backoff: [number, "f" | "e", number];
    /** The producer's queue was configured with its own attempts/backoff: always write them. */
    explicit: boolean;
  },
  maxBytes: number,
): EncodedJob {
  let attempts = defaults.attempts;
  let [b, bt, bm] = defaults.backoff;
  let delay = 0;
  let id: string | undefined;
  let priority: "0" | "1" = "0";
  let withMetaField = defaults.explicit;
  if (options !== undefined) {
    if (typeof options !== "object" || options === null) throw bad("job options must be an object");
    for (const k of Object.keys(options)) {
      if (!JOB_OPTION_KEYS.has(k)) throw bad(`unknown job option "${k}"`);
    }
    if (options.delay !== undefined) delay = checkMs(options.delay, "delay");
    if (options.attempts !== undefined) {
      attempts = checkAttempts(options.attempts);
      withMetaField = true;
    }
    if (options.backoff !== undefined) {
      [b, bt, bm] = resolveBackoff(options.backoff);
      withMetaField = true;
    }
    if (options.jobId !== undefined) {
      if (typeof options.jobId !== "string" || options.jobId.length === 0 || options.jobId.length > 256) {
        throw bad("jobId must be a non-empty string of at most 256 characters");
      }
      id = options.jobId;
      withMetaField = true;
    }
    if (options.priority !== undefined) {
      if (options.priority !== "high" && options.priority !== "normal") {
        throw bad('priority must be "high" or "normal"');
      }
      priority = options.priority === "high" ? "1" : "0";
    }
  }
  if (body === undefined) throw bad("a job body is required (use null for none)");
  const mid = id ?? randomUUID();
  // A job without its own attempts/backoff/id carries no `rmq`: it gets the consuming queue's
  // defaults (as a Hydra message does), and the entry stays small (acks send whole entries).
  let meta: EntryMeta | undefined;
  if (withMetaField) {
    meta = { a: attempts, n: 0, b, bt, bm };
    if (id !== undefined) meta.u = 1;
  }
  const entry = encodeJobEntry(defaults.to, defaults.from, mid, body, meta, maxBytes);
  return { id: mid, entry, delay, unique: id ?? "", priority };
}

function intIn(v: unknown, min: number, max: number): number | undefined {
  return typeof v === "number" && Number.isInteger(v) && v >= min && v <= max ? v : undefined;
}

/**
 * Parse an entry found in a list. Never throws: a malformed entry gives `{ ok: false, reason }`.
 * `__proto__` keys are never copied anywhere (the object is only read), so parsing is pollution-safe.
 */
export function parseEntry(raw: string, defaults: JobDefaults, maxBytes: number): ParseResult {
  const e = decodeJobEntry(raw, maxBytes);
  if (e instanceof MessageError) return { ok: false, reason: e.message };
  const { obj, id, body } = e;
  const r = e.rmq;
  const [db, dbt, dbm] = defaults.backoff;
  let meta: EntryMeta;
  if (r !== undefined) {
    meta = {
      a: intIn(r.a, 1, MAX_ATTEMPTS) ?? defaults.attempts,
      n: intIn(r.n, 0, 1_000_000) ?? 0,
      b: intIn(r.b, 0, MAX_DELAY_MS) ?? db,
      bt: r.bt === "f" || r.bt === "e" ? r.bt : dbt,
      bm: intIn(r.bm, 0, MAX_DELAY_MS) ?? dbm,
    };
    if (r.u === 1) meta.u = 1;
    if (typeof r.e === "string") meta.e = r.e;
    if (typeof r.ft === "number") meta.ft = r.ft;
    if (typeof r.raw === "string") meta.raw = r.raw;
  } else {
    meta = { a: defaults.attempts, n: 0, b: db, bt: dbt, bm: dbm };
  }
  return { ok: true, entry: { obj, id, body, meta } };
}

/** The delay before the next attempt after `attemptsMade` attempts. */
export function backoffDelay(meta: EntryMeta, attemptsMade: number): number {
  if (meta.bt === "f") return meta.b;
  return Math.min(meta.bm, meta.b * 2 ** Math.max(0, attemptsMade - 1));
}

/** Rewrite an entry with new bookkeeping (same id, same body). */
export function withMeta(p: ParsedEntry, meta: EntryMeta): string {
  return reencodeJobEntry({ obj: p.obj, id: p.id, body: p.body, rmq: undefined }, meta);
}

/** The dead letter stored for a malformed entry: a UMF shell that keeps the raw text. */
export function malformedDeadLetter(raw: string, reason: string, to: string, maxRawChars: number): string {
  const rmq: EntryMeta = {
    a: 1,
    n: 0,
    b: 0,
    bt: "f",
    bm: 0,
    e: `malformed entry: ${reason}`,
    ft: Date.now(),
    raw: raw.length > maxRawChars ? raw.slice(0, maxRawChars) : raw,
  };
  return encodeJobEntry(to, "", randomUUID(), null, rmq);
}
