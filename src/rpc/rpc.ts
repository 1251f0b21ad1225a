/**
 * Request/reply RPC over messaging (DESIGN.md §4 "RPC").
 *
 * Wire: a request is a UMF message of type `rpc` sent to `<iid>@<svc>:/<method>` on the target's
 * direct channel, carrying the absolute deadline (`dl`), the timeout (`tmo`), the correlation id
 * (`cid`) and the W3C traceparent (`tp`). The reply goes to the caller's direct channel with
 * `rmid` = the request's `mid` and type `rpc.r` (result in `bdy`) or `rpc.e` (`bdy` = `{ code,
 * message, data, retryable }`). Any other message whose `rmid` matches a pending call is a reply
 * too, its `bdy` the result: that is how a Hydra service answering with `sendReplyMessage` works.
 * A caller that gives up (deadline, abort) sends `rpc.c` with `rmid` = the request's `mid`, which
 * aborts the handler's `ctx.signal`.
 *
 * Every call ends in a result or a typed error: reply, timeout (one shared deadline timer), abort,
 * no instance, instance lost, Redis down, or stop. Pending entries are removed when a call settles;
 * stray, duplicate and late replies are counted and ignored.
 *
 * @module
 */

import { currentCorrelationId, runWithContext } from "../context.js";
import type { UmfShort } from "../envelope/index.js";
import {
  AbortError,
  BulkheadFullError,
  ErrorCode,
  errorFromWire,
  errorToWire,
  MessageError,
  NoInstanceError,
  RedmeshError,
  type RedmeshErrorOptions,
  RemoteError,
  StateError,
  TimeoutError,
  ValidationError,
  type WireError,
} from "../errors.js";
import { assertServiceName, type Keys } from "../keys.js";
import { type Logger, silentLogger } from "../logger.js";
import {
  Framing,
  type FramingValue,
  Messenger,
  overLimit,
  type PickContext,
  type PublishListener,
  splitRoute,
} from "../messaging/index.js";
import type { Discovery, Instance } from "../registry/index.js";
import type { Schema } from "./contract.js";
import { DeadlineTimer } from "./deadlines.js";
import { LiveSet, PendingIndex } from "./pending.js";
import { outgoingTraceparent, runInSpan } from "./trace.js";

/** UMF `typ` values used by RPC. */
export const RpcType = {
  REQUEST: "rpc",
  RESULT: "rpc.r",
  ERROR: "rpc.e",
  CANCEL: "rpc.c",
} as const;

/** Default call timeout: 10 s. */
export const DEFAULT_RPC_TIMEOUT_MS = 10_000;

/** The instance handling a call went away (presence lost) before it answered. */
export class InstanceLostError extends RedmeshError {
  override name = "InstanceLostError";
  constructor(message: string, options: RedmeshErrorOptions = {}) {
    super(ErrorCode.INSTANCE_LOST, message, { retryable: true, ...options });
  }
}

/** Options of one call. */
export interface CallOptions {
  /** Deadline from now, in ms (it travels with the request). @default the service's `rpcTimeoutMs` */
  timeout?: number;
  /** Cancels the call; the handler's `ctx.signal` aborts too. */
  signal?: AbortSignal;
  /**
   * Retries after a retryable failure (instance lost, bulkhead full, retryable remote error), with
   * backoff, for `idempotent` calls only. Sends that reach no receiver are always retried on
   * another instance, up to 3 times. @default 2 when idempotent, else 0
   */
  retries?: number;
  /** The method may safely run more than once. @default false */
  idempotent?: boolean;
  /** Affinity key passed to the instance picker. */
  key?: string;
}

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
  /** Max executions in flight on this instance; more are rejected with `BulkheadFullError`. */
  maxInFlight?: number;
}

/** RPC counters. */
export interface RpcStats {
  calls: number;
  succeeded: number;
  failed: number;
  timeouts: number;
  retries: number;
  /** Replies that matched no pending call (stray, duplicate or late): ignored. */
  strayReplies: number;
  /** Requests received. */
  requests: number;
  /** Requests whose deadline had passed on arrival: not run. */
  expiredRequests: number;
  handlerErrors: number;
  bulkheadRejected: number;
  validationRejected: number;
  /** Cancel messages that reached a running handler. */
  cancelled: number;
  /** Replies that could not be addressed (no instance id in `frm`). */
  unroutable: number;
  /** Calls waiting for a reply now. */
  pending: number;
  /** Handlers running now. */
  running: number;
}

interface HandlerEntry {
  fn: Handler;
  params: Schema | undefined;
  result: Schema | undefined;
  max: number;
  inFlight: number;
}

const METHOD_NAME = /^[A-Za-z0-9_.\-/]{1,128}$/;

/** One call waiting for its reply. */
class PendingCall implements PublishListener {
  iid = "";
  sent = false;
  framing: FramingValue = Framing.PLAIN;
  redmeshTarget = false;
  attempts = 0;
  noReceiver = 0;
  settled = false;
  sentAt = 0;
  exclude: Set<string> | undefined;
  retryTimer: NodeJS.Timeout | undefined;
  resolve!: (v: unknown) => void;
  reject!: (e: unknown) => void;
  onAbort: (() => void) | undefined;
  cid: string | undefined;
  tp: string | undefined;
  constructor(
    readonly rpc: Rpc,
    readonly mid: string,
    readonly service: string,
    readonly direct: boolean,
    readonly method: string,
    readonly params: unknown,
    readonly timeoutMs: number,
    readonly deadline: number,
    readonly retries: number,
    readonly idempotent: boolean,
    readonly key: string | undefined,
    readonly signal: AbortSignal | undefined,
  ) {}
  onPublished(receivers: number, error: RedmeshError | undefined): void {
    this.rpc._published(this, receivers, error);
  }
}

/** The context of one running handler; the AbortController is created only if `signal` is read. */
class Running implements HandlerContext {
  #ac: AbortController | undefined;
  /** @internal Position in the instance's set of running handlers (-1: not tracked). */
  slot = -1;
  cancelled = false;
  reason: RedmeshError | undefined;
  constructor(
    readonly server: Rpc,
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

/** Options of {@link Rpc}. */
export interface RpcOptions {
  messenger: Messenger;
  discovery: Discovery;
  keys: Keys;
  service: string;
  instanceId: string;
  logger?: Logger;
  /** Default call timeout. @default 10000 */
  timeoutMs?: number;
  /** Count a running handler as in-flight work (for draining). */
  beginWork: () => () => void;
  /** True when the instance takes no new work. */
  draining: () => boolean;
}

/** Callers and handlers of one instance. Created and wired by `createService`. */
export class Rpc {
  readonly #m: Messenger;
  readonly #discovery: Discovery;
  readonly #keys: Keys;
  readonly #service: string;
  readonly #logger: Logger;
  readonly #timeoutMs: number;
  readonly #beginWork: () => () => void;
  readonly #draining: () => boolean;
  readonly #pending: PendingIndex<PendingCall>;
  readonly #handlers = new Map<string, HandlerEntry>();
  readonly #running = new LiveSet<Running>();
  readonly #validNames = new Set<string>();
  readonly #validMethods = new Set<string>();
  readonly #channels = new Map<string, string>();
  readonly #callers = new Map<string, { iid: string; service: string }>();
  /** Reused for every pick (pickers are synchronous). */
  readonly #pickCtx: { service: string; exclude: ReadonlySet<string> | undefined; key: string | undefined } =
    {
      service: "",
      exclude: undefined,
      key: undefined,
    };
  readonly #callTimer: DeadlineTimer;
  readonly #handlerTimer: DeadlineTimer;
  #open = true;
  readonly #stats = {
    calls: 0,
    succeeded: 0,
    failed: 0,
    timeouts: 0,
    retries: 0,
    strayReplies: 0,
    requests: 0,
    expiredRequests: 0,
    handlerErrors: 0,
    bulkheadRejected: 0,
    validationRejected: 0,
    cancelled: 0,
    unroutable: 0,
  };
  readonly #onLeave = ({ service, id }: { service: string; id: string }) => this.#lost(service, id);

  constructor(o: RpcOptions) {
    this.#m = o.messenger;
    this.#pending = new PendingIndex(o.messenger.midPrefix);
    this.#discovery = o.discovery;
    this.#keys = o.keys;
    this.#service = o.service;
    this.#logger = o.logger ?? silentLogger;
    this.#timeoutMs = o.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
    this.#beginWork = o.beginWork;
    this.#draining = o.draining;
    this.#callTimer = new DeadlineTimer((now) => this.#sweepCalls(now));
    this.#handlerTimer = new DeadlineTimer((now) => this.#sweepHandlers(now));
    this.#m.setRouter((msg) => this.#route(msg));
    this.#discovery.on("leave", this.#onLeave);
  }

  /** Counters. */
  get stats(): RpcStats {
    return { ...this.#stats, pending: this.#pending.size, running: this.#running.size };
  }

  /** Registered method names. */
  get methods(): string[] {
    return [...this.#handlers.keys()];
  }

  // ------------------------------------------------------------------ handlers

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
      max,
      inFlight: 0,
    });
  }

  #route(m: UmfShort): boolean {
    const typ = m.typ;
    if (typ === RpcType.CANCEL) {
      this.#cancelled(m);
      return true;
    }
    if (m.rmid !== undefined) {
      const p = this.#pending.get(m.rmid);
      if (p) {
        this.#reply(p, m);
        return true;
      }
      if (typ?.startsWith(RpcType.REQUEST)) {
        this.#stats.strayReplies++;
        return true;
      }
      return false;
    }
    if (typ === RpcType.REQUEST) {
      this.#request(m);
      return true;
    }
    return false;
  }

  #cancelled(m: UmfShort): void {
    if (m.rmid === undefined) return;
    const { rmid, frm } = m;
    // Only the caller that made the request may cancel it.
    const r = this.#running.find((x) => x.message.mid === rmid && x.from === frm);
    if (!r) return;
    this.#stats.cancelled++;
    r.cancelled = true;
    r.abort(new AbortError("the caller cancelled the call"));
  }

  #request(m: UmfShort): void {
    this.#stats.requests++;
    const caller = this.#callerOf(m.frm);
    if (!caller || caller.iid.length === 0) {
      this.#stats.unroutable++;
      return;
    }
    const colon = m.to.indexOf(":");
    let method = colon < 0 ? "" : m.to.slice(colon + 1);
    if (method.startsWith("/")) method = method.slice(1);
    const h = this.#handlers.get(method);
    if (!h) {
      this.#replyError(m, caller.service, caller.iid, {
        code: ErrorCode.NO_HANDLER,
        message: `service "${this.#service}" has no handler for "${method}"`,
        retryable: false,
        data: { service: this.#service, method },
      });
      return;
    }
    if (this.#draining()) {
      this.#replyError(
        m,
        caller.service,
        caller.iid,
        new NoInstanceError(this.#service, { data: { reason: "draining" } }).toJSON(),
      );
      return;
    }
    const deadline = m.dl ?? Number.POSITIVE_INFINITY;
    if (deadline <= Date.now()) {
      // The caller has given up already: running it would be wasted work.
      this.#stats.expiredRequests++;
      return;
    }
    if (h.max > 0 && h.inFlight >= h.max) {
      this.#stats.bulkheadRejected++;
      this.#replyError(
        m,
        caller.service,
        caller.iid,
        new BulkheadFullError(`"${method}" already runs ${h.max} calls on this instance`, {
          data: { method, maxInFlight: h.max },
        }).toJSON(),
      );
      return;
    }
    let params: unknown = m.bdy;
    if (h.params) {
      const res = h.params.safeParse(params);
      if (!res.success) {
        this.#stats.validationRejected++;
        this.#replyError(m, caller.service, caller.iid, validationWire(method, "params", res.error));
        return;
      }
      params = res.data;
    }
    const ctx = new Running(this, m, method, m.frm, deadline, m.cid ?? m.mid, m.tp);
    void this.#run(h, ctx, params, caller.service, caller.iid);
  }

  #run(h: HandlerEntry, ctx: Running, params: unknown, svc: string, iid: string): void {
    h.inFlight++;
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
      this.#finish(h, ctx, svc, iid, end, false, err);
      return;
    }
    if (typeof (out as PromiseLike<unknown> | undefined)?.then === "function") {
      // Only a handler still running can be cancelled, stopped or past its deadline: one that
      // answered synchronously is never tracked.
      this.#running.add(ctx);
      (out as PromiseLike<unknown>).then(
        (v) => this.#finish(h, ctx, svc, iid, end, true, v),
        (e: unknown) => this.#finish(h, ctx, svc, iid, end, false, e),
      );
    } else {
      // A synchronous handler is answered at once: no promise, no extra microtask.
      this.#finish(h, ctx, svc, iid, end, true, out);
    }
  }

  #finish(
    h: HandlerEntry,
    ctx: Running,
    svc: string,
    iid: string,
    end: () => void,
    ok: boolean,
    value: unknown,
  ): void {
    const m = ctx.message;
    h.inFlight--;
    this.#running.delete(ctx);
    try {
      if (!ok) {
        this.#stats.handlerErrors++;
        if (ctx.answerable) this.#replyError(m, svc, iid, errorToWire(value));
        return;
      }
      let result = value;
      if (h.result) {
        const res = h.result.safeParse(result);
        if (!res.success) {
          this.#stats.validationRejected++;
          if (ctx.answerable) this.#replyError(m, svc, iid, validationWire(ctx.method, "result", res.error));
          return;
        }
        result = res.data;
      }
      if (ctx.answerable) this.#send(m, svc, iid, RpcType.RESULT, result);
    } catch (err) {
      this.#logger.warn({ err }, "could not answer an RPC request");
    } finally {
      end();
    }
  }

  #replyError(m: UmfShort, svc: string, iid: string, w: WireError): void {
    this.#send(m, svc, iid, RpcType.ERROR, w);
  }

  #send(m: UmfShort, svc: string, iid: string, typ: string, bdy: unknown): void {
    // Only redmesh callers send type "rpc", and every redmesh caller reads frames; those that sent
    // compact frames read them too.
    const framing: FramingValue =
      m.typ !== RpcType.REQUEST
        ? Framing.PLAIN
        : this.#m.readsCompact(m.frm)
          ? Framing.COMPACT
          : Framing.FRAME;
    const channel = this.#channel(svc, iid);
    try {
      if (framing !== Framing.PLAIN && !this.#m.signing) {
        const body = JSON.stringify(bdy);
        const tail = `"mid":"${this.#m.nextMid()}","rmid":${JSON.stringify(m.mid)},"typ":"${typ}"${
          body === undefined ? "" : `,"bdy":${body}`
        }}`;
        // Compact: the caller knows who it is, and the frame's header says who answers.
        const text =
          framing === Framing.COMPACT
            ? `{${tail}`
            : `{"to":${JSON.stringify(m.frm)},"frm":${JSON.stringify(m.to)},${tail}`;
        if (overLimit(text, this.#m.maxBytes)) throw tooLarge(text, this.#m.maxBytes);
        this.#m.enqueueText(channel, text, framing);
        return;
      }
      const reply = { to: m.frm, frm: m.to, mid: this.#m.nextMid(), rmid: m.mid, typ, bdy } as UmfShort;
      this.#m.enqueue(channel, reply, framing);
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
      this.#send(m, svc, iid, RpcType.ERROR, { ...e, code });
    }
  }

  /** Parse (and cache) a caller route: callers are few, requests many. */
  #callerOf(frm: string): { iid: string; service: string } | undefined {
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

  /** Direct channel of an instance, cached (built once per instance instead of once per message). */
  #channel(service: string, iid: string): string {
    let ch = this.#channels.get(iid);
    if (ch === undefined) {
      if (this.#channels.size > 10_000) this.#channels.clear();
      ch = this.#keys.instanceChannel(service, iid);
      this.#channels.set(iid, ch);
    }
    return ch;
  }

  /** @internal A handler read `ctx.signal`: make sure its deadline aborts it. */
  _watch(deadline: number): void {
    this.#handlerTimer.arm(deadline);
  }

  #sweepHandlers(now: number): number {
    let next = Number.POSITIVE_INFINITY;
    for (const r of this.#running.values()) {
      if (!r.watched) continue;
      if (r.deadline <= now) r.abort(new TimeoutError(`the deadline of "${r.method}" passed`));
      else if (r.deadline < next) next = r.deadline;
    }
    return next;
  }

  // ------------------------------------------------------------------- callers

  /**
   * Call `method` on one instance of `target` (`svc` or `iid@svc`). Resolves with the result or
   * rejects with a typed error; never hangs past the timeout.
   */
  call<R = unknown>(target: string, method: string, params: unknown, options: CallOptions = {}): Promise<R> {
    this.#stats.calls++;
    let service = target;
    let iid = "";
    if (!this.#validNames.has(target)) {
      try {
        const at = target.indexOf("@");
        if (at >= 0) {
          iid = target.slice(0, at);
          service = target.slice(at + 1);
          if (!/^[0-9a-f]{32}$/.test(iid)) {
            throw new ValidationError(`invalid instance id in target "${target}"`, {
              code: ErrorCode.INVALID_INSTANCE_ID,
            });
          }
          assertServiceName(service);
        } else {
          assertServiceName(target);
          if (this.#validNames.size > 10_000) this.#validNames.clear();
          this.#validNames.add(target);
        }
      } catch (err) {
        this.#stats.failed++;
        return Promise.reject(err);
      }
    }
    // The method goes into the request's JSON unescaped: it must always be checked.
    if (!this.#validMethods.has(method)) {
      if (typeof method !== "string" || !METHOD_NAME.test(method)) {
        this.#stats.failed++;
        return Promise.reject(
          new ValidationError(
            `invalid method name ${JSON.stringify(method)}: use 1-128 of A-Z a-z 0-9 _ . - /`,
          ),
        );
      }
      if (this.#validMethods.size > 10_000) this.#validMethods.clear();
      this.#validMethods.add(method);
    }
    if (!this.#open) {
      this.#stats.failed++;
      return Promise.reject(
        new StateError(ErrorCode.NOT_RUNNING, `service "${this.#service}" is not running`),
      );
    }
    const timeoutMs = options.timeout ?? this.#timeoutMs;
    if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
      this.#stats.failed++;
      return Promise.reject(
        new ValidationError(`timeout must be a positive number of ms, got ${String(timeoutMs)}`),
      );
    }
    const idempotent = options.idempotent === true;
    const p = new PendingCall(
      this,
      this.#m.nextMid(),
      service,
      iid !== "",
      method,
      params,
      timeoutMs,
      Date.now() + timeoutMs,
      options.retries ?? (idempotent ? 2 : 0),
      idempotent,
      options.key,
      options.signal,
    );
    if (iid !== "") p.iid = iid;
    const promise = new Promise<R>((resolve, reject) => {
      p.resolve = resolve as (v: unknown) => void;
      p.reject = reject;
    });
    const signal = options.signal;
    if (signal) {
      if (signal.aborted) {
        this.#stats.failed++;
        p.settled = true;
        p.reject(new AbortError("the call was aborted before it was sent", { cause: signal.reason }));
        return promise;
      }
      p.onAbort = () => this.#abort(p);
      signal.addEventListener("abort", p.onAbort, { once: true });
    }
    p.cid = currentCorrelationId();
    p.tp = outgoingTraceparent();
    this.#pending.add(p);
    this.#callTimer.arm(p.deadline);
    this.#dispatch(p);
    return promise;
  }

  #dispatch(p: PendingCall): void {
    const cached = this.#discovery.cachedInstances(p.service);
    if (cached) {
      this.#sendRequest(p, cached);
      return;
    }
    this.#m.candidates(p.service).then(
      (c) => this.#sendRequest(p, c),
      (err: unknown) => this.#fail(p, asRedmesh(err)),
    );
  }

  #sendRequest(p: PendingCall, candidates: readonly Instance[]): void {
    if (p.settled) return;
    let inst: Instance | undefined;
    if (p.direct) {
      for (const c of candidates) if (c.id === p.iid) inst = c;
    } else {
      try {
        // Fields are overwritten, never deleted: `delete` would turn the object into a slow dictionary.
        const ctx = this.#pickCtx;
        ctx.service = p.service;
        ctx.exclude = p.exclude;
        ctx.key = p.key;
        inst = this.#m.pick(candidates, ctx as PickContext);
      } catch (err) {
        this.#fail(p, asRedmesh(err));
        return;
      }
      if (!inst) {
        this.#fail(p, new NoInstanceError(p.service, p.exclude ? { data: { tried: [...p.exclude] } } : {}));
        return;
      }
      p.iid = inst.id;
    }
    p.framing = Messenger.framingOf(inst);
    p.redmeshTarget = inst?.redmesh ?? false;
    p.sent = true;
    // Latency is measured only for pickers that learn from it.
    p.sentAt = this.#m.picker.onEnd ? performance.now() : 0;
    const channel = this.#channel(p.service, p.iid);
    if (p.framing !== Framing.PLAIN && !this.#m.signing) {
      // Hot path: write the envelope's JSON directly (ids, names and methods need no escaping). In a
      // compact frame the header carries `frm`.
      let text: string;
      try {
        const body = JSON.stringify(p.params);
        text = `{"to":"${p.iid}@${p.service}:/${p.method}"${
          p.framing === Framing.COMPACT ? "" : `,"frm":"${this.#m.route}"`
        },"mid":"${p.mid}","typ":"rpc"${
          body === undefined ? "" : `,"bdy":${body}`
        },"tmo":${p.timeoutMs},"dl":${p.deadline}${p.cid === undefined ? "" : `,"cid":${JSON.stringify(p.cid)}`}${
          p.tp === undefined ? "" : `,"tp":${JSON.stringify(p.tp)}`
        }}`;
        if (overLimit(text, this.#m.maxBytes)) throw tooLarge(text, this.#m.maxBytes);
      } catch (err) {
        this.#fail(p, asRedmesh(err, ErrorCode.SERIALIZATION));
        return;
      }
      this.#m.picker.onStart?.(p.service, p.iid);
      this.#m.enqueueText(channel, text, p.framing, p);
      return;
    }
    const msg = {
      to: `${p.iid}@${p.service}:/${p.method}`,
      frm: this.#m.route,
      mid: p.mid,
      typ: RpcType.REQUEST,
      bdy: p.params,
      tmo: p.timeoutMs,
      dl: p.deadline,
    } as UmfShort;
    if (p.framing === Framing.PLAIN) {
      // Plain UMF for Hydra and unknown peers: with the fields Hydra expects.
      msg.ts = new Date().toISOString();
      msg.ver = "UMF/1.4.6";
    }
    if (p.cid !== undefined) msg.cid = p.cid;
    if (p.tp !== undefined) msg.tp = p.tp;
    this.#m.picker.onStart?.(p.service, p.iid);
    try {
      this.#m.enqueue(channel, msg, p.framing, p);
    } catch (err) {
      this.#fail(p, asRedmesh(err));
    }
  }

  /** @internal Outcome of the PUBLISH that carried a request. */
  _published(p: PendingCall, receivers: number, error: RedmeshError | undefined): void {
    if (p.settled) return;
    if (error) {
      // Redis is down: fail fast with the typed connection error.
      this.#fail(p, error);
      return;
    }
    if (receivers > 0) return;
    // Nobody received it: the instance is gone. The handler never ran, so another try is safe.
    const gone = p.iid;
    this.#end(p, false, new NoInstanceError(p.service));
    p.sent = false;
    this.#m.evict(p.service, gone);
    if (p.direct || p.noReceiver >= 3) {
      this.#fail(
        p,
        new NoInstanceError(p.service, { data: { reason: "no receiver", instance: gone } }),
        false,
      );
      return;
    }
    p.noReceiver++;
    p.exclude ??= new Set();
    p.exclude.add(gone);
    this.#stats.retries++;
    this.#dispatch(p);
  }

  #reply(p: PendingCall, m: UmfShort): void {
    if (Date.now() > p.deadline) {
      // Past the deadline the answer is a timeout, whichever timer or socket read came first.
      this.#stats.strayReplies++;
      this.#timeout(p);
      return;
    }
    if (m.typ === RpcType.ERROR) {
      const err = errorFromWire(m.bdy);
      // Rejected before running (draining) is as safe to retry as no receiver.
      const notRun = err.code === ErrorCode.NO_INSTANCE;
      if (notRun && !p.direct && p.noReceiver < 3) {
        this.#end(p, false, err);
        p.noReceiver++;
        p.exclude ??= new Set();
        p.exclude.add(p.iid);
        p.sent = false;
        this.#stats.retries++;
        this.#dispatch(p);
        return;
      }
      if (this.#maybeRetry(p, err)) return;
      this.#fail(p, err);
      return;
    }
    this.#succeed(p, m.bdy);
  }

  /** Retry an idempotent call after a retryable failure, with backoff. */
  #maybeRetry(p: PendingCall, err: RedmeshError): boolean {
    if (!p.idempotent || !err.retryable || p.attempts >= p.retries || p.settled) return false;
    const backoff = Math.min(25 * 2 ** p.attempts, 1000) * (0.5 + Math.random() / 2);
    if (Date.now() + backoff >= p.deadline) return false;
    this.#end(p, false, err);
    p.attempts++;
    this.#stats.retries++;
    p.sent = false;
    if (!p.direct) {
      p.exclude ??= new Set();
      p.exclude.add(p.iid);
    }
    p.retryTimer = setTimeout(() => {
      p.retryTimer = undefined;
      if (!p.settled) this.#dispatch(p);
    }, backoff);
    return true;
  }

  #lost(service: string, id: string): void {
    if (this.#pending.size === 0) return;
    for (const p of this.#pending.values()) {
      if (!p.sent || p.iid !== id || p.service !== service || p.settled) continue;
      const err = new InstanceLostError(`instance ${id} of "${service}" went away during the call`, {
        data: { service, instance: id, method: p.method },
      });
      if (this.#maybeRetry(p, err)) continue;
      this.#fail(p, err);
    }
  }

  #abort(p: PendingCall): void {
    if (p.settled) return;
    this.#cancelRemote(p);
    this.#fail(p, new AbortError("the call was aborted", { cause: p.signal?.reason }));
  }

  #cancelRemote(p: PendingCall): void {
    if (!p.sent || !p.redmeshTarget) return;
    const msg = {
      to: `${p.iid}@${p.service}:/${p.method}`,
      frm: this.#m.route,
      mid: this.#m.nextMid(),
      rmid: p.mid,
      typ: RpcType.CANCEL,
    } as UmfShort;
    try {
      this.#m.enqueue(this.#keys.instanceChannel(p.service, p.iid), msg, p.framing);
    } catch {
      /* best effort */
    }
  }

  #sweepCalls(now: number): number {
    let next = Number.POSITIVE_INFINITY;
    for (const p of this.#pending.values()) {
      if (p.deadline <= now) this.#timeout(p);
      else if (p.deadline < next) next = p.deadline;
    }
    return next;
  }

  #timeout(p: PendingCall): void {
    this.#stats.timeouts++;
    this.#cancelRemote(p);
    this.#fail(
      p,
      new TimeoutError(`call to "${p.service}.${p.method}" got no reply within ${p.timeoutMs} ms`, {
        data: { service: p.service, method: p.method, instance: p.iid, timeoutMs: p.timeoutMs },
      }),
    );
  }

  #end(p: PendingCall, ok: boolean, error?: unknown): void {
    if (!p.sent || p.iid === "") return;
    const onEnd = this.#m.picker.onEnd;
    if (onEnd)
      onEnd.call(this.#m.picker, p.service, p.iid, { ok, latencyMs: performance.now() - p.sentAt, error });
  }

  #settle(p: PendingCall): void {
    p.settled = true;
    this.#pending.delete(p);
    if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
    if (p.retryTimer) clearTimeout(p.retryTimer);
    // The deadline timer stays armed when nothing is pending (it is unref'd and finds nothing):
    // clearing and re-arming it around every call at concurrency 1 would cost a timer per call.
  }

  #succeed(p: PendingCall, value: unknown): void {
    this.#end(p, true);
    this.#settle(p);
    this.#stats.succeeded++;
    p.resolve(value);
  }

  #fail(p: PendingCall, err: RedmeshError, report = true): void {
    if (p.settled) return;
    if (report) this.#end(p, false, err);
    this.#settle(p);
    this.#stats.failed++;
    p.reject(err);
  }

  /** Redis went down: pending replies cannot arrive, so every pending call fails now (typed). */
  failAll(err: RedmeshError): void {
    for (const p of this.#pending.values()) this.#fail(p, err);
  }

  /** Stop taking calls: pending calls fail with `ERR_NOT_RUNNING`, timers are cleared. */
  close(): void {
    this.#open = false;
    this.failAll(new StateError(ErrorCode.NOT_RUNNING, `service "${this.#service}" stopped`));
    for (const r of this.#running.values()) r.abort(new AbortError("the service is stopping"));
    this.#callTimer.clear();
    this.#handlerTimer.clear();
    this.#discovery.off("leave", this.#onLeave);
  }

  /** Abort the signals of handlers still running (the stop grace period ended). */
  abortRunning(reason: RedmeshError): void {
    for (const r of this.#running.values()) r.abort(reason);
  }
}

function asRedmesh(err: unknown, code: string = ErrorCode.REMOTE): RedmeshError {
  if (err instanceof RedmeshError) return err;
  return new RemoteError(code, err instanceof Error ? err.message : String(err), { cause: err });
}

function tooLarge(text: string, maxBytes: number): MessageError {
  const bytes = Buffer.byteLength(text);
  return new MessageError(
    ErrorCode.MESSAGE_TOO_LARGE,
    `message of ${bytes} bytes exceeds the ${maxBytes}-byte limit`,
    {
      data: { bytes, maxBytes },
    },
  );
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
