/**
 * The API gateway: `METHOD /path` → a live instance of the service that registered a matching route.
 *
 * Per request: CORS preflight → path normalisation (400) → the gateway's own endpoints (`/healthz`,
 * `/metrics`) → rate limit (429) → route match (404/405) → body limit (413) → the balancing loop
 * (`forwarder.ts`): pick an instance, forward over HTTP (`upstream-http.ts`) when it advertises
 * `ip`+`port`, otherwise through the {@link GatewayRpcInvoker} seam (`upstream-rpc.ts`), and try
 * another instance when a repeatable request found its instance gone; failures map to 502/503/504.
 * Options and their validation live in `options.ts`.
 *
 * The gateway is itself a redmesh service instance (name `gateway` by default): that gives it
 * discovery, a registry entry, and an instance channel on which replies to WebSocket clients arrive.
 *
 * Its parts form one {@link StepList}, brought up in order by `start()` and taken down in reverse by
 * `stop()` and by a start that failed half-way. Stop order (also in docs/gateway.md): stop accepting
 * connections and close idle keep-alive ones → close WebSockets with 1001 → stop the dashboard → wait
 * for in-flight requests (bounded by `stopGraceMs`), then cut what is left → close the upstream pools →
 * stop the route refresh and registry listeners → deregister and close Redis. Nothing (timer, socket)
 * is left. `stop({ force: true })` waits for nothing: WebSockets are terminated, client connections
 * and upstream pools destroyed at once.
 *
 * @module
 */

import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import type { Duplex } from "node:stream";
import { InFlight } from "../async.js";
import { createDashboard, type Dashboard } from "../dashboard/index.js";
import { ErrorCode, RedmeshError, ValidationError } from "../errors.js";
import {
  Lifecycle,
  LifeState,
  type LifeStateValue,
  StepList,
  type StopContext,
  type StopOptions,
} from "../lifecycle.js";
import { type Logger, silentLogger } from "../logger.js";
import type { RegistryEvent } from "../registry/index.js";
import { createService, type Service } from "../service.js";
import { CorsPolicy } from "./cors.js";
import { GatewayErrorCode, sendError } from "./errors.js";
import { Forwarder, type RequestContext } from "./forwarder.js";
import { forwardHeaders, isValidRequestId, REQUEST_ID_HEADER } from "./headers.js";
import { GatewayMetrics, NO_SERVICE } from "./metrics.js";
import {
  DEFAULT_GATEWAY_OPTIONS,
  type GatewayOptions,
  type ResolvedGatewayOptions,
  resolveGatewayOptions,
} from "./options.js";
import { normalizePath } from "./path.js";
import { TokenBucketLimiter } from "./rate-limit.js";
import { buildRouteTable, type RouteEntry, RouteTable } from "./router.js";
import { tooLargeMessage } from "./upstream.js";
import { WsBridge } from "./ws-bridge.js";

/** Life-cycle states of a gateway: the ones of every redmesh object ({@link LifeState}). */
export const GatewayState = LifeState;
/** Union of gateway states. */
export type GatewayStateValue = LifeStateValue;

/** Methods that may be retried on another instance (RFC 9110 §9.2.2). */
const IDEMPOTENT = new Set(["GET", "HEAD", "OPTIONS", "PUT", "DELETE", "TRACE"]);

/**
 * The gateway. Create with {@link createGateway}; `start()` listens, `stop()` drains and closes
 * (`stop({ force: true })` without waiting), `closed()` resolves once it is down.
 */
export class Gateway {
  /** Metrics (also served on `/metrics`). */
  readonly metrics = new GatewayMetrics();
  /** The gateway's own service instance (discovery, registry entry, Redis connection). */
  readonly service: Service;
  readonly #o: ResolvedGatewayOptions;
  readonly #logger: Logger;
  readonly #life = new Lifecycle("gateway");
  readonly #steps: StepList;
  readonly #forwarder: Forwarder;
  readonly #dashboard: Dashboard | undefined;
  #unwatchBalancer: (() => void) | undefined;
  readonly #cors: CorsPolicy | undefined;
  readonly #limiter: TokenBucketLimiter | undefined;
  readonly #server: Server;
  /** Resolves when the server has closed (set when it stops accepting). */
  #serverClosed: Promise<void> | undefined;
  readonly #ws: WsBridge;
  readonly #sockets = new Set<Socket>();
  #table = new RouteTable();
  readonly #work = new InFlight();
  #refreshTimer: NodeJS.Timeout | undefined;
  #refreshing: Promise<void> | undefined;
  #refreshAgain = false;
  // Any service's join or routes change can add routes (even a service this gateway never cached).
  readonly #onRegistryEvent = (ev: RegistryEvent) => {
    if (ev.t === "join" || ev.t === "routes") this.#scheduleRefresh();
  };
  readonly #onLeave = ({ id }: { service: string; id: string }) => this.#forwarder.forget(id);

  constructor(options: GatewayOptions = {}) {
    const d = DEFAULT_GATEWAY_OPTIONS;
    this.#o = resolveGatewayOptions(options);
    const limits = this.#o.limits;
    this.#logger = options.logger ?? silentLogger;
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
    this.#forwarder = new Forwarder({
      service: this.service,
      limits: this.#o.limits,
      pick: options.pick,
      balancer: options.balancer,
      rpc: options.rpc,
      metrics: this.metrics,
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
      instances: (svc) => this.#forwarder.candidates(svc),
      loop: this.#forwarder.messages,
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
    const grace = limits.stopGraceMs;
    // Up in this order; down in reverse, which is the stop order of the module comment.
    this.#steps = new StepList(
      [
        {
          name: "service",
          up: () => this.service.start(),
          down: (ctx) => this.service.stop({ force: ctx.force }),
        },
        { name: "route table", up: () => this.#watchRoutes(), down: () => this.#unwatchRoutes() },
        { name: "upstream pools", down: (ctx) => this.#forwarder.close(grace, ctx.signal) },
        { name: "in-flight requests", down: (ctx) => this.#drain(ctx) },
        {
          name: "dashboard",
          up: () => this.#dashboard?.start(),
          // The dashboard ends its event streams (they never finish on their own).
          down: (ctx) => this.#dashboard?.stop({ force: ctx.force }),
        },
        {
          name: "websockets",
          up: () => this.#ws.start(),
          // WebSockets are not "requests": they are closed explicitly, with 1001.
          down: (ctx) => this.#ws.stop(grace, ctx.signal),
        },
        { name: "listener", up: () => this.#listen(), down: () => this.#stopAccepting() },
      ],
      this.#logger,
    );
  }

  /** Current state. */
  get state(): GatewayStateValue {
    return this.#life.state;
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

  /**
   * Start the gateway's service instance, read the routes, start the dashboard, subscribe, listen. A
   * failure takes down what came up and rejects; a second call rejects with `ERR_ALREADY_STARTED`.
   */
  async start(): Promise<void> {
    await this.#life.start(
      () => this.#steps.up(),
      (ctx) => this.#steps.down(ctx),
    );
    this.#logger.info({ url: this.url }, "gateway listening");
  }

  /**
   * Drain and close, in the order of the module comment; `{ force: true }` waits for nothing (also
   * cuts short a graceful stop under way). Memoised (every call returns the same promise); never
   * rejects.
   */
  stop(options?: StopOptions): Promise<void> {
    return this.#life.stop(async (ctx) => {
      await this.#steps.down(ctx);
      if (ctx.wasRunning) this.#logger.info({}, "gateway stopped");
    }, options);
  }

  /** Resolves once the gateway is down: with the error of a failed start, `undefined` after `stop()`. */
  closed(): Promise<Error | undefined> {
    return this.#life.closed();
  }

  /** Same as `stop()`, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  // ---- life-cycle steps ----

  async #listen(): Promise<void> {
    this.#server.listen(this.#o.port, this.#o.host);
    await Promise.race([
      once(this.#server, "listening"),
      once(this.#server, "error").then(([err]) => Promise.reject(err)),
    ]);
  }

  /** Stop accepting; idle keep-alive connections go now, busy ones after their response. */
  #stopAccepting(): void {
    this.#serverClosed = this.#server.listening
      ? new Promise<void>((resolve) => this.#server.close(() => resolve()))
      : Promise.resolve();
    this.#server.closeIdleConnections();
  }

  /** In-flight requests get the grace period (none when forced), then whatever is left is cut. */
  async #drain(ctx: StopContext): Promise<void> {
    if (!(await this.#work.whenIdle(this.#o.limits.stopGraceMs, ctx.signal))) {
      this.#logger.warn(
        { inFlight: this.#work.count },
        ctx.force
          ? "gateway stop forced with requests in flight"
          : "gateway stop grace period ended with requests in flight",
      );
    }
    this.#server.closeAllConnections();
    for (const s of this.#sockets) s.destroy();
    await this.#serverClosed;
  }

  // ---- route table ----

  async #watchRoutes(): Promise<void> {
    const events = this.service.registry.events;
    events.on("event", this.#onRegistryEvent);
    events.on("leave", this.#onLeave);
    this.#unwatchBalancer = this.#forwarder.ownBalancer?.watch(events);
    await this.#refresh();
    this.#refreshTimer = setInterval(() => this.#scheduleRefresh(), this.#o.routesRefreshMs);
    this.#refreshTimer.unref();
  }

  async #unwatchRoutes(): Promise<void> {
    clearInterval(this.#refreshTimer);
    this.#refreshTimer = undefined;
    const events = this.service.registry.events;
    events.off("event", this.#onRegistryEvent);
    events.off("leave", this.#onLeave);
    this.#unwatchBalancer?.();
    this.#unwatchBalancer = undefined;
    await this.#refreshing?.catch(() => undefined);
  }

  #scheduleRefresh(): void {
    const state = this.#life.state;
    if (state !== GatewayState.RUNNING && state !== GatewayState.STARTING) return;
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

  // ---- requests ----

  #upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const refusal = this.#upgradeRefusal(req);
    if (refusal) socket.end(`HTTP/1.1 ${refusal}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    else this.#ws.handleUpgrade(req, socket, head);
  }

  /** Status line to refuse a WebSocket upgrade with, or `undefined` to accept it. */
  #upgradeRefusal(req: IncomingMessage): string | undefined {
    if (this.#life.state !== GatewayState.RUNNING) return "503 Service Unavailable";
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
    if (this.#life.state !== GatewayState.RUNNING) {
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
    return this.#forwarder.forward(req, res, ctx, { match, norm, fwd, retryable });
  }

  // ---- the gateway's own endpoints ----

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

function header(req: IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

function clientIp(req: IncomingMessage): string {
  return req.socket.remoteAddress ?? "unknown";
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
