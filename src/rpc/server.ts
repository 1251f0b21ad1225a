/**
 * The answering half of RPC (docs/rpc.md): handlers registered by method, requests run with their
 * deadline and the caller's cancel in `ctx.signal`, results and errors sent back in the RPC
 * envelopes of `envelope/rpc.ts`.
 *
 * A request is refused before its handler runs, with an error the caller's balancing loop knows
 * how to retry: `ERR_NO_INSTANCE` `{ reason: "draining" }` while the instance stops (tried elsewhere
 * at once), `ERR_BULKHEAD_FULL` when the handler's `maxInFlight` is reached (retried after a
 * backoff), `ERR_VALIDATION` when the params fail the schema (never retried). A request whose
 * deadline passed on arrival is not run and not answered.
 *
 * @module
 */

import { Bulkhead, type BulkheadRelease } from "../balancer/index.js";
import { runWithContext } from "../context.js";
import {
  encodeError,
  encodeReply,
  methodOf,
  RpcType,
  replyFraming,
  splitRoute,
  type UmfShort,
} from "../envelope/index.js";
import {
  AbortError,
  BulkheadFullError,
  ErrorCode,
  errorToWire,
  NoInstanceError,
  RedmeshError,
  TimeoutError,
  ValidationError,
  type WireError,
} from "../errors.js";
import { type Logger, silentLogger } from "../logger.js";
import type { MessagePort } from "../messaging/index.js";
import { METHOD_NAME } from "./client.js";
import type { Schema } from "./contract.js";
import { DeadlineTimer } from "./deadlines.js";
import { LiveSet } from "./pending.js";
import { runInSpan } from "./trace.js";

/** What a handler gets besides its params. */
export interface HandlerContext {
  /** Aborts when the deadline passes or the caller cancels. */
  readonly signal: AbortSignal;
  /** The caller's route (`<iid>@<svc>:/`). */
  readonly from: string;
  /** Method name. */
  readonly method: string;
  /** Absolute deadline (epoch ms), or +Infinity when the caller gave none. */
  readonly deadline: number;
  /** Correlation id flowing through the calls of one original request. */
  readonly correlationId: string;
  /** W3C traceparent of the handler's span, when tracing. */
  readonly traceparent: string | undefined;
  /** The request as received (short form). */
  readonly message: UmfShort;
}

/** An RPC handler. Throw to answer with an error (a `RedmeshError` keeps its code and data). */
export type Handler<P = unknown, R = unknown> = (params: P, ctx: HandlerContext) => R | Promise<R>;

/** Options of `handle()`. */
export interface HandleOptions<P = unknown, R = unknown> {
  /** Validates params before the handler runs (`ValidationError` to the caller otherwise). */
  params?: Schema<P>;
  /** Validates the result before it is sent. */
  result?: Schema<R>;
  /** Max executions in flight on this instance; more are rejected with `BulkheadFullError`. 0: no limit. @default 0 */
  maxInFlight?: number;
}

/** What the answering half counts (part of `RpcStats`). */
export interface RpcServerStats {
  /** Requests received. */
  requests: number;
  /** Requests whose deadline had passed on arrival: not run. */
  expiredRequests: number;
  handlerErrors: number;
  bulkheadRejected: number;
  validationRejected: number;
  /** Cancel messages that reached a running handler. */
  cancelled: number;
  /** Requests that could not be answered (no instance id in `frm`). */
  unroutable: number;
}

interface HandlerEntry {
  fn: Handler;
  params: Schema | undefined;
  result: Schema | undefined;
  /** The handler's `maxInFlight`, when it has one. */
  bulkhead: Bulkhead | undefined;
}

/** The context of one running handler; the AbortController is created only if `signal` is read. */
class Running implements HandlerContext {
  #ac: AbortController | undefined;
  /** @internal Position in the instance's set of running handlers (-1: not tracked). */
  slot = -1;
  reason: RedmeshError | undefined;
  constructor(
    readonly server: RpcServer,
    readonly message: UmfShort,
    readonly method: string,
    readonly from: string,
    readonly deadline: number,
    readonly correlationId: string,
    public traceparent: string | undefined,
  ) {}
  get signal(): AbortSignal {
    if (!this.#ac) {
      this.#ac = new AbortController();
      if (this.reason) this.#ac.abort(this.reason);
      else if (this.deadline !== Number.POSITIVE_INFINITY) this.server._watch(this.deadline);
    }
    return this.#ac.signal;
  }
  /** False once the caller cancelled or the deadline passed: a reply then would only be stray. */
  get answerable(): boolean {
    return (
      this.reason === undefined && (this.deadline === Number.POSITIVE_INFINITY || Date.now() < this.deadline)
    );
  }
  get watched(): boolean {
    return this.#ac !== undefined && !this.#ac.signal.aborted;
  }
  abort(reason: RedmeshError): void {
    if (this.reason) return;
    this.reason = reason;
    this.#ac?.abort(reason);
  }
}

/** The caller of a request: where its reply goes. */
interface Caller {
  iid: string;
  service: string;
}

/** Options of {@link RpcServer}. */
export interface RpcServerOptions {
  /** What RPC uses of messaging. */
  port: MessagePort;
  /** This service's name. */
  service: string;
  /** Count a running handler as in-flight work (for draining). */
  beginWork: () => () => void;
  /** True when the instance takes no new work. */
  draining: () => boolean;
  /** pino-compatible logger. @default silent */
  logger?: Logger;
}

/** The handlers of one instance. */
export class RpcServer {
  readonly #port: MessagePort;
  readonly #service: string;
  readonly #beginWork: () => () => void;
  readonly #draining: () => boolean;
  readonly #logger: Logger;
  readonly #handlers = new Map<string, HandlerEntry>();
  readonly #running = new LiveSet<Running>();
  readonly #callers = new Map<string, Caller>();
  readonly #timer: DeadlineTimer;
  /** @internal Counters. */
  readonly counters: RpcServerStats = {
    requests: 0,
    expiredRequests: 0,
    handlerErrors: 0,
    bulkheadRejected: 0,
    validationRejected: 0,
    cancelled: 0,
    unroutable: 0,
  };

  constructor(o: RpcServerOptions) {
    this.#port = o.port;
    this.#service = o.service;
    this.#beginWork = o.beginWork;
    this.#draining = o.draining;
    this.#logger = o.logger ?? silentLogger;
    this.#timer = new DeadlineTimer((now) => this.#sweep(now));
  }

  /** Handlers running now. */
  get running(): number {
    return this.#running.size;
  }

  /** Registered method names. */
  get methods(): string[] {
    return [...this.#handlers.keys()];
  }

  /** Register the handler of `method` (replaces an earlier one). */
  handle<P, R>(method: string, fn: Handler<P, R>, options: HandleOptions<P, R> = {}): void {
    if (typeof method !== "string" || !METHOD_NAME.test(method)) {
      throw new ValidationError(
        `invalid method name ${JSON.stringify(method)}: use 1-128 of A-Z a-z 0-9 _ . - /`,
        { code: ErrorCode.INVALID_OPTIONS },
      );
    }
    if (typeof fn !== "function") {
      throw new ValidationError(`the handler of "${method}" must be a function`, {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    const max = options.maxInFlight ?? 0;
    if (!Number.isInteger(max) || max < 0) {
      throw new ValidationError(`maxInFlight of "${method}" must be a non-negative integer (0 = unlimited)`, {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    this.#handlers.set(method, {
      fn: fn as Handler,
      params: options.params as Schema | undefined,
      result: options.result as Schema | undefined,
      bulkhead: max > 0 ? new Bulkhead({ maxConcurrent: max, name: method }) : undefined,
    });
  }

  /** A cancel from the caller that made the request (only that caller may cancel it). */
  takeCancel(m: UmfShort): void {
    if (m.rmid === undefined) return;
    const { rmid, frm } = m;
    const r = this.#running.find((x) => x.message.mid === rmid && x.from === frm);
    if (!r) return;
    this.counters.cancelled++;
    r.abort(new AbortError("the caller cancelled the call"));
  }

  /** A request: run its handler and answer, or refuse it before it runs. */
  takeRequest(m: UmfShort): void {
    this.counters.requests++;
    const caller = this.#callerOf(m.frm);
    if (!caller || caller.iid.length === 0) {
      this.counters.unroutable++;
      return;
    }
    const method = methodOf(m.to);
    const h = this.#handlers.get(method);
    if (!h) {
      this.#reply(m, caller, RpcType.ERROR, {
        code: ErrorCode.NO_HANDLER,
        message: `service "${this.#service}" has no handler for "${method}"`,
        retryable: false,
        data: { service: this.#service, method },
      });
      return;
    }
    if (this.#draining()) {
      const e = new NoInstanceError(this.#service, { data: { reason: "draining" } });
      this.#reply(m, caller, RpcType.ERROR, e.toJSON());
      return;
    }
    const deadline = m.dl ?? Number.POSITIVE_INFINITY;
    if (deadline <= Date.now()) {
      // The caller has given up already: running it would be wasted work.
      this.counters.expiredRequests++;
      return;
    }
    let release: BulkheadRelease | undefined;
    if (h.bulkhead) {
      release = h.bulkhead.tryAcquire();
      if (!release) {
        this.counters.bulkheadRejected++;
        const max = h.bulkhead.stats().maxConcurrent;
        const e = new BulkheadFullError(`"${method}" already runs ${max} calls on this instance`, {
          data: { method, maxInFlight: max },
        });
        this.#reply(m, caller, RpcType.ERROR, e.toJSON());
        return;
      }
    }
    let params: unknown = m.bdy;
    if (h.params) {
      const res = h.params.safeParse(params);
      if (!res.success) {
        release?.();
        this.counters.validationRejected++;
        this.#reply(m, caller, RpcType.ERROR, validationWire(method, "params", res.error));
        return;
      }
      params = res.data;
    }
    const ctx = new Running(this, m, method, m.frm, deadline, m.cid ?? m.mid, m.tp);
    this.#run(h, ctx, params, caller, release);
  }

  #run(h: HandlerEntry, ctx: Running, params: unknown, caller: Caller, release: BulkheadRelease | undefined) {
    const end = this.#beginWork();
    let out: unknown;
    try {
      if (ctx.traceparent === undefined) {
        // No trace to continue: no span, and no closures on the hot path.
        out = runWithContext({ correlationId: ctx.correlationId }, h.fn, params, ctx);
      } else {
        out = runInSpan(this.#service, ctx.method, ctx.traceparent, (tp) => {
          ctx.traceparent = tp;
          const wc =
            tp === undefined
              ? { correlationId: ctx.correlationId }
              : { correlationId: ctx.correlationId, traceparent: tp };
          return runWithContext(wc, h.fn, params, ctx);
        });
      }
    } catch (err) {
      this.#finish(h, ctx, caller, end, release, false, err);
      return;
    }
    if (typeof (out as PromiseLike<unknown> | undefined)?.then === "function") {
      // Only a handler still running can be cancelled, stopped or past its deadline: one that
      // answered synchronously is never tracked.
      this.#running.add(ctx);
      (out as PromiseLike<unknown>).then(
        (v) => this.#finish(h, ctx, caller, end, release, true, v),
        (e: unknown) => this.#finish(h, ctx, caller, end, release, false, e),
      );
    } else {
      this.#finish(h, ctx, caller, end, release, true, out);
    }
  }

  #finish(
    h: HandlerEntry,
    ctx: Running,
    caller: Caller,
    end: () => void,
    release: BulkheadRelease | undefined,
    ok: boolean,
    value: unknown,
  ): void {
    const m = ctx.message;
    release?.();
    this.#running.delete(ctx);
    try {
      if (!ok) {
        this.counters.handlerErrors++;
        if (ctx.answerable) this.#reply(m, caller, RpcType.ERROR, errorToWire(value));
        return;
      }
      let result = value;
      if (h.result) {
        const res = h.result.safeParse(result);
        if (!res.success) {
          this.counters.validationRejected++;
          if (ctx.answerable)
            this.#reply(m, caller, RpcType.ERROR, validationWire(ctx.method, "result", res.error));
          return;
        }
        result = res.data;
      }
      if (ctx.answerable) this.#reply(m, caller, RpcType.RESULT, result);
    } catch (err) {
      this.#logger.warn({ err }, "could not answer an RPC request");
    } finally {
      end();
    }
  }

  #reply(
    m: UmfShort,
    caller: Caller,
    typ: typeof RpcType.RESULT | typeof RpcType.ERROR,
    body: unknown,
  ): void {
    const port = this.#port;
    const framing = replyFraming(m, port.readsCompact(m.frm));
    try {
      const text =
        typ === RpcType.ERROR
          ? encodeError(m, port.nextMid(), body as WireError, framing, port.codec)
          : encodeReply(m, port.nextMid(), typ, body, framing, port.codec);
      port.post(caller.service, caller.iid, text, framing);
    } catch (err) {
      // The result could not be serialised or is too large: tell the caller instead.
      if (typ === RpcType.ERROR) {
        this.#logger.warn({ err }, "could not send an RPC error reply");
        return;
      }
      const e = err instanceof RedmeshError ? err.toJSON() : errorToWire(err);
      const code =
        e.code === ErrorCode.INVALID_MESSAGE || e.code === ErrorCode.REMOTE
          ? ErrorCode.SERIALIZATION
          : e.code;
      this.#reply(m, caller, RpcType.ERROR, { ...e, code });
    }
  }

  /** Parse (and cache) a caller route: callers are few, requests many. */
  #callerOf(frm: string): Caller | undefined {
    let c = this.#callers.get(frm);
    if (c === undefined) {
      const r = splitRoute(frm);
      if (!r) return undefined;
      if (this.#callers.size > 10_000) this.#callers.clear();
      c = { iid: r.iid, service: r.service };
      this.#callers.set(frm, c);
    }
    return c;
  }

  /** @internal A handler read `ctx.signal`: make sure its deadline aborts it. */
  _watch(deadline: number): void {
    this.#timer.arm(deadline);
  }

  #sweep(now: number): number {
    let next = Number.POSITIVE_INFINITY;
    for (const r of this.#running.values()) {
      if (!r.watched) continue;
      if (r.deadline <= now) r.abort(new TimeoutError(`the deadline of "${r.method}" passed`));
      else if (r.deadline < next) next = r.deadline;
    }
    return next;
  }

  /** Abort the signals of handlers still running (the stop grace period ended, or the service stops). */
  abortRunning(reason: RedmeshError): void {
    for (const r of this.#running.values()) r.abort(reason);
  }

  /** Stop: running handlers are aborted and the deadline timer cleared. */
  close(): void {
    this.abortRunning(new AbortError("the service is stopping"));
    this.#timer.clear();
  }
}

function validationWire(method: string, what: "params" | "result", error: unknown): WireError {
  const issues = (error as { issues?: unknown })?.issues;
  const data: Record<string, unknown> = { method, what };
  if (Array.isArray(issues)) {
    data.issues = issues.map((i: { path?: unknown; message?: unknown }) => ({
      path: Array.isArray(i?.path) ? i.path.map(String).join(".") : "",
      message: String(i?.message ?? "invalid"),
    }));
  }
  const first = Array.isArray(data.issues)
    ? (data.issues[0] as { path: string; message: string })
    : undefined;
  return {
    code: ErrorCode.VALIDATION,
    message: `invalid ${what} for "${method}"${first ? `: ${first.path ? `${first.path}: ` : ""}${first.message}` : ""}`,
    retryable: false,
    data,
  };
}
