/**
 * The gateway's options: {@link GatewayOptions}, {@link GatewayLimits}, their frozen defaults, and
 * {@link resolveGatewayOptions}, which validates them once (in the constructor, before any I/O).
 *
 * @module
 */

import type { InstancePicker } from "../balancer/index.js";
import type { DashboardOptions } from "../dashboard/index.js";
import { ErrorCode, ValidationError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { RedisOptions } from "../redis/index.js";
import type { Instance } from "../registry/index.js";
import type { CorsOptions } from "./cors.js";
import type { RateLimitOptions } from "./rate-limit.js";
import type { GatewayRpcInvoker } from "./upstream-rpc.js";

/** Chooses one instance among candidates (all live and not draining). The balancer plugs in here. */
export type GatewayPicker = (service: string, candidates: Instance[]) => Instance | undefined;

/** Size and time limits. Durations in milliseconds. */
export interface GatewayLimits {
  /** Largest request body accepted (413 beyond). @default 1048576 (1 MiB) */
  maxBodyBytes?: number;
  /** Time a client has to send the request headers (Node answers 408). @default 10000 */
  headersTimeoutMs?: number;
  /** Time a client has to send the whole request (408). @default 30000 */
  requestTimeoutMs?: number;
  /** Time an upstream has to answer (headers, and between body chunks); 504 beyond. @default 30000 */
  upstreamTimeoutMs?: number;
  /** Idle keep-alive time of client connections. @default 5000 */
  keepAliveTimeoutMs?: number;
  /** Largest WebSocket message (the socket is closed with 1009 beyond). @default 1048576 */
  wsMaxPayloadBytes?: number;
  /** WebSocket ping interval (sockets that miss a pong are dropped); 0 disables. @default 30000 */
  wsPingMs?: number;
  /** Most instances tried for one request (idempotent requests only retry). @default 3 */
  maxAttempts?: number;
  /** Keep-alive connections per upstream origin. @default 128 */
  upstreamConnections?: number;
  /**
   * Longest `stop()` waits for in-flight requests, WebSocket closes and upstream pools
   * (`stop({ force: true })` does not wait). @default 5000
   */
  stopGraceMs?: number;
}

/** Options of `createGateway()`. */
export interface GatewayOptions {
  /** Redis to use (URL or options). @default "redis://127.0.0.1:6379" */
  redis?: RedisOptions;
  /** Key prefix. @default "redmesh" */
  namespace?: string;
  /** Name the gateway registers under. @default "gateway" */
  name?: string;
  /** TCP port; 0 picks a free one (see `Gateway.port`). @default 8080 */
  port?: number;
  /** Interface to bind. @default "127.0.0.1" */
  host?: string;
  /** Size and time limits. */
  limits?: GatewayLimits;
  /** CORS allow-list; no CORS headers at all when absent. */
  cors?: CorsOptions;
  /** Per-client-IP token-bucket rate limit; none when absent. */
  rateLimit?: RateLimitOptions;
  /** Forwarder for instances without an HTTP address. @default redmesh RPC to the route's `svc.route()` handler */
  rpc?: GatewayRpcInvoker;
  /** Instance picker function (instead of the default balancer: round-robin with circuit breakers). */
  pick?: GatewayPicker;
  /**
   * A balancer (`createBalancer()` from "redmesh", or any {@link InstancePicker}) instead of `pick`: it
   * picks (excluding instances already tried), is told when each attempt starts and ends (outstanding
   * counts, circuit breakers); when every candidate's circuit is open the answer is 503 `ERR_CIRCUIT_OPEN`.
   */
  balancer?: InstancePicker;
  /**
   * Serve the live dashboard under `/dashboard` (read-only, but it shows the mesh's topology, health
   * and logs: only turn it on where that is acceptable). `true` or dashboard options.
   * @default false
   */
  dashboard?: boolean | Omit<DashboardOptions, "redis" | "keys" | "namespace" | "basePath">;
  /**
   * How often the route table is re-read even without registry events.
   * @default 5000
   */
  routesRefreshMs?: number;
  /** Discovery cache reconciliation interval. @default 1000 */
  reconcileMs?: number;
  /** pino-compatible logger. @default silent */
  logger?: Logger;
}

/** Default limits. */
export const DEFAULT_GATEWAY_LIMITS = Object.freeze({
  maxBodyBytes: 1024 * 1024,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  upstreamTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5000,
  wsMaxPayloadBytes: 1024 * 1024,
  wsPingMs: 30_000,
  maxAttempts: 3,
  upstreamConnections: 128,
  stopGraceMs: 5000,
} satisfies Required<GatewayLimits>);

/** Default gateway options. */
export const DEFAULT_GATEWAY_OPTIONS = Object.freeze({
  namespace: "redmesh",
  name: "gateway",
  port: 8080,
  host: "127.0.0.1",
  routesRefreshMs: 5000,
  reconcileMs: 1000,
});

/** The options the gateway reads after validation (the rest are passed on as given). */
export interface ResolvedGatewayOptions {
  /** TCP port (0: a free one). */
  port: number;
  /** Interface to bind. */
  host: string;
  /** Route table re-read interval. */
  routesRefreshMs: number;
  /** Every limit, defaults filled in. */
  limits: Required<GatewayLimits>;
}

/**
 * Fill in defaults and validate: every limit a non-negative integer (`maxAttempts` at least 1),
 * `headersTimeoutMs` within `requestTimeoutMs`, a port in 0–65535, not both `pick` and `balancer`.
 * Throws `ValidationError` `ERR_INVALID_OPTIONS`.
 */
export function resolveGatewayOptions(options: GatewayOptions): ResolvedGatewayOptions {
  const d = DEFAULT_GATEWAY_OPTIONS;
  const limits = { ...DEFAULT_GATEWAY_LIMITS, ...definedOnly(options.limits ?? {}) };
  for (const [k, v] of Object.entries(limits)) {
    if (typeof v !== "number" || !Number.isInteger(v) || v < (k === "maxAttempts" ? 1 : 0)) {
      throw invalid(`invalid gateway limit ${k}: expected a non-negative integer`);
    }
  }
  if (limits.headersTimeoutMs > limits.requestTimeoutMs && limits.requestTimeoutMs > 0) {
    throw invalid("limits.headersTimeoutMs must not exceed limits.requestTimeoutMs");
  }
  const port = options.port ?? d.port;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw invalid(`invalid gateway port ${String(port)}`);
  }
  if (options.pick && options.balancer) throw invalid("give either `pick` or `balancer`, not both");
  return {
    port,
    host: options.host ?? d.host,
    routesRefreshMs: options.routesRefreshMs ?? d.routesRefreshMs,
    limits,
  };
}

function invalid(message: string): ValidationError {
  return new ValidationError(message, { code: ErrorCode.INVALID_OPTIONS });
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
