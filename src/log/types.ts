/**
 * Log levels, the entry shape stored in a service's log stream, and its (de)serialisation.
 *
 * One stream entry is a flat list of field/value pairs, readable with `redis-cli XRANGE`:
 * `ts level service instance msg [fields] [cid] [trace]`. The stream ID is assigned by Redis (`*`),
 * so the IDs of every service's stream share one clock (the server's) and merge in time order.
 *
 * @module
 */

import { safeJsonParse } from "../json.js";

/** Log levels with pino's numeric values (so pino records map one to one). */
export const LogLevel = {
  trace: 10,
  debug: 20,
  info: 30,
  warn: 40,
  error: 50,
  fatal: 60,
} as const;
/** Union of level names. */
export type LogLevelName = keyof typeof LogLevel;

/** True when `v` is a level name. */
export function isLogLevel(v: unknown): v is LogLevelName {
  return typeof v === "string" && Object.hasOwn(LogLevel, v);
}

/** The level name for a pino level number (rounded down to the nearest known level). */
export function levelFromNumber(n: number): LogLevelName {
  if (n >= LogLevel.fatal) return "fatal";
  if (n >= LogLevel.error) return "error";
  if (n >= LogLevel.warn) return "warn";
  if (n >= LogLevel.info) return "info";
  if (n >= LogLevel.debug) return "debug";
  return "trace";
}

/** One log entry as read back from a stream. */
export interface LogEntry {
  /** Stream ID (`<ms>-<seq>`, Redis server clock): the merge and paging key. */
  id: string;
  /** Time the entry was written by the application (epoch ms with µs fractions, the writer's clock). */
  ts: number;
  level: LogLevelName;
  /** Service name. */
  service: string;
  /** Instance id of the writer (may be empty for writers outside a service). */
  instance: string;
  msg: string;
  /** Structured fields, when any were given. */
  fields?: Record<string, unknown>;
  /** Correlation id of the RPC call or job the entry was written in. */
  cid?: string;
  /** W3C trace id (from the `traceparent` of the work), when tracing is on. */
  trace?: string;
}

/** Longest message kept; longer ones are cut (with a marker) so one entry cannot flood the buffer. */
export const MAX_MSG_CHARS = 8192;
/** Longest serialised `fields` kept; larger ones are replaced by a note saying so. */
export const MAX_FIELDS_CHARS = 16_384;

/**
 * JSON for log fields that never throws: errors become `{name, message, code, stack}`, BigInt a
 * string, cycles `"[Circular]"`, functions and symbols are skipped (as JSON.stringify does).
 */
export function stringifyFields(fields: Record<string, unknown>): string {
  const seen = new WeakSet<object>();
  let out: string;
  try {
    out = JSON.stringify(fields, (_k, v: unknown) => {
      if (typeof v === "bigint") return v.toString();
      if (v instanceof Error) {
        const e: Record<string, unknown> = { name: v.name, message: v.message };
        const code = (v as { code?: unknown }).code;
        if (code !== undefined) e.code = code;
        if (v.stack) e.stack = v.stack;
        return e;
      }
      if (typeof v === "object" && v !== null) {
        if (seen.has(v)) return "[Circular]";
        seen.add(v);
      }
      return v;
    });
  } catch (err) {
    // A throwing toJSON() or getter: keep the entry, say why the fields are missing.
    out = JSON.stringify({ _unserializable: err instanceof Error ? err.message : String(err) });
  }
  if (out.length > MAX_FIELDS_CHARS) {
    out = JSON.stringify({ _truncated: `fields were ${out.length} characters (limit ${MAX_FIELDS_CHARS})` });
  }
  return out;
}

/** Cut a message to {@link MAX_MSG_CHARS}. */
export function clipMessage(msg: string): string {
  return msg.length > MAX_MSG_CHARS ? `${msg.slice(0, MAX_MSG_CHARS)}…[truncated]` : msg;
}

/**
 * Turn one raw stream entry (`[id, [field, value, …]]` or `[id, {field: value}]`) into a
 * {@link LogEntry}; `undefined` when it is not one (written by something else).
 */
export function parseStreamEntry(raw: unknown): LogEntry | undefined {
  if (!Array.isArray(raw) || raw.length < 2) return undefined;
  const id = raw[0];
  if (typeof id !== "string") return undefined;
  const f = toFieldMap(raw[1]);
  if (!f) return undefined;
  const level = f.level;
  if (!isLogLevel(level)) return undefined;
  const entry: LogEntry = {
    id,
    ts: Number(f.ts) || Number(id.split("-")[0]) || 0,
    level,
    service: f.service ?? "",
    instance: f.instance ?? "",
    msg: f.msg ?? "",
  };
  if (f.fields !== undefined) {
    try {
      const v = safeJsonParse(f.fields);
      if (typeof v === "object" && v !== null && !Array.isArray(v))
        entry.fields = v as Record<string, unknown>;
    } catch {
      entry.fields = { _raw: f.fields };
    }
  }
  if (f.cid !== undefined) entry.cid = f.cid;
  if (f.trace !== undefined) entry.trace = f.trace;
  return entry;
}

function toFieldMap(v: unknown): Record<string, string> | undefined {
  const out: Record<string, string> = Object.create(null);
  if (Array.isArray(v)) {
    for (let i = 0; i + 1 < v.length; i += 2) out[String(v[i])] = String(v[i + 1]);
    return out;
  }
  if (typeof v === "object" && v !== null) {
    for (const [k, x] of Object.entries(v)) out[k] = String(x);
    return out;
  }
  return undefined;
}

/** The millisecond part of a stream ID. */
export function idMs(id: string): number {
  const dash = id.indexOf("-");
  return Number(dash < 0 ? id : id.slice(0, dash));
}

/**
 * Merge order of entries from several streams: the server millisecond of the ID first (one clock for
 * every stream), then, within one millisecond, the writer's time, then the ID.
 */
export function compareEntries(a: LogEntry, b: LogEntry): number {
  return idMs(a.id) - idMs(b.id) || a.ts - b.ts || compareIds(a.id, b.id);
}

/** Compare two stream IDs (`ms-seq`) numerically. */
export function compareIds(a: string, b: string): number {
  const [am = "0", as = "0"] = a.split("-");
  const [bm = "0", bs = "0"] = b.split("-");
  if (am.length !== bm.length) return am.length - bm.length;
  if (am !== bm) return am < bm ? -1 : 1;
  if (as.length !== bs.length) return as.length - bs.length;
  return as === bs ? 0 : as < bs ? -1 : 1;
}
