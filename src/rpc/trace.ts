/**
 * W3C trace context for RPC. With `@opentelemetry/api` installed (optional peer dependency) the
 * caller's active span travels in the request (`tp`) and handlers run inside a child span; without
 * it the ambient {@link WorkContext} (correlation id, traceparent) still flows through calls.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { currentContext } from "../context.js";

type OtelApi = typeof import("@opentelemetry/api");

let otel: OtelApi | null | undefined;
let loading: Promise<void> | undefined;

/** Load `@opentelemetry/api` once if it is installed (never throws). */
export function loadOtel(): Promise<void> {
  loading ??= import("@opentelemetry/api").then(
    (m) => {
      otel = m;
    },
    () => {
      otel = null;
    },
  );
  return loading;
}

/** The OpenTelemetry API when installed and loaded. */
export function otelApi(): OtelApi | undefined {
  return otel ?? undefined;
}

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/** Parse a `traceparent` header value. */
export function parseTraceparent(
  tp: string | undefined,
): { traceId: string; spanId: string; flags: number } | undefined {
  if (tp === undefined) return undefined;
  const m = TRACEPARENT.exec(tp);
  if (!m) return undefined;
  return { traceId: m[1] as string, spanId: m[2] as string, flags: Number.parseInt(m[3] as string, 16) };
}

/** The traceparent a call made now should carry, or `undefined`. */
export function outgoingTraceparent(): string | undefined {
  if (otel) {
    const sc = otel.trace.getSpanContext(otel.context.active());
    if (sc && otel.trace.isSpanContextValid(sc)) {
      return `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
    }
  }
  return currentContext()?.traceparent;
}

/** A child traceparent (same trace, new span id) for a handler when OpenTelemetry is absent. */
export function childTraceparent(tp: string): string {
  const p = parseTraceparent(tp);
  if (!p) return tp;
  return `00-${p.traceId}-${randomBytes(8).toString("hex")}-${p.flags.toString(16).padStart(2, "0")}`;
}

/**
 * Run `fn` inside a child span of `tp` named `rpc <service>.<method>` (OpenTelemetry present),
 * passing the child's traceparent.
 * Without OpenTelemetry (or without `tp`) it just calls `fn`.
 */
export function runInSpan<T>(
  service: string,
  method: string,
  tp: string | undefined,
  fn: (childTp: string | undefined) => T,
): T {
  if (!otel || tp === undefined) return fn(tp === undefined ? undefined : childTraceparent(tp));
  const p = parseTraceparent(tp);
  if (!p) return fn(undefined);
  const api = otel;
  const parent = api.trace.setSpanContext(api.context.active(), {
    traceId: p.traceId,
    spanId: p.spanId,
    traceFlags: p.flags,
    isRemote: true,
  });
  const tracer = api.trace.getTracer("redmesh");
  return tracer.startActiveSpan(`rpc ${service}.${method}`, { kind: api.SpanKind.SERVER }, parent, (span) => {
    const sc = span.spanContext();
    const child = `00-${sc.traceId}-${sc.spanId}-${(sc.traceFlags & 0xff).toString(16).padStart(2, "0")}`;
    let out: T;
    try {
      out = fn(child);
    } catch (err) {
      span.end();
      throw err;
    }
    if (out instanceof Promise) {
      out.then(
        () => span.end(),
        (err: unknown) => {
          span.recordException(err instanceof Error ? err : String(err));
          span.setStatus({ code: api.SpanStatusCode.ERROR });
          span.end();
        },
      );
    } else span.end();
    return out;
  });
}
