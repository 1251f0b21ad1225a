/**
 * The calling half of RPC (docs/rpc.md): `call()` sends a request through the balancing loop and
 * waits for its reply, matched by `rmid` (any message whose `rmid` matches a pending call is its
 * reply: that is how a Hydra service answering with `sendReplyMessage` works).
 *
 * Every call ends in a result or a typed error: reply, timeout (one shared deadline timer), abort,
 * no instance, instance lost, Redis down, or stop. Retries and redirects are the loop's (see
 * `balancer/loop.ts`); this file adds what only a call has: the pending index, the deadline, the
 * cancel sent to the handler when the caller gives up, and the instance-left watch.
 *
 * @module
 */

import { BalancedRequest, type BalancingLoop, type RetryKindValue } from "../balancer/index.js";
import { currentCorrelationId } from "../context.js";
import {
  encodeCancel,
  encodeRequest,
  Framing,
  type FramingValue,
  parseTarget,
  type RpcRequestFields,
  RpcType,
  requestRoute,
  type UmfShort,
} from "../envelope/index.js";
import {
  AbortError,
  ErrorCode,
  errorFromWire,
  InstanceLostError,
  type RedmeshError,
  StateError,
  TimeoutError,
  ValidationError,
} from "../errors.js";
import type { MessagePort } from "../messaging/index.js";
import type { Instance } from "../registry/index.js";
import { DeadlineTimer } from "./deadlines.js";
import { PendingIndex } from "./pending.js";
import { outgoingTraceparent } from "./trace.js";

/** Default call timeout: 10 s. */
export const DEFAULT_RPC_TIMEOUT_MS = 10_000;

/** Method names: what the request's route may hold unescaped. */
export const METHOD_NAME = /^[A-Za-z0-9_.\-/]{1,128}$/;

/** Options of one call. */
export interface CallOptions {
  /** Deadline from now, in ms (it travels with the request). @default the service's `rpcTimeoutMs` */
  timeout?: number;
  /** Cancels the call; the handler's `ctx.signal` aborts too. */
  signal?: AbortSignal;
  /**
   * Retries after a backoff (docs/balancing.md "The balancing loop"): for any call when the handler
   * certainly did not run (a full bulkhead, no instance yet, every circuit open), and also after a
   * failure it may have run into (instance lost, a retryable remote error) when `idempotent`. Each
   * goes to another instance when there is one. An instance that is gone or draining is skipped at
   * once, whatever this says. @default 2 when idempotent, else 0
   */
  retries?: number;
  /** The method may safely run more than once. @default false */
  idempotent?: boolean;
  /** Affinity key passed to the instance picker. */
  key?: string;
}

/** What the calling half counts (part of `RpcStats`). */
export interface RpcClientStats {
  calls: number;
  succeeded: number;
  failed: number;
  timeouts: number;
  retries: number;
  /** Replies that matched no pending call (stray, duplicate or late): ignored. */
  strayReplies: number;
}

/** What a pending call is created from (one record per client, refilled for every call: no allocation). */
interface CallInit {
  mid: string;
  service: string;
  iid: string;
  method: string;
  params: unknown;
  timeoutMs: number;
  deadline: number;
  retries: number;
  idempotent: boolean;
  key: string | undefined;
  signal: AbortSignal | undefined;
}

/** One call waiting for its reply: a request of the balancing loop, and the fields of its envelope. */
class PendingCall extends BalancedRequest implements RpcRequestFields {
  readonly mid: string;
  readonly method: string;
  readonly params: unknown;
  readonly timeoutMs: number;
  readonly signal: AbortSignal | undefined;
  cid: string | undefined = undefined;
  tp: string | undefined = undefined;
  framing: FramingValue = Framing.PLAIN;
  /** The instance reads redmesh's cancels (a Hydra service would not). */
  redmeshTarget = false;
  onAbort: (() => void) | undefined = undefined;
  done!: (v: unknown) => void;
  fail!: (e: unknown) => void;

  constructor(
    readonly client: RpcClient,
    loop: BalancingLoop,
    init: CallInit,
  ) {
    super(loop, init);
    this.mid = init.mid;
    this.method = init.method;
    this.params = init.params;
    this.timeoutMs = init.timeoutMs;
    this.signal = init.signal;
  }

  transmit(instance: Instance | undefined): void {
    this.client._transmit(this, instance);
  }

  reject(error: RedmeshError): void {
    this.client._settle(this);
    this.client.counters.failed++;
    this.fail(error);
  }

  override onRetry(_kind: RetryKindValue): void {
    this.client.counters.retries++;
  }
}

/** Options of {@link RpcClient}. */
export interface RpcClientOptions {
  /** What RPC uses of messaging. */
  port: MessagePort;
  /** The balancing loop calls run in. */
  loop: BalancingLoop;
  /** This service's name (for messages). */
  service: string;
  /** Default call timeout. @default 10000 */
  timeoutMs?: number;
}

/** The calls of one instance. */
export class RpcClient {
  readonly #port: MessagePort;
  readonly #loop: BalancingLoop;
  readonly #service: string;
  readonly #timeoutMs: number;
  readonly #pending: PendingIndex<PendingCall>;
  /** Targets and methods already validated (bounded): most calls go to a few of them. */
  readonly #validTargets = new Map<string, { service: string; iid: string }>();
  readonly #validMethods = new Set<string>();
  readonly #init: CallInit = {
    mid: "",
    service: "",
    iid: "",
    method: "",
    params: undefined,
    timeoutMs: 0,
    deadline: 0,
    retries: 0,
    idempotent: false,
    key: undefined,
    signal: undefined,
  };
  readonly #callTimer: DeadlineTimer;
  #open = true;
  /** @internal Counters, also bumped by the pending calls. */
  readonly counters: RpcClientStats = {
    calls: 0,
    succeeded: 0,
    failed: 0,
    timeouts: 0,
    retries: 0,
    strayReplies: 0,
  };

  constructor(o: RpcClientOptions) {
    this.#port = o.port;
    this.#loop = o.loop;
    this.#service = o.service;
    this.#timeoutMs = o.timeoutMs ?? DEFAULT_RPC_TIMEOUT_MS;
    this.#pending = new PendingIndex(o.port.midPrefix);
    this.#callTimer = new DeadlineTimer((now) => this.#sweep(now));
  }

  /** Calls waiting for a reply now. */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * Call `method` on one instance of `target` (`svc` or `iid@svc`). Resolves with the result or
   * rejects with a typed error; never hangs past the timeout.
   */
  call<R = unknown>(target: string, method: string, params: unknown, options: CallOptions = {}): Promise<R> {
    this.counters.calls++;
    let t = this.#validTargets.get(target);
    if (t === undefined) {
      try {
        t = parseTarget(target);
      } catch (err) {
        this.counters.failed++;
        return Promise.reject(err);
      }
      if (this.#validTargets.size > 10_000) this.#validTargets.clear();
      this.#validTargets.set(target, t);
    }
    // The method goes into the request's JSON unescaped: it must always be checked.
    if (!this.#validMethods.has(method)) {
      if (typeof method !== "string" || !METHOD_NAME.test(method)) {
        this.counters.failed++;
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
      this.counters.failed++;
      return Promise.reject(
        new StateError(ErrorCode.NOT_RUNNING, `service "${this.#service}" is not running`),
      );
    }
    const timeoutMs = options.timeout ?? this.#timeoutMs;
    if (!(timeoutMs > 0) || !Number.isFinite(timeoutMs)) {
      this.counters.failed++;
      return Promise.reject(
        new ValidationError(`timeout must be a positive number of ms, got ${String(timeoutMs)}`),
      );
    }
    const idempotent = options.idempotent === true;
    const init = this.#init;
    init.mid = this.#port.nextMid();
    init.service = t.service;
    init.iid = t.iid;
    init.method = method;
    init.params = params;
    init.timeoutMs = timeoutMs;
    init.deadline = Date.now() + timeoutMs;
    init.retries = options.retries ?? (idempotent ? 2 : 0);
    init.idempotent = idempotent;
    init.key = options.key;
    init.signal = options.signal;
    const p = new PendingCall(this, this.#loop, init);
    init.params = undefined;
    const promise = new Promise<R>((resolve, reject) => {
      p.done = resolve as (v: unknown) => void;
      p.fail = reject;
    });
    const signal = options.signal;
    if (signal) {
      if (signal.aborted) {
        this.counters.failed++;
        p.settled = true;
        p.fail(new AbortError("the call was aborted before it was sent", { cause: signal.reason }));
        return promise;
      }
      p.onAbort = () => this.#abort(p);
      signal.addEventListener("abort", p.onAbort, { once: true });
    }
    p.cid = currentCorrelationId();
    p.tp = outgoingTraceparent();
    this.#pending.add(p);
    this.#callTimer.arm(p.deadline);
    this.#loop.dispatch(p);
    return promise;
  }

  /** @internal One attempt of a call: encode the request for `instance` and post it. */
  _transmit(p: PendingCall, instance: Instance | undefined): void {
    const framing = this.#port.framingOf(instance);
    p.framing = framing;
    p.redmeshTarget = instance?.redmesh ?? false;
    this.#port.post(
      p.service,
      p.iid,
      encodeRequest(p, this.#port.route, framing, this.#port.codec),
      framing,
      p,
    );
  }

  /** A message with an `rmid`: the reply of a pending call (true), or not ours (false). */
  takeReply(m: UmfShort): boolean {
    const p = this.#pending.get(m.rmid as string);
    if (!p) {
      if (m.typ?.startsWith(RpcType.REQUEST)) {
        this.counters.strayReplies++;
        return true;
      }
      return false;
    }
    if (Date.now() > p.deadline) {
      // Past the deadline the answer is a timeout, whichever timer or socket read came first.
      this.counters.strayReplies++;
      this.#timeout(p);
      return true;
    }
    if (m.typ === RpcType.ERROR) {
      this.#loop.failed(p, errorFromWire(m.bdy));
      return true;
    }
    this.#loop.succeeded(p);
    this._settle(p);
    this.counters.succeeded++;
    p.done(m.bdy);
    return true;
  }

  /** An instance left the registry: calls waiting on it fail (or are retried, when idempotent). */
  lost(service: string, id: string): void {
    if (this.#pending.size === 0) return;
    for (const p of this.#pending.values()) {
      if (!p.sent || p.iid !== id || p.service !== service || p.settled) continue;
      this.#loop.failed(
        p,
        new InstanceLostError(`instance ${id} of "${service}" went away during the call`, {
          data: { service, instance: id, method: p.method },
        }),
      );
    }
  }

  #abort(p: PendingCall): void {
    if (p.settled) return;
    this.#cancelRemote(p);
    this.#loop.abandon(p, new AbortError("the call was aborted", { cause: p.signal?.reason }));
  }

  /** Tell the handler its caller gave up (best effort, redmesh instances only). */
  #cancelRemote(p: PendingCall): void {
    if (!p.sent || !p.redmeshTarget) return;
    try {
      const to = requestRoute(p.iid, p.service, p.method);
      const text = encodeCancel(to, this.#port.route, this.#port.nextMid(), p.mid, this.#port.codec);
      this.#port.post(p.service, p.iid, text, p.framing);
    } catch {
      /* best effort */
    }
  }

  #sweep(now: number): number {
    let next = Number.POSITIVE_INFINITY;
    for (const p of this.#pending.values()) {
      if (p.deadline <= now) this.#timeout(p);
      else if (p.deadline < next) next = p.deadline;
    }
    return next;
  }

  #timeout(p: PendingCall): void {
    this.counters.timeouts++;
    this.#cancelRemote(p);
    this.#loop.abandon(
      p,
      new TimeoutError(`call to "${p.service}.${p.method}" got no reply within ${p.timeoutMs} ms`, {
        data: { service: p.service, method: p.method, instance: p.iid, timeoutMs: p.timeoutMs },
      }),
    );
  }

  /** @internal The call is over: out of the index, its listener and retry timer gone. */
  _settle(p: PendingCall): void {
    p.settled = true;
    this.#pending.delete(p);
    if (p.onAbort) p.signal?.removeEventListener("abort", p.onAbort);
    if (p.timer) clearTimeout(p.timer);
    // The deadline timer stays armed when nothing is pending (it is unref'd and finds nothing):
    // clearing and re-arming it around every call at concurrency 1 would cost a timer per call.
  }

  /** Redis went down: pending replies cannot arrive, so every pending call fails now (typed). */
  failAll(err: RedmeshError): void {
    for (const p of this.#pending.values()) this.#loop.abandon(p, err);
  }

  /** Stop taking calls: pending calls fail with `ERR_NOT_RUNNING`, the timer is cleared. */
  close(): void {
    this.#open = false;
    this.failAll(new StateError(ErrorCode.NOT_RUNNING, `service "${this.#service}" stopped`));
    this.#callTimer.clear();
  }
}
