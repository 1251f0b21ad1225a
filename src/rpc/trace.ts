/**
 * W3C trace context for RPC. With `@opentelemetry/api` installed (optional peer dependency) the
 * caller's active span travels in the request (`tp`) and handlers run inside a child span; without
 * it the ambient {@link WorkContext} (correlation id, traceparent) still flows through calls.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { currentContext } from "../context.js";

type OtelApi = typeof import("@opentelemetry/api");

/**
 * Where `@opentelemetry/api` (major 1, the peer range) keeps what an SDK registered (tracer provider,
 * context manager, propagator); it exists once anything registered. Until then every API call is a
 * no-op, so the API is not loaded: an idle service that does not trace loads none of its modules.
 */
const OTEL_GLOBAL = Symbol.for("opentelemetry.js.api.1");

// require(), not import(): the API is loaded the moment an SDK shows up, inside the call that needs
// it. Both of its builds share the registrations through OTEL_GLOBAL.
const requireOtel = createRequire(import.meta.url);

/** The loaded API, `null` when it is not installed, `undefined` until it is needed. */
let otel: OtelApi | null | undefined;

function load(): OtelApi | undefined {
  if (otel === undefined) {
    try {
      otel = requireOtel("@opentelemetry/api") as OtelApi;
    } catch {
      otel = null;
    }
  }
  return otel ?? undefined;
}

/** The API once OpenTelemetry is in use (something registered with it), else `undefined`. */
function active(): OtelApi | undefined {
  if (otel !== undefined) return otel ?? undefined;
  return OTEL_GLOBAL in globalThis ? load() : undefined;
}

/**
 * Load `@opentelemetry/api` now if it is installed (never throws). Not needed: tracing loads it by
 * itself as soon as an SDK has registered.
 */
export function loadOtel(): Promise<void> {
  load();
  return Promise.resolve();
}

/** The OpenTelemetry API when installed and in use (or loaded by {@link loadOtel}). */
export function otelApi(): OtelApi | undefined {
  return active();
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
  const api = active();
  if (api) {
    const sc = api.trace.getSpanContext(api.context.active());
    if (sc && api.trace.isSpanContextValid(sc)) {
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
  if (tp === undefined) return fn(undefined);
  const api = active();
  if (!api) return fn(childTraceparent(tp));
  const p = parseTraceparent(tp);
  if (!p) return fn(undefined);
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
