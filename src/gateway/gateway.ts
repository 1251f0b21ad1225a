/**
 * The API gateway: `METHOD /path` → a live instance of the service that registered a matching route.
 *
 * Per request: CORS preflight → path normalisation (400) → the gateway's own endpoints (`/healthz`,
 * `/metrics`) → rate limit (429) → route match (404/405) → body limit (413) → pick an instance →
 * forward over HTTP (undici keep-alive pool per origin) when the instance advertises `ip`+`port`,
 * otherwise through the {@link GatewayRpcInvoker} seam. Idempotent requests are retried on another
 * instance when the connection failed before the request was sent; failures map to 502/503/504.
 *
 * The gateway is itself a redmesh service instance (name `gateway` by default): that gives it
 * discovery, a registry entry, and an instance channel on which replies to WebSocket clients arrive.
 *
 * Stop order (also in docs/gateway.md): stop accepting connections and close idle keep-alive ones →
 * close WebSockets with 1001 → wait for in-flight requests (bounded by `stopGraceMs`), then cut what is
 * left → close the upstream pools → deregister and close Redis. Nothing (timer, socket) is left.
 *
 * @module
 */

import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { type Duplex, Transform } from "node:stream";
import { Pool } from "undici";
import { InFlight, settleWithin } from "../async.js";
import { type Balancer, createBalancer, type InstancePicker } from "../balancer/index.js";
import { createDashboard, type Dashboard, type DashboardOptions } from "../dashboard/index.js";
import { ErrorCode, RedmeshError, StateError, ValidationError } from "../errors.js";
import { safeJsonParse } from "../json.js";
import { type Logger, silentLogger } from "../logger.js";
import type { RedisOptions } from "../redis/index.js";
import { type Instance, InstanceStatus, type RegistryEvent } from "../registry/index.js";
import { HTTP_ROUTE_METHOD, type HttpRouteRequest, type HttpRouteResponse } from "../rpc/index.js";
import { createService, type Service } from "../service.js";
import { type CorsOptions, CorsPolicy } from "./cors.js";
import { GatewayErrorCode, sendError } from "./errors.js";
import { forwardHeaders, isValidRequestId, REQUEST_ID_HEADER, stripHopByHop } from "./headers.js";
import { GatewayMetrics, NO_SERVICE } from "./metrics.js";
import { normalizePath } from "./path.js";
import { type RateLimitOptions, TokenBucketLimiter } from "./rate-limit.js";
import { buildRouteTable, type RouteEntry, RouteTable } from "./router.js";
import { WsBridge } from "./ws-bridge.js";

/** The request handed to the RPC seam (headers already filtered of hop-by-hop ones). */
export type GatewayRpcRequest = HttpRouteRequest & { route: string };

/** What the RPC seam answers. */
export interface GatewayRpcResponse {
  /** HTTP status. */
  status: number;
  /** Response headers (hop-by-hop ones are dropped). */
  headers?: Record<string, string | string[]>;
  /** Body: a string or Buffer is sent as is, anything else as JSON; `undefined` for none. */
  body?: unknown;
}

/** How the gateway forwards a request to an instance that advertises no HTTP address. Wired to RPC later. */
export type GatewayRpcInvoker = (
  target: { service: string; instanceId?: string },
  request: GatewayRpcRequest,
  opts: { timeoutMs: number; signal: AbortSignal },
) => Promise<GatewayRpcResponse>;

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
  /** Longest `stop()` waits for in-flight requests and WebSocket closes. @default 5000 */
  stopGraceMs?: number;
}

/** Options of {@link createGateway}. */
export interface GatewayOptions {
  /** Redis to use (URL or options). @default "redis://127.0.0.1:6379" */
  redis?: RedisOptions;
  /** Key prefix. @default "redmesh" */
  namespace?: string;
  /** Name the gateway registers under. @default "gateway" */
  name?: string;
  /** TCP port; 0 picks a free one (see {@link Gateway.port}). @default 8080 */
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

/** How long an instance that refused a connection is avoided (it is usually gone within presence TTL). */
const SUSPECT_MS = 5000;
/** Methods that may be retried on another instance (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);
/** Errors meaning "nothing was sent": the connection itself failed. */
const CONNECT_ERRORS = new Set([
  "ECONNREFUSED",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "UND_ERR_CONNECT_TIMEOUT",
]);

/** Errors undici reports when the response it writes into was closed by the client. */
const CLIENT_GONE_ERRORS = new Set(["UND_ERR_ABORTED", "ERR_STREAM_PREMATURE_CLOSE", "ERR_STREAM_DESTROYED"]);

/** Life-cycle states. */
export const GatewayState = {
  IDLE: "idle",
  STARTING: "starting",
  RUNNING: "running",
  STOPPING: "stopping",
  STOPPED: "stopped",
} as const;
/** Union of gateway states. */
export type GatewayStateValue = (typeof GatewayState)[keyof typeof GatewayState];

/** The default picker: round-robin per service over the candidates given. */
export function createRoundRobinPicker(): GatewayPicker {
  const next = new Map<string, number>();
  return (service, candidates) => {
    if (candidates.length === 0) return undefined;
    const sorted =
      candidates.length > 1 ? [...candidates].sort((a, b) => (a.id < b.id ? -1 : 1)) : candidates;
    const i = next.get(service) ?? 0;
    next.set(service, (i + 1) % 1_000_000_007);
    return sorted[i % sorted.length];
  };
}

class BodyTooLarge extends Error {}

interface Attempt {
  outcome: "ok" | "retry" | "fail";
  /** Set when the instance is to blame (reported to the balancer's `onEnd`). */
  error?: unknown;
}

/** The gateway. Create with {@link createGateway}; `start()` listens, `stop()` drains and closes. */
export class Gateway {
  /** Metrics (also served on `/metrics`). */
  readonly metrics = new GatewayMetrics();
  /** The gateway's own service instance (discovery, registry entry, Redis connection). */
  readonly service: Service;
  readonly #o: {
    port: number;
    host: string;
    routesRefreshMs: number;
    limits: Required<GatewayLimits>;
  };
  readonly #logger: Logger;
  readonly #rpc: GatewayRpcInvoker | undefined;
  readonly #dashboard: Dashboard | undefined;
  /** The balancer the gateway made for itself (forgets instances that leave). */
  readonly #ownBalancer: Balancer | undefined;
  #unwatchBalancer: (() => void) | undefined;
  readonly #pick: GatewayPicker;
  readonly #balancer: InstancePicker | undefined;
  readonly #cors: CorsPolicy | undefined;
  readonly #limiter: TokenBucketLimiter | undefined;
  readonly #server: Server;
  readonly #ws: WsBridge;
  readonly #pools = new Map<string, Pool>();
  readonly #suspects = new Map<string, number>();
  readonly #sockets = new Set<Socket>();
  #table = new RouteTable();
  #state: GatewayStateValue = GatewayState.IDLE;
  readonly #work = new InFlight();
  #refreshTimer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  #refreshAgain = false;
  #stopping: Promise<void> | undefined;
  // Any service's join or routes change can add routes (even a service this gateway never cached).
  readonly #onRegistryEvent = (ev: RegistryEvent) => {
    if (ev.t === "join" || ev.t === "routes") this.#scheduleRefresh();
  };
  readonly #onLeave = ({ id }: { service: string; id: string }) => this.#suspects.delete(id);

  constructor(options: GatewayOptions = {}) {
    const d = DEFAULT_GATEWAY_OPTIONS;
    const limits = { ...DEFAULT_GATEWAY_LIMITS, ...definedOnly(options.limits ?? {}) };
    for (const [k, v] of Object.entries(limits)) {
      if (typeof v !== "number" || !Number.isInteger(v) || v < (k === "maxAttempts" ? 1 : 0)) {
        throw new ValidationError(`invalid gateway limit ${k}: expected a non-negative integer`, {
          code: ErrorCode.INVALID_OPTIONS,
        });
      }
    }
    if (limits.headersTimeoutMs > limits.requestTimeoutMs && limits.requestTimeoutMs > 0) {
      throw new ValidationError("limits.headersTimeoutMs must not exceed limits.requestTimeoutMs", {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    const port = options.port ?? d.port;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new ValidationError(`invalid gateway port ${String(port)}`, { code: ErrorCode.INVALID_OPTIONS });
    }
    this.#o = {
      port,
      host: options.host ?? d.host,
      routesRefreshMs: options.routesRefreshMs ?? d.routesRefreshMs,
      limits,
    };
    this.#logger = options.logger ?? silentLogger;
    // Without a forwarder of its own, the gateway calls the route's handler over redmesh RPC
    // (`svc.route(pattern, handler)` on the service side).
    this.#rpc =
      options.rpc ??
      (async (target, request, { timeoutMs, signal }) => {
        const target_ = target.instanceId ? `${target.instanceId}@${target.service}` : target.service;
        const out = await this.service.call<HttpRouteResponse>(target_, HTTP_ROUTE_METHOD, request, {
          timeout: timeoutMs,
          signal,
        });
        const res: GatewayRpcResponse = { status: out?.status ?? 200 };
        if (out?.headers) res.headers = out.headers;
        if (out?.body !== undefined) res.body = out.body;
        return res;
      });
    if (options.pick && options.balancer) {
      throw new ValidationError("give either `pick` or `balancer`, not both", {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    this.#pick = options.pick ?? createRoundRobinPicker();
    // Default: the balancer in round-robin (per-instance circuit breakers and outstanding counts);
    // a `pick` function given instead is used as is.
    this.#ownBalancer =
      options.balancer || options.pick
        ? undefined
        : createBalancer({ strategy: "round-robin", logger: this.#logger });
    this.#balancer = options.balancer ?? this.#ownBalancer;
    this.#cors = options.cors ? new CorsPolicy(options.cors) : undefined;
    try {
      this.#limiter = options.rateLimit ? new TokenBucketLimiter(options.rateLimit) : undefined;
    } catch (err) {
      throw new ValidationError(`invalid rateLimit: ${(err as Error).message}`, {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    this.service = createService({
      name: options.name ?? d.name,
      redis: options.redis ?? "redis://127.0.0.1:6379",
      namespace: options.namespace ?? d.namespace,
      reconcileMs: options.reconcileMs ?? d.reconcileMs,
      logger: this.#logger,
    });
    this.#dashboard = options.dashboard
      ? createDashboard({
          ...(options.dashboard === true ? {} : options.dashboard),
          redis: this.service.redis,
          keys: this.service.keys,
          logger: this.#logger,
        })
      : undefined;
    this.#server = createServer({
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // Node checks header/request timeouts on this interval (30 s by default, too coarse for 408s).
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(limits.headersTimeoutMs / 4))),
    });
    this.#ws = new WsBridge({
      service: this.service,
      maxPayloadBytes: limits.wsMaxPayloadBytes,
      pingMs: limits.wsPingMs,
      metrics: this.metrics,
      logger: this.#logger,
      instances: (svc) => this.#candidates(svc),
      pick: (svc, c) => this.#choose(svc, c, new Set()),
      evict: (svc, id) => this.service.registry.events.evict(svc, id),
    });
    this.#server.on("request", (req, res) => this.#handle(req, res));
    this.#server.on("upgrade", (req, socket, head) => this.#upgrade(req, socket, head));
    this.#server.on("connection", (socket: Socket) => {
      this.#sockets.add(socket);
      socket.once("close", () => this.#sockets.delete(socket));
    });
    this.#server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
      // With a listener installed Node leaves the answer to us: 408 for header/request timeouts, 431 for
      // oversized headers, a plain 400 (nothing echoed back) for anything else malformed.
      if (!socket.writable) return socket.destroy();
      if (err.code === "ERR_HTTP_REQUEST_TIMEOUT") {
        socket.end("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
        return;
      }
      if (err.code === "HPE_HEADER_OVERFLOW") {
        socket.end("HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\n\r\n");
        return;
      }
      socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
    });
  }

  /** Current state. */
  get state(): GatewayStateValue {
    return this.#state;
  }

  /** The port listened on (the real one when `port: 0`), or 0 before `start()`. */
  get port(): number {
    const a = this.#server.address() as AddressInfo | null;
    return a?.port ?? 0;
  }

  /** `http://host:port` of the running gateway. */
  get url(): string {
    const h = this.#o.host.includes(":") ? `[${this.#o.host}]` : this.#o.host;
    return `http://${h}:${this.port}`;
  }

  /** Requests being handled now. */
  get inFlight(): number {
    return this.#work.count;
  }

  /** The current route table (rebuilt on registry changes). */
  routes(): RouteEntry[] {
    return this.#table.entries();
  }

  /** Open WebSocket connections. */
  get webSockets(): number {
    return this.#ws.size;
  }

  /** Start the gateway's service instance, read the routes, subscribe, listen. */
  async start(): Promise<void> {
    if (this.#state !== GatewayState.IDLE) {
      throw new StateError(ErrorCode.ALREADY_STARTED, `gateway was already started (state: ${this.#state})`);
    }
    this.#state = GatewayState.STARTING;
    try {
      await this.service.start();
      const events = this.service.registry.events;
      events.on("event", this.#onRegistryEvent);
      events.on("leave", this.#onLeave);
      this.#unwatchBalancer = this.#ownBalancer?.watch(events);
      await this.#refresh();
      await this.#ws.start();
      await this.#dashboard?.start();
      this.#server.listen(this.#o.port, this.#o.host);
      await Promise.race([
        once(this.#server, "listening"),
        once(this.#server, "error").then(([err]) => Promise.reject(err)),
      ]);
    } catch (err) {
      this.#state = GatewayState.STOPPING;
      await this.#release();
      this.#state = GatewayState.STOPPED;
      throw err;
    }
    this.#state = GatewayState.RUNNING;
    this.#refreshTimer = setInterval(() => this.#scheduleRefresh(), this.#o.routesRefreshMs);
    this.#refreshTimer.unref();
    this.#logger.info({ url: this.url }, "gateway listening");
  }

  /**
   * Drain and close, in the order of the module comment. Idempotent (every call returns the same
   * promise); never rejects.
   */
  stop(): Promise<void> {
    if (!this.#stopping) this.#stopping = this.#doStop();
    return this.#stopping;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  async #doStop(): Promise<void> {
    if (this.#state === GatewayState.IDLE) {
      this.#state = GatewayState.STOPPED;
      return;
    }
    this.#state = GatewayState.STOPPING;
    const grace = this.#o.limits.stopGraceMs;
    // 1. Stop accepting; idle keep-alive connections go now, busy ones after their response.
    const closed = this.#server.listening
      ? new Promise<void>((resolve) => this.#server.close(() => resolve()))
      : Promise.resolve();
    this.#server.closeIdleConnections();
    // 2. WebSockets are not "requests": close them explicitly with 1001; the dashboard ends its
    //    event streams (they never finish on their own).
    await this.#ws.stop(grace).catch(() => undefined);
    await this.#dashboard?.stop().catch(() => undefined);
    // 3. In-flight requests get the grace period, then whatever is left is cut.
    await this.#waitIdle(grace);
    this.#server.closeAllConnections();
    for (const s of this.#sockets) s.destroy();
    await closed;
    await this.#release();
    this.#state = GatewayState.STOPPED;
    this.#logger.info({}, "gateway stopped");
  }

  /** Close pools, timers, subscriptions and the service (shared by stop and a failed start). */
  async #release(): Promise<void> {
    clearInterval(this.#refreshTimer);
    this.#refreshTimer = undefined;
    const events = this.service.registry.events;
    events.off("event", this.#onRegistryEvent);
    events.off("leave", this.#onLeave);
    this.#unwatchBalancer?.();
    // Graceful close waits for requests still queued on a pool (a client that left while its upstream
    // hangs); bounded by the grace period, then destroyed.
    const grace = this.#o.limits.stopGraceMs;
    await Promise.all(
      [...this.#pools.values()].map(async (p) => {
        await settleWithin(p.close(), grace);
        if (!p.closed) await p.destroy().catch(() => undefined);
      }),
    );
    this.#pools.clear();
    await this.#refreshing?.catch(() => undefined);
    await this.service.stop();
  }

  async #waitIdle(timeoutMs: number): Promise<void> {
    if (!(await this.#work.whenIdle(timeoutMs)))
      this.#logger.warn(
        { inFlight: this.#work.count },
        "gateway stop grace period ended with requests in flight",
      );
  }

  // ---- route table ----

  #scheduleRefresh(): void {
    if (this.#state !== GatewayState.RUNNING && this.#state !== GatewayState.STARTING) return;
    if (this.#refreshing) {
      this.#refreshAgain = true;
      return;
    }
    this.#refresh().catch((err: unknown) => {
      this.#logger.warn({ err }, "gateway route refresh failed; keeping the previous table");
    });
  }

  /** Re-read every service's routes and swap the table in one step. */
  #refresh(): Promise<void> {
    const run = async () => {
      do {
        this.#refreshAgain = false;
        const routes = await this.service.registry.routes();
        this.#table = buildRouteTable(routes);
      } while (this.#refreshAgain);
    };
    this.#refreshing = run().finally(() => {
      this.#refreshing = undefined;
    });
    return this.#refreshing;
  }

  // ---- instances ----

  /** Live, non-draining instances, with recently failed ones moved out unless nothing else is left. */
  async #candidates(service: string): Promise<Instance[]> {
    const events = this.service.registry.events;
    const all = events.cachedInstances(service) ?? (await events.instances(service));
    const live = all.filter((i) => i.status !== InstanceStatus.DRAINING);
    if (this.#suspects.size === 0) return live;
    const now = Date.now();
    const healthy = live.filter((i) => {
      const until = this.#suspects.get(i.id);
      if (until === undefined) return true;
      if (until < now) {
        this.#suspects.delete(i.id);
        return true;
      }
      return false;
    });
    return healthy.length > 0 ? healthy : live;
  }

  /** One instance among candidates, through the balancer when there is one, else the picker. */
  #choose(service: string, candidates: Instance[], tried: ReadonlySet<string>): Instance | undefined {
    if (this.#balancer) return this.#balancer.pick(candidates, { service, exclude: tried });
    return this.#pick(service, candidates);
  }

  #pool(origin: string): Pool {
    let p = this.#pools.get(origin);
    if (!p) {
      const l = this.#o.limits;
      p = new Pool(origin, {
        connections: l.upstreamConnections,
        keepAliveTimeout: 4000,
        headersTimeout: l.upstreamTimeoutMs,
        bodyTimeout: l.upstreamTimeoutMs,
        connectTimeout: Math.min(l.upstreamTimeoutMs || 10_000, 10_000),
      });
      this.#pools.set(origin, p);
    }
    return p;
  }

  // ---- requests ----

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refusal = this.#upgradeRefusal(req);
    if (refusal) socket.end(`HTTP/1.1 ${refusal}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else this.#ws.handleUpgrade(req, socket, head);
  }

  /** Status line to refuse a WebSocket upgrade with, or `undefined` to accept it. */
  #upgradeRefusal(req: IncomingMessage): string | undefined {
    if (this.#state !== GatewayState.RUNNING) return "503 Service Unavailable";
    const norm = normalizePath(req.url ?? "");
    if ("problem" in norm || norm.path !== "/ws") return "404 Not Found";
    const origin = header(req, "origin");
    if (this.#cors && origin !== undefined && !this.#cors.allows(origin)) return "403 Forbidden";
    if (this.#limiter && !this.#limiter.take(clientIp(req)).ok) return "429 Too Many Requests";
    return undefined;
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const t0 = performance.now();
    const endWork = this.#work.begin();
    this.metrics.inFlight.inc();
    const method = (req.method ?? "GET").toUpperCase();
    const reqIdIn = req.headers[REQUEST_ID_HEADER];
    const requestId = isValidRequestId(reqIdIn) ? reqIdIn : randomUUID();
    const ctx: RequestContext = { service: NO_SERVICE, requestId, method };
    res.setHeader(REQUEST_ID_HEADER, requestId);
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      endWork();
      this.metrics.inFlight.dec();
      const status = res.headersSent ? res.statusCode : 499;
      this.metrics.requests.inc({ service: ctx.service, method, status: String(status) });
      if (ctx.service !== NO_SERVICE) {
        this.metrics.latency.observe({ service: ctx.service }, (performance.now() - t0) / 1000);
      }
    };
    res.once("finish", finish);
    res.once("close", finish);
    const url = req.url ?? "";
    if (this.#dashboard && /^\/dashboard(?:[/?#]|$)/.test(url)) {
      // The dashboard answers by itself (pages, and event streams that stay open); it checks its paths.
      this.#dashboard.handler(req, res);
      return;
    }
    this.#route(req, res, ctx)
      .then(() => {
        // Safety net: every path of #route answers before resolving; a request must never hang.
        if (!res.headersSent && !res.destroyed) {
          this.#logger.error({ requestId }, "gateway route ended without a response");
          sendError(res, GatewayErrorCode.UPSTREAM, "the request could not be completed");
        }
      })
      .catch((err: unknown) => {
        // Discovery needed Redis (a service not cached yet) and Redis is down: say so, without details.
        if (err instanceof RedmeshError && err.code === ErrorCode.REDIS_UNAVAILABLE) {
          sendError(
            res,
            GatewayErrorCode.REGISTRY_UNAVAILABLE,
            "the service registry is unreachable; retry later",
          );
          return;
        }
        this.#logger.error({ err, requestId }, "gateway request failed unexpectedly");
        sendError(res, GatewayErrorCode.UPSTREAM, "the request could not be completed");
      });
  }

  async #route(req: IncomingMessage, res: ServerResponse, ctx: RequestContext): Promise<void> {
    const origin = header(req, "origin");
    const cors = this.#cors?.responseHeaders(origin) ?? {};
    for (const [k, v] of Object.entries(cors)) res.setHeader(k, v);
    if (this.#state !== GatewayState.RUNNING) {
      res.shouldKeepAlive = false;
      return sendError(res, GatewayErrorCode.SHUTTING_DOWN, "the gateway is shutting down");
    }
    if (this.#cors && CorsPolicy.isPreflight(req.method, req.headers)) {
      const h = this.#cors.preflightHeaders(origin, req.headers);
      if (!h) {
        return sendError(res, GatewayErrorCode.FORBIDDEN_ORIGIN, "this origin or method is not allowed");
      }
      res.writeHead(204, h);
      res.end();
      return;
    }
    const norm = normalizePath(req.url ?? "");
    if ("problem" in norm) {
      res.shouldKeepAlive = false;
      return sendError(
        res,
        GatewayErrorCode.BAD_PATH,
        `the request path is not acceptable (${norm.problem})`,
      );
    }
    if (ctx.method === "GET" || ctx.method === "HEAD") {
      if (norm.path === "/healthz") return this.#healthz(res);
      if (norm.path === "/metrics") return this.#serveMetrics(res);
    }
    if (this.#limiter) {
      const d = this.#limiter.take(clientIp(req));
      if (!d.ok) {
        return sendError(res, GatewayErrorCode.RATE_LIMITED, "too many requests; slow down", {
          "retry-after": String(Math.max(1, Math.ceil(d.retryAfterMs / 1000))),
        });
      }
    }
    const match = this.#table.match(ctx.method, norm.segments);
    if (match.kind === "not-found") {
      return sendError(res, GatewayErrorCode.NOT_FOUND, `no service answers ${ctx.method} ${norm.path}`);
    }
    if (match.kind === "method-not-allowed") {
      return sendError(res, GatewayErrorCode.METHOD_NOT_ALLOWED, `${ctx.method} is not allowed here`, {
        allow: match.allow.join(", "),
      });
    }
    const declared = Number(req.headers["content-length"] ?? 0);
    if (declared > this.#o.limits.maxBodyBytes) {
      res.shouldKeepAlive = false;
      return sendError(res, GatewayErrorCode.PAYLOAD_TOO_LARGE, tooLargeMessage(this.#o.limits.maxBodyBytes));
    }
    const hasBody = declared > 0 || req.headers["transfer-encoding"] !== undefined;
    const retryable = IDEMPOTENT.has(ctx.method) && !hasBody;
    const fwd = {
      path: norm.query ? `${norm.path}?${norm.query}` : norm.path,
      headers: forwardHeaders(req.headers, {
        ip: clientIp(req),
        proto: "http",
        host: header(req, "host"),
        requestId: ctx.requestId,
      }),
    };
    const tried = new Set<string>();
    for (let attempt = 0; attempt < this.#o.limits.maxAttempts; attempt++) {
      let target: Instance | undefined;
      try {
        for (const svc of match.route.services) {
          const candidates = (await this.#candidates(svc)).filter((i) => !tried.has(i.id));
          target = candidates.length > 0 ? this.#choose(svc, candidates, tried) : undefined;
          if (target) break;
        }
      } catch (err) {
        if (err instanceof RedmeshError && err.code === ErrorCode.CIRCUIT_OPEN) {
          if (ctx.service === NO_SERVICE) ctx.service = match.route.services[0] ?? NO_SERVICE;
          return sendError(
            res,
            GatewayErrorCode.CIRCUIT_OPEN,
            `service "${ctx.service}" is failing; retry later`,
          );
        }
        throw err;
      }
      if (!target) break;
      tried.add(target.id);
      ctx.service = target.service;
      const node = target.node;
      const t0 = performance.now();
      this.#balancer?.onStart?.(target.service, target.id);
      let result: Attempt = { outcome: "fail" };
      try {
        result =
          node?.ip && node.port > 0
            ? await this.#forwardHttp(
                req,
                res,
                ctx,
                target,
                `http://${hostPort(node.ip, node.port)}`,
                fwd,
                retryable,
              )
            : await this.#forwardRpc(
                req,
                res,
                ctx,
                target,
                norm,
                match.params,
                fwd.headers,
                match.route.pattern,
              );
      } finally {
        // 5xx answers count against the instance too (they drive the balancer's circuit breaker).
        const ok = result.error === undefined && !(result.outcome === "ok" && res.statusCode >= 500);
        const outcome: { ok: boolean; latencyMs: number; error?: unknown } = {
          ok,
          latencyMs: performance.now() - t0,
        };
        if (result.error !== undefined) outcome.error = result.error;
        this.#balancer?.onEnd?.(target.service, target.id, outcome);
      }
      if (result.outcome !== "retry") return;
    }
    if (ctx.service === NO_SERVICE) ctx.service = match.route.services[0] ?? NO_SERVICE;
    // Nothing live, or every instance tried refused the connection.
    sendError(
      res,
      GatewayErrorCode.NO_INSTANCE,
      `no live instance of service "${ctx.service}" could take the request`,
    );
  }

  async #forwardHttp(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: RequestContext,
    target: Instance,
    origin: string,
    fwd: { path: string; headers: Record<string, string | string[]> },
    retryable: boolean,
  ): Promise<Attempt> {
    const limits = this.#o.limits;
    // No AbortController per request (measured: its signal plumbing cost ~6% of the gateway's CPU):
    // the pool's headersTimeout gives the 504, its bodyTimeout cuts a stalled body, and a client that
    // leaves makes the response pipeline fail, which destroys the upstream body.
    let tooLarge = false;
    let body: Transform | undefined;
    if (Number(req.headers["content-length"] ?? 0) > 0 || req.headers["transfer-encoding"] !== undefined) {
      let seen = 0;
      body = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          seen += chunk.length;
          if (seen > limits.maxBodyBytes) {
            tooLarge = true;
            return cb(new BodyTooLarge("body too large"));
          }
          cb(null, chunk);
        },
      });
      req.pipe(body);
      req.once("error", (err) => body?.destroy(err));
    }
    try {
      // `stream()` writes the upstream body straight into the response (no intermediate Readable and
      // pipeline per request); undici ends `res` on success and destroys it on error or client exit.
      await this.#pool(origin).stream(
        { path: fwd.path, method: ctx.method as "GET", headers: fwd.headers, body: body ?? null },
        ({ statusCode, headers }) => {
          const out = stripHopByHop(headers as Record<string, string | string[] | undefined>);
          delete out[REQUEST_ID_HEADER];
          for (const [k, v] of Object.entries(out)) res.setHeader(k, v);
          res.writeHead(statusCode);
          return res;
        },
      );
      return { outcome: "ok" };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? "";
      if (tooLarge) {
        res.shouldKeepAlive = false;
        sendError(res, GatewayErrorCode.PAYLOAD_TOO_LARGE, tooLargeMessage(limits.maxBodyBytes));
        return { outcome: "fail" };
      }
      if (res.headersSent) {
        // Failed mid-body: nothing can be retried or reported in HTTP/1.1; cut the response.
        // A client that left shows up as an aborted or prematurely closed writable: not an upstream error.
        if (!CLIENT_GONE_ERRORS.has(code)) {
          const kind = code === "UND_ERR_BODY_TIMEOUT" ? "timeout" : "reset";
          this.metrics.upstreamErrors.inc({ service: target.service, kind });
        }
        res.destroy();
        return CLIENT_GONE_ERRORS.has(code) ? { outcome: "fail" } : { outcome: "fail", error: err };
      }
      if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
        this.metrics.upstreamErrors.inc({ service: target.service, kind: "timeout" });
        sendError(res, GatewayErrorCode.TIMEOUT, `service "${target.service}" did not answer in time`);
        return { outcome: "fail", error: err };
      }
      // The client left (IncomingMessage.destroyed is no signal: it is set once a body was read).
      if (res.destroyed) return { outcome: "fail" };
      const connectFailed =
        CONNECT_ERRORS.has(code) || aggregateCodes(err).some((c) => CONNECT_ERRORS.has(c));
      // A keep-alive socket closed under us before any response byte: safe to repeat only when idempotent.
      const closedEarly = code === "UND_ERR_SOCKET" || code === "ECONNRESET";
      this.metrics.upstreamErrors.inc({ service: target.service, kind: connectFailed ? "connect" : "reset" });
      if (connectFailed) {
        this.#suspects.set(target.id, Date.now() + SUSPECT_MS);
        this.service.registry.events.evict(target.service, target.id);
      }
      this.#logger.debug({ code, service: target.service, instance: target.id }, "upstream attempt failed");
      if ((connectFailed || closedEarly) && retryable) return { outcome: "retry", error: err };
      sendError(res, GatewayErrorCode.UPSTREAM, `service "${target.service}" failed to answer`);
      return { outcome: "fail", error: err };
    }
  }

  async #forwardRpc(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: RequestContext,
    target: Instance,
    norm: { path: string; query: string },
    params: Record<string, string>,
    headers: Record<string, string | string[]>,
    route: string,
  ): Promise<Attempt> {
    if (!this.#rpc) {
      sendError(
        res,
        GatewayErrorCode.RPC_UNAVAILABLE,
        `service "${target.service}" has no HTTP address and this gateway has no RPC forwarder`,
      );
      return { outcome: "fail" };
    }
    const limits = this.#o.limits;
    let raw: Buffer;
    try {
      raw = await readBody(req, limits.maxBodyBytes);
    } catch (err) {
      res.shouldKeepAlive = false;
      if (err instanceof BodyTooLarge)
        sendError(res, GatewayErrorCode.PAYLOAD_TOO_LARGE, tooLargeMessage(limits.maxBodyBytes));
      else sendError(res, GatewayErrorCode.BAD_REQUEST, "the request body could not be read");
      return { outcome: "fail" };
    }
    let body: unknown;
    if (raw.length > 0) {
      const text = raw.toString("utf8");
      if (/\bjson\b/i.test(String(req.headers["content-type"] ?? ""))) {
        try {
          body = safeJsonParse(text);
        } catch {
          sendError(res, GatewayErrorCode.BAD_REQUEST, "the request body is not valid JSON");
          return { outcome: "fail" };
        }
      } else body = text;
    }
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), limits.upstreamTimeoutMs);
    const onClientGone = () => ac.abort();
    res.once("close", onClientGone);
    try {
      const out = await this.#rpc(
        { service: target.service, instanceId: target.id },
        { route, method: ctx.method, path: norm.path, params, query: parseQuery(norm.query), headers, body },
        { timeoutMs: limits.upstreamTimeoutMs, signal: ac.signal },
      );
      if (res.destroyed) return { outcome: "fail" };
      const h = stripHopByHop(out.headers ?? {});
      delete h["content-length"];
      let payload: Buffer | undefined;
      if (out.body === undefined || out.body === null) payload = undefined;
      else if (Buffer.isBuffer(out.body)) payload = out.body;
      else if (typeof out.body === "string") payload = Buffer.from(out.body);
      else {
        payload = Buffer.from(JSON.stringify(out.body));
        if (!Object.keys(h).some((k) => k.toLowerCase() === "content-type"))
          h["content-type"] = "application/json; charset=utf-8";
      }
      const status =
        Number.isInteger(out.status) && out.status >= 200 && out.status <= 599 ? out.status : 502;
      for (const [k, v] of Object.entries(h)) res.setHeader(k, v);
      res.setHeader("content-length", payload?.length ?? 0);
      res.writeHead(status);
      res.end(ctx.method === "HEAD" ? undefined : payload);
      return { outcome: "ok" };
    } catch (err) {
      const code = err instanceof RedmeshError ? err.code : "";
      if (ac.signal.aborted && res.destroyed) return { outcome: "fail" };
      if (code === ErrorCode.TIMEOUT || ac.signal.aborted) {
        this.metrics.upstreamErrors.inc({ service: target.service, kind: "timeout" });
        sendError(res, GatewayErrorCode.TIMEOUT, `service "${target.service}" did not answer in time`);
      } else if (code === ErrorCode.NO_HANDLER) {
        sendError(
          res,
          GatewayErrorCode.RPC_UNAVAILABLE,
          `service "${target.service}" has no HTTP address and answers no routes over RPC`,
        );
      } else if (code === ErrorCode.VALIDATION) {
        // The service rejected the request's content: the client's problem, and the message is for it.
        sendError(res, GatewayErrorCode.BAD_REQUEST, (err as RedmeshError).message);
      } else if (code === ErrorCode.NO_INSTANCE || code === ErrorCode.INSTANCE_LOST) {
        this.metrics.upstreamErrors.inc({ service: target.service, kind: "rpc" });
        sendError(res, GatewayErrorCode.NO_INSTANCE, `no live instance of service "${target.service}"`);
      } else {
        this.metrics.upstreamErrors.inc({ service: target.service, kind: "rpc" });
        sendError(res, GatewayErrorCode.UPSTREAM, `service "${target.service}" failed to answer`);
      }
      return { outcome: "fail", error: err };
    } finally {
      clearTimeout(timer);
      res.off("close", onClientGone);
    }
  }

  async #healthz(res: ServerResponse): Promise<void> {
    let up = false;
    try {
      up = (await this.service.redis.command<string>(["PING"], { timeoutMs: 1000 })) === "PONG";
    } catch {
      up = false;
    }
    const body = JSON.stringify({
      status: up ? "ok" : "degraded",
      registry: up ? "reachable" : "unreachable",
      routes: this.#table.size,
      webSockets: this.#ws.size,
    });
    res.writeHead(up ? 200 : 503, {
      "content-type": "application/json; charset=utf-8",
      "cache-control": "no-store",
      "content-length": Buffer.byteLength(body),
    });
    res.end(body);
  }

  async #serveMetrics(res: ServerResponse): Promise<void> {
    const text = await this.metrics.registry.metrics();
    res.writeHead(200, {
      "content-type": this.metrics.registry.contentType,
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
  }
}

interface RequestContext {
  service: string;
  requestId: string;
  method: string;
}

function definedOnly<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function clientIp(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? "unknown";
}

function hostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function tooLargeMessage(max: number): string {
  return `the request body exceeds the ${max}-byte limit`;
}

/** Codes inside an AggregateError (happy-eyeballs connect failures report several). */
function aggregateCodes(err: unknown): string[] {
  const cause = (err as { cause?: unknown }).cause;
  const errors =
    (err as { errors?: unknown[] }).errors ?? (cause as { errors?: unknown[] } | undefined)?.errors;
  const out: string[] = [];
  if (cause && typeof (cause as NodeJS.ErrnoException).code === "string")
    out.push((cause as NodeJS.ErrnoException).code as string);
  if (Array.isArray(errors))
    for (const e of errors)
      if (typeof (e as NodeJS.ErrnoException).code === "string")
        out.push((e as NodeJS.ErrnoException).code as string);
  return out;
}

function readBody(req: IncomingMessage, max: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on("data", (c: Buffer) => {
      n += c.length;
      if (n > max) {
        req.removeAllListeners("data");
        req.resume();
        reject(new BodyTooLarge("body too large"));
        return;
      }
      chunks.push(c);
    });
    req.once("end", () => resolve(Buffer.concat(chunks)));
    req.once("error", reject);
  });
}

function parseQuery(query: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = Object.create(null);
  if (!query) return out;
  for (const [k, v] of new URLSearchParams(query)) {
    const prev = out[k];
    if (prev === undefined) out[k] = v;
    else if (Array.isArray(prev)) prev.push(v);
    else out[k] = [prev, v];
  }
  return out;
}

/** Create a gateway (no I/O until `start()`). */
export function createGateway(options: GatewayOptions = {}): Gateway {
  return new Gateway(options);
}

/**
 * Create and start a gateway: the hook `redmesh gateway` calls. The caller owns signals and calls
 * `stop()` (the library installs no signal handlers).
 */
export async function runGateway(options: GatewayOptions = {}): Promise<Gateway> {
  const gw = createGateway(options);
  await gw.start();
  return gw;
}
