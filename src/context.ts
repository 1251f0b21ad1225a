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

/**
 * Run `fn(...args)` with `ctx` as the ambient context (for everything it awaits, too). Passing the
 * arguments instead of a closure saves an allocation on hot paths.
 */
export function runWithContext<A extends unknown[], T>(
  ctx: WorkContext,
  fn: (...args: A) => T,
  ...args: A
): T {
  return storage.run(ctx, fn, ...args);
}

/** A fresh correlation id (16 random bytes, hex), the same shape as a W3C trace id. */
export function newCorrelationId(): string {
  return randomBytes(16).toString("hex");
}
