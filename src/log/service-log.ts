/**
 * The distributed log writer of one service instance (`svc.log`).
 *
 * A log call never waits for Redis and never throws: it formats the entry, optionally echoes it to
 * stdout, and appends it to an in-memory buffer. Once per event-loop turn the buffer is written in one
 * pipeline (`XADD <stream> MAXLEN ~ N * …` per entry; warnings and errors also go to the instance's
 * Hydra health log through {@link appendHealthLog}). While Redis is down or slow the buffer fills up
 * to `bufferLimit`; past it the OLDEST entries are dropped and counted (the count is in `stats` and in
 * the service's health snapshot), so memory stays bounded. Entries that were in flight when a
 * connection failed are counted as dropped too (logs are at-most-once).
 *
 * @module
 */

import { settleWithin } from "../async.js";
import { currentContext } from "../context.js";
import { ConnectionError, ErrorCode, ValidationError } from "../errors.js";
import { appendHealthLog } from "../health/index.js";
import type { Keys } from "../keys.js";
import { type Logger, silentLogger } from "../logger.js";
import type { RedisArg, RedisLike } from "../redis/index.js";
import { type DuplicableRedis, type QueryOptions, queryLogs, type TailOptions, tailLogs } from "./reader.js";
import {
  clipMessage,
  isLogLevel,
  type LogEntry,
  LogLevel,
  type LogLevelName,
  stringifyFields,
} from "./types.js";

/** Settings of a service's log (the `log` option of `createService`). */
export interface LogOptions {
  /**
   * Entries below this level are not written (nor echoed).
   * @default "info"
   */
  level?: LogLevelName;
  /**
   * Approximate cap of the service's stream (`XADD … MAXLEN ~ maxLen`). Shared by every instance.
   * @default 10000
   */
  maxLen?: number;
  /**
   * Also write each entry as one JSON line locally: `true` for stdout, or a function that gets the line.
   * @default false
   */
  echo?: boolean | ((line: string) => void);
  /**
   * Most entries held in memory while Redis is slow or down; past it the oldest are dropped and counted.
   * @default 10000
   */
  bufferLimit?: number;
  /**
   * Most entries sent in one pipeline.
   * @default 512
   */
  batchSize?: number;
  /**
   * How often a writer whose connection is not ready checks again, in ms.
   * @default 250
   */
  retryMs?: number;
}

/** Defaults of {@link LogOptions}. */
export const DEFAULT_LOG_OPTIONS = Object.freeze({
  level: "info" as LogLevelName,
  // 10k entries of ~200 bytes ≈ 2 MB per service in Redis: enough for "what just happened", small enough
  // to keep many services on one Redis.
  maxLen: 10_000,
  echo: false,
  // Same order as maxLen: a Redis outage of a few seconds at a few thousand entries/s loses nothing.
  bufferLimit: 10_000,
  // Keeps one pipeline well under a millisecond of Redis time.
  batchSize: 512,
  retryMs: 250,
});

/** Options of {@link createServiceLog}. */
export interface ServiceLogOptions extends LogOptions {
  /** Connection to write with (the service's). Tail and query need one with `duplicate()`. */
  redis: RedisLike | DuplicableRedis;
  keys: Keys;
  /** Service whose stream is written. */
  service: string;
  /** Instance id of the writer; warnings and errors go to its health log. Empty: no health log. */
  instanceId?: string;
  /** pino-compatible logger for diagnostics about the log itself. @default silent */
  logger?: Logger;
}

/** Counters of a {@link ServiceLog}. */
export interface LogStats {
  /** Entries Redis accepted. */
  written: number;
  /** Entries lost: buffer overflow, a failed write, or written after close. */
  dropped: number;
  /** Entries waiting in memory now. */
  buffered: number;
  /** Pipelines sent. */
  flushes: number;
  /** Health-log appends that failed (the stream entry may still have been written). */
  healthLogErrors: number;
}

/** One log method: `(msg, fields?)`. */
export type LogMethod = (msg: string, fields?: Record<string, unknown>) => void;

/** The writing surface shared by a {@link ServiceLog} and its children. */
export interface LogWriter {
  debug: LogMethod;
  info: LogMethod;
  warn: LogMethod;
  error: LogMethod;
  /** A writer that adds `bindings` to the fields of every entry. */
  child(bindings: Record<string, unknown>): LogWriter;
}

interface Pending {
  args: RedisArg[];
  level: LogLevelName;
  msg: string;
}

/** The distributed log of one service instance. Create with {@link createServiceLog}. */
export class ServiceLog implements LogWriter {
  readonly #redis: RedisLike;
  readonly #keys: Keys;
  readonly #service: string;
  readonly #instanceId: string;
  readonly #stream: string;
  readonly #logger: Logger;
  readonly #o: Required<Omit<LogOptions, "echo" | "level">>;
  readonly #echo: ((line: string) => void) | undefined;
  #threshold: number;
  #levelName: LogLevelName;
  #buf: Pending[] = [];
  #scheduled = false;
  #flushing: Promise<void> | undefined;
  #retry: NodeJS.Timeout | undefined;
  #closed = false;
  /** After a connection failure, no batch is sent before this time (no drop storm while the status catches up). */
  #holdUntil = 0;
  #closing: Promise<void> | undefined;
  readonly #stats = { written: 0, dropped: 0, flushes: 0, healthLogErrors: 0 };

  constructor(options: ServiceLogOptions) {
    const d = DEFAULT_LOG_OPTIONS;
    const level = options.level ?? d.level;
    if (!isLogLevel(level)) {
      throw new ValidationError(
        `invalid log level ${JSON.stringify(level)}: use one of ${Object.keys(LogLevel).join(", ")}`,
        { code: ErrorCode.INVALID_OPTIONS },
      );
    }
    const int = (name: string, v: number | undefined, def: number, min: number) => {
      const x = v ?? def;
      if (!Number.isInteger(x) || x < min) {
        throw new ValidationError(`invalid log option ${name}: ${String(v)} (an integer >= ${min})`, {
          code: ErrorCode.INVALID_OPTIONS,
        });
      }
      return x;
    };
    this.#o = {
      maxLen: int("maxLen", options.maxLen, d.maxLen, 1),
      bufferLimit: int("bufferLimit", options.bufferLimit, d.bufferLimit, 1),
      batchSize: int("batchSize", options.batchSize, d.batchSize, 1),
      retryMs: int("retryMs", options.retryMs, d.retryMs, 1),
    };
    this.#redis = options.redis;
    this.#keys = options.keys;
    this.#service = options.service;
    this.#instanceId = options.instanceId ?? "";
    this.#stream = options.keys.log(options.service);
    this.#logger = options.logger ?? silentLogger;
    this.#threshold = LogLevel[level];
    this.#levelName = level;
    const echo = options.echo ?? d.echo;
    this.#echo =
      typeof echo === "function"
        ? echo
        : echo
          ? (line: string) => {
              process.stdout.write(`${line}\n`);
            }
          : undefined;
  }

  /** The level threshold in force. Settable at run time. */
  get level(): LogLevelName {
    return this.#levelName;
  }
  set level(level: LogLevelName) {
    if (!isLogLevel(level)) {
      throw new ValidationError(`invalid log level ${JSON.stringify(level)}`, {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    this.#threshold = LogLevel[level];
    this.#levelName = level;
  }

  /** True when an entry of `level` would be written. */
  isLevelEnabled(level: LogLevelName): boolean {
    return LogLevel[level] >= this.#threshold;
  }

  /** Counters: written, dropped, buffered… */
  get stats(): LogStats {
    return { ...this.#stats, buffered: this.#buf.length };
  }

  /** Write a debug entry. */
  debug(msg: string, fields?: Record<string, unknown>): void {
    this.write("debug", msg, fields);
  }
  /** Write an info entry. */
  info(msg: string, fields?: Record<string, unknown>): void {
    this.write("info", msg, fields);
  }
  /** Write a warning (also appended to the instance's health log). */
  warn(msg: string, fields?: Record<string, unknown>): void {
    this.write("warn", msg, fields);
  }
  /** Write an error (also appended to the instance's health log). */
  error(msg: string, fields?: Record<string, unknown>): void {
    this.write("error", msg, fields);
  }

  /** A writer that adds `bindings` to every entry's fields (entry fields win on a clash). */
  child(bindings: Record<string, unknown>): LogWriter {
    const make = (level: LogLevelName): LogMethod => {
      return (msg, fields) => this.write(level, msg, fields ? { ...bindings, ...fields } : bindings);
    };
    return {
      debug: make("debug"),
      info: make("info"),
      warn: make("warn"),
      error: make("error"),
      child: (more) => this.child({ ...bindings, ...more }),
    };
  }

  /**
   * Write an entry at any level (what the pino destination uses). Never throws and never waits.
   * `ts` overrides the entry time (epoch ms).
   */
  write(level: LogLevelName, msg: string, fields?: Record<string, unknown>, ts?: number): void {
    const lv = LogLevel[level];
    if (lv === undefined || lv < this.#threshold) return;
    // Sub-millisecond precision: entries of several instances that land in the same server
    // millisecond are ordered by it when streams are merged.
    const time = ts ?? Math.round((performance.timeOrigin + performance.now()) * 1000) / 1000;
    const text = clipMessage(typeof msg === "string" ? msg : String(msg));
    const args: RedisArg[] = [
      "XADD",
      this.#stream,
      "MAXLEN",
      "~",
      this.#o.maxLen,
      "*",
      "ts",
      time,
      "level",
      level,
      "service",
      this.#service,
      "instance",
      this.#instanceId,
      "msg",
      text,
    ];
    let json: string | undefined;
    if (fields !== undefined && fields !== null && Object.keys(fields).length > 0) {
      json = stringifyFields(fields);
      args.push("fields", json);
    }
    const ctx = currentContext();
    let trace: string | undefined;
    if (ctx) {
      args.push("cid", ctx.correlationId);
      // traceparent = version-traceid-spanid-flags
      trace = ctx.traceparent?.split("-")[1];
      if (trace) args.push("trace", trace);
    }
    if (this.#echo) this.#doEcho(time, level, text, json, ctx?.correlationId, trace);
    if (this.#closed) {
      this.#stats.dropped++;
      return;
    }
    this.#buf.push({ args, level, msg: text });
    if (this.#buf.length > this.#o.bufferLimit) {
      // Drop the oldest: during an outage the latest entries say most about the present.
      this.#buf.shift();
      this.#stats.dropped++;
    }
    this.#schedule();
  }

  #doEcho(ts: number, level: string, msg: string, fields?: string, cid?: string, trace?: string): void {
    const line =
      `{"time":${JSON.stringify(new Date(ts).toISOString())},"level":"${level}",` +
      `"service":${JSON.stringify(this.#service)},"instance":"${this.#instanceId}",` +
      `"msg":${JSON.stringify(msg)}${fields ? `,"fields":${fields}` : ""}` +
      `${cid ? `,"cid":${JSON.stringify(cid)}` : ""}${trace ? `,"trace":"${trace}"` : ""}}`;
    try {
      this.#echo?.(line);
    } catch {
      /* an echo sink that throws must not break logging */
    }
  }

  #schedule(): void {
    if (this.#scheduled || this.#flushing) return;
    this.#scheduled = true;
    // One pipeline per event-loop turn: everything logged in this turn travels together.
    setImmediate(() => {
      this.#scheduled = false;
      void this.#flush();
    });
  }

  #flush(): Promise<void> {
    if (this.#flushing) return this.#flushing;
    if (this.#buf.length === 0) return Promise.resolve();
    if (!this.#canSend()) {
      this.#armRetry();
      return Promise.resolve();
    }
    this.#flushing = this.#drain().finally(() => {
      this.#flushing = undefined;
      if (this.#buf.length > 0) {
        if (this.#canSend()) this.#schedule();
        else this.#armRetry();
      }
    });
    return this.#flushing;
  }

  #canSend(): boolean {
    return this.#redis.status === "ready" && Date.now() >= this.#holdUntil;
  }

  #armRetry(): void {
    if (this.#retry || this.#closed) return;
    this.#retry = setTimeout(() => {
      this.#retry = undefined;
      void this.#flush();
    }, this.#o.retryMs);
    // Waiting for Redis must not keep the process alive.
    this.#retry.unref();
  }

  async #drain(): Promise<void> {
    while (this.#buf.length > 0 && this.#canSend()) {
      const batch = this.#buf.splice(0, this.#o.batchSize);
      this.#stats.flushes++;
      const health: Array<Promise<void>> = [];
      if (this.#instanceId) {
        for (const p of batch) {
          if (LogLevel[p.level] >= LogLevel.warn) {
            health.push(
              appendHealthLog(this.#redis, this.#keys, this.#service, this.#instanceId, p.level, p.msg).catch(
                () => {
                  this.#stats.healthLogErrors++;
                },
              ),
            );
          }
        }
      }
      try {
        // No per-command deadline: a slow Redis delays this batch while new entries buffer (bounded).
        const results = await this.#redis.pipeline(
          batch.map((p) => p.args),
          { timeoutMs: 0 },
        );
        let lost = false;
        for (const r of results) {
          if (r instanceof Error) {
            this.#stats.dropped++;
            if (r instanceof ConnectionError) lost = true;
          } else this.#stats.written++;
        }
        if (lost) this.#holdUntil = Date.now() + this.#o.retryMs;
      } catch (err) {
        this.#stats.dropped += batch.length;
        this.#holdUntil = Date.now() + this.#o.retryMs;
        this.#logger.debug({ err, entries: batch.length }, "log write failed");
      }
      await Promise.all(health);
    }
  }

  /** Write what is buffered now; resolves when done (or when Redis is not ready). Never rejects. */
  async flush(): Promise<void> {
    while (this.#buf.length > 0 || this.#flushing) {
      if (!this.#flushing && !this.#canSend()) return;
      await this.#flush();
    }
  }

  /**
   * Flush what is buffered (waiting at most `timeoutMs`), then stop: later entries are only echoed
   * and counted as dropped; what could not be written in time is counted as dropped. Idempotent.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= this.#doClose(options.timeoutMs ?? 1000);
    return this.#closing;
  }

  async #doClose(timeoutMs: number): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#retry);
    this.#retry = undefined;
    await settleWithin(this.flush(), timeoutMs);
    this.#stats.dropped += this.#buf.length;
    this.#buf = [];
  }

  /**
   * Follow (or read back) the logs of several services, merged in time order. See {@link tailLogs}.
   * Needs a connection with `duplicate()` (a service's connection has one).
   */
  tail(options: TailOptions = {}): AsyncGenerator<LogEntry, void, undefined> {
    return tailLogs(this.#duplicable(), this.#keys, options);
  }

  /** Search one service's log (this service by default). See {@link queryLogs}. */
  query(options: Partial<QueryOptions> = {}): Promise<LogEntry[]> {
    return queryLogs(this.#redis, this.#keys, { ...options, service: options.service ?? this.#service });
  }

  #duplicable(): DuplicableRedis {
    const r = this.#redis as Partial<DuplicableRedis>;
    if (typeof r.duplicate !== "function") {
      throw new ValidationError("tail() needs a Redis connection with duplicate() (e.g. a RedisConnection)", {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    return this.#redis as DuplicableRedis;
  }
}

/** Create the log writer of a service (or of any process that wants to write to a service's stream). */
export function createServiceLog(options: ServiceLogOptions): ServiceLog {
  return new ServiceLog(options);
}
