/**
 * The ambient context of one piece of work (an RPC call being handled, a job being processed): its
 * correlation id and W3C trace context. It flows through `await`s via AsyncLocalStorage, so a log
 * entry written deep inside a handler, or a call made from it, carries the same ids without any
 * parameter threading.
 *
 * @module
 */
import { AsyncLocalStorage } from "node:async_hooks";
import { randomBytes } from "node:crypto";

/** What travels with a unit of work. */
export interface WorkContext {
  /** Correlation id: the same for every call, job and log entry caused by one original request. */
  readonly correlationId: string;
  /** W3C `traceparent` of the current span, when tracing is on. */
  readonly traceparent?: string;
  /** W3C `tracestate`, when present. */
  readonly tracestate?: string;
}

const storage = new AsyncLocalStorage<WorkContext>();

/** The context of the work running now, or `undefined` outside any handler or job. */
export function currentContext(): WorkContext | undefined {
  return storage.getStore();
}

/** The correlation id of the work running now, or `undefined` outside any handler or job. */
export function currentCorrelationId(): string | undefined {
  return storage.getStore()?.correlationId;
}

/** Run `fn` with `ctx` as the ambient context (for everything it awaits, too). */
export function runWithContext<T>(ctx: WorkContext, fn: () => T): T {
  return storage.run(ctx, fn);
}

/** {@link runWithContext} for a two-argument function, without a closure (a handler's hot path). */
export function runWithContext2<A, B, T>(ctx: WorkContext, fn: (a: A, b: B) => T, a: A, b: B): T {
  return storage.run(ctx, fn, a, b);
}

/** A fresh correlation id (16 random bytes, hex), the same shape as a W3C trace id. */
export function newCorrelationId(): string {
  return randomBytes(16).toString("hex");
}
