/**
 * A pino destination that sends every record to a service's distributed log, so an application that
 * already logs with pino feeds the mesh without changing its log calls:
 *
 * ```ts
 * import pino from "pino";
 * import { pinoDestination } from "redmesh/log";
 * const logger = pino({ level: "debug" }, pinoDestination(svc.log));
 * logger.info({ sku: "A1" }, "reserved");   // → XADD to the service's log stream
 * ```
 *
 * pino serialises each record to one JSON line and calls `write(line)`; the destination parses it
 * back, maps pino's numeric level to a name, keeps `msg` and `time`, and puts every other property
 * (except pino's `pid` and `hostname`) in the entry's fields. Lines that are not JSON are logged as
 * the message of an `info` entry. Like the rest of the log, `write` never throws or blocks.
 *
 * @module
 */

import { safeJsonParse } from "../json.js";
import type { ServiceLog } from "./service-log.js";
import { isLogLevel, type LogLevelName, levelFromNumber } from "./types.js";

/** The writable shape pino accepts as a destination. */
export interface PinoDestination {
  /** Called by pino with one serialised record (a JSON line). */
  write(chunk: string): boolean;
}

/** pino's own bookkeeping properties: already in the entry (time, level, msg) or not useful (pid, hostname). */
const SKIP = new Set(["level", "time", "msg", "pid", "hostname", "v"]);

/** A pino destination writing to `log` (usually `svc.log`). */
export function pinoDestination(log: ServiceLog): PinoDestination {
  return {
    write(chunk: string): boolean {
      const text = typeof chunk === "string" ? chunk : String(chunk);
      for (const line of text.split("\n")) if (line.trim()) writeLine(log, line);
      return true;
    },
  };
}

function writeLine(log: ServiceLog, line: string): void {
  let rec: unknown;
  try {
    rec = safeJsonParse(line);
  } catch {
    log.write("info", line);
    return;
  }
  if (typeof rec !== "object" || rec === null || Array.isArray(rec)) {
    log.write("info", line);
    return;
  }
  const r = rec as Record<string, unknown>;
  let level: LogLevelName = "info";
  if (typeof r.level === "number") level = levelFromNumber(r.level);
  else if (isLogLevel(r.level)) level = r.level;
  const msg = typeof r.msg === "string" ? r.msg : r.msg === undefined ? "" : String(r.msg);
  const ts = typeof r.time === "number" ? r.time : typeof r.time === "string" ? Date.parse(r.time) : NaN;
  let fields: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(r)) {
    if (SKIP.has(k)) continue;
    fields ??= {};
    fields[k] = v;
  }
  log.write(level, msg, fields, Number.isFinite(ts) ? ts : undefined);
}
