/**
 * The live web dashboard: a static page (plain HTML, CSS and one small ES module) plus a
 * Server-Sent Events stream that pushes what the mesh looks like (services, instances, health,
 * routes, config versions, queue stats) whenever it changes, and a live log tail.
 *
 * Cost model: nothing runs while no page is open. The first SSE client starts the collector (one
 * snapshot every `intervalMs`, sent only when it differs from the last one) and one shared log tail
 * (one extra Redis connection for `XREAD BLOCK`); the last client to leave stops both. Every client
 * filters the shared tail by its own level.
 *
 * Shutdown order (`stop()`): mark stopped (new requests get 503) → end every SSE response → stop the
 * collector timer and the heartbeat → abort the log tail and wait for it → close the HTTP server of
 * `listen()` (and drop its idle keep-alive sockets) → stop discovery → close the Redis connection
 * when the dashboard opened it itself.
 *
 * Read-only: the dashboard never writes to Redis.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { ErrorCode, StateError, ValidationError } from "../errors.js";
import { createKeys, type Keys } from "../keys.js";
import {
  compareEntries,
  compareIds,
  type DuplicableRedis,
  isLogLevel,
  type LogEntry,
  LogLevel,
  queryLogs,
  tailLogs,
} from "../log/index.js";
import { type Logger, silentLogger } from "../logger.js";
import { type QueueRedis, readQueueStats } from "../queue/index.js";
import {
  createRedisConnection,
  isClusterOptions,
  type RedisHandle,
  type RedisOptions,
} from "../redis/index.js";
import { createDiscovery, type Discovery } from "../registry/index.js";
import { collectSnapshot, type DashboardSnapshot, type QueueStatsSource } from "./snapshot.js";
import { SseClient, sseEvent } from "./sse.js";

/** Options of {@link createDashboard}. */
export interface DashboardOptions {
  /**
   * Redis to read: a URL or options (the dashboard opens its own connection and closes it on
   * `stop()`), or an existing connection (shared: left open on `stop()`).
   */
  redis: RedisOptions | DuplicableRedis;
  /** Namespace to show. @default "redmesh" (ignored when `keys` is given) */
  namespace?: string;
  /** Key builder (instead of `namespace`, e.g. for Cluster hash tags). */
  keys?: Keys;
  /** Queue statistics source (the queue module plugs in here). Without it the queue panel says so. */
  queueStats?: QueueStatsSource;
  /** How often the snapshot is re-read while a page is open, in ms. @default 1000 */
  intervalMs?: number;
  /** URL path the dashboard is served under (no trailing slash; "" for the root). @default "/dashboard" */
  basePath?: string;
  /** Most log entries kept for pages that open later (and shown at once). @default 500 */
  logBufferSize?: number;
  /**
   * Unsent bytes a client may have before it counts as congested: its log entries are then dropped
   * (and counted) and snapshots coalesced until its socket drains. @default 1048576 (1 MiB)
   */
  maxBufferedBytes?: number;
  /** A client congested for longer than this is disconnected (its EventSource reconnects). @default 30000 */
  stalledClientMs?: number;
  /** SSE comment sent this often so proxies keep idle streams open, in ms. @default 15000 */
  heartbeatMs?: number;
  /** Also show Hydra instances. @default true when the namespace is "hydra" */
  hydraInterop?: boolean;
  /** Diagnostics. @default silent */
  logger?: Logger;
}

/** Default dashboard settings. */
export const DEFAULT_DASHBOARD_OPTIONS = Object.freeze({
  namespace: "redmesh",
  intervalMs: 1000,
  basePath: "/dashboard",
  logBufferSize: 500,
  maxBufferedBytes: 1_048_576,
  stalledClientMs: 30_000,
  heartbeatMs: 15_000,
});

/** Options of {@link Dashboard.listen}. */
export interface DashboardListenOptions {
  /** TCP port; 0 picks a free one. @default 8090 */
  port?: number;
  /** Interface to bind. The dashboard has no authentication: keep it on loopback. @default "127.0.0.1" */
  host?: string;
}

/** Counters of a running dashboard. */
export interface DashboardStats {
  /** Connected SSE clients. */
  clients: number;
  /** True while the collector and the log tail run (at least one client). */
  active: boolean;
  /** Snapshots read from Redis. */
  collections: number;
  /** Snapshots that differed from the previous one and were pushed. */
  snapshotsPushed: number;
  /** Log entries received from the tail. */
  logEntries: number;
  /** Log entries not sent to congested clients (in total). */
  logsDropped: number;
  /** Clients seen in total. */
  clientsServed: number;
}

const ASSETS: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "style.css": "text/css; charset=utf-8",
  "favicon.svg": "image/svg+xml",
};

// The page loads only its own files; nothing inline, nothing third party, no framing.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Registry events arriving within this many ms are served by one collection. */
const EVENT_COALESCE_MS = 10;

const isConnection = (v: unknown): v is DuplicableRedis =>
  typeof v === "object" && v !== null && typeof (v as { command?: unknown }).command === "function";

function positiveInt(name: string, v: number | undefined, fallback: number, min = 1): number {
  if (v === undefined) return fallback;
  if (!Number.isInteger(v) || v < min) {
    throw new ValidationError(`dashboard: ${name} must be an integer >= ${min}, got ${String(v)}`, {
      code: ErrorCode.INVALID_OPTIONS,
    });
  }
  return v;
}

/** The dashboard. Get one from {@link createDashboard}. */
export class Dashboard {
  readonly #redisOption: RedisOptions | DuplicableRedis;
  readonly #keys: Keys;
  readonly #queueStats: QueueStatsSource | undefined;
  readonly #intervalMs: number;
  readonly #base: string;
  readonly #bufferSize: number;
  readonly #maxBuffered: number;
  readonly #stalledMs: number;
  readonly #heartbeatMs: number;
  readonly #hydra: boolean;
  readonly #logger: Logger;
  #redis: DuplicableRedis | undefined;
  #owned: RedisHandle | undefined;
  /** Discovery of the active period: created by the first client, stopped with the last. */
  #live: { discovery: Discovery; ready: Promise<void> } | undefined;
  #state: "idle" | "starting" | "running" | "stopped" = "idle";
  #starting: Promise<void> | undefined;
  #stopping: Promise<void> | undefined;
  readonly #clients = new Set<SseClient>();
  #collectTimer: NodeJS.Timeout | undefined;
  #heartbeat: NodeJS.Timeout | undefined;
  #collecting: Promise<void> | undefined;
  /** When the pending collection timer fires (epoch ms). */
  #collectDue = 0;
  /** A registry event arrived during a collection: collect again right after it. */
  #again = false;
  #lastJson: string | undefined;
  #tail: { abort: AbortController; done: Promise<void> } | undefined;
  /** Background shutdowns (log tails, discoveries) that stop() waits for. */
  readonly #ending = new Set<Promise<unknown>>();
  #logs: LogEntry[] = [];
  #server: Server | undefined;
  readonly #assets = new Map<string, Promise<Buffer>>();
  readonly #stats = { collections: 0, snapshotsPushed: 0, logEntries: 0, clientsServed: 0 };
  /** Log entries dropped for clients that are gone. */
  #droppedByGone = 0;

  constructor(options: DashboardOptions) {
    if (!options || options.redis === undefined) {
      throw new ValidationError("dashboard: the redis option is required (a URL or a connection)", {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    this.#redisOption = options.redis;
    this.#keys =
      options.keys ??
      createKeys({
        namespace: options.namespace ?? DEFAULT_DASHBOARD_OPTIONS.namespace,
        cluster: isConnection(options.redis)
          ? (options.redis as Partial<RedisHandle>).topology === "cluster"
          : isClusterOptions(options.redis),
      });
    this.#queueStats = options.queueStats;
    if (this.#queueStats !== undefined && typeof this.#queueStats !== "function") {
      throw new ValidationError("dashboard: queueStats must be a function returning a promise", {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    // 50 ms floor: below that the collector would mostly measure its own Redis round trips.
    this.#intervalMs = positiveInt(
      "intervalMs",
      options.intervalMs,
      DEFAULT_DASHBOARD_OPTIONS.intervalMs,
      50,
    );
    this.#bufferSize = positiveInt(
      "logBufferSize",
      options.logBufferSize,
      DEFAULT_DASHBOARD_OPTIONS.logBufferSize,
    );
    this.#maxBuffered = positiveInt(
      "maxBufferedBytes",
      options.maxBufferedBytes,
      DEFAULT_DASHBOARD_OPTIONS.maxBufferedBytes,
    );
    this.#stalledMs = positiveInt(
      "stalledClientMs",
      options.stalledClientMs,
      DEFAULT_DASHBOARD_OPTIONS.stalledClientMs,
    );
    this.#heartbeatMs = positiveInt(
      "heartbeatMs",
      options.heartbeatMs,
      DEFAULT_DASHBOARD_OPTIONS.heartbeatMs,
      100,
    );
    const base = options.basePath ?? DEFAULT_DASHBOARD_OPTIONS.basePath;
    if (typeof base !== "string" || !/^(\/[A-Za-z0-9._~-]+)*$/.test(base)) {
      throw new ValidationError(
        `dashboard: basePath must be "" or like "/dashboard" (no trailing slash), got ${JSON.stringify(base)}`,
        { code: ErrorCode.INVALID_OPTIONS },
      );
    }
    this.#base = base;
    this.#hydra = options.hydraInterop ?? this.#keys.namespace === "hydra";
    this.#logger = options.logger ?? silentLogger;
  }

  /** The namespace shown. */
  get namespace(): string {
    return this.#keys.namespace;
  }

  /** The URL path the dashboard answers under. */
  get basePath(): string {
    return this.#base;
  }

  /** Counters (clients, collections, pushes, log entries). */
  stats(): DashboardStats {
    let logsDropped = this.#droppedByGone;
    for (const c of this.#clients) logsDropped += c.stats.droppedLogs;
    return {
      clients: this.#clients.size,
      active: this.#collectTimer !== undefined || this.#collecting !== undefined || this.#tail !== undefined,
      ...this.#stats,
      logsDropped,
    };
  }

  /**
   * Connect (when the dashboard owns its connection). Idempotent. Nothing else runs until a page
   * opens (or `snapshot()` is called).
   */
  start(): Promise<void> {
    if (this.#state === "stopped") {
      return Promise.reject(new StateError(ErrorCode.NOT_RUNNING, "dashboard: stopped; create a new one"));
    }
    this.#starting ??= this.#doStart().catch(async (err: unknown) => {
      this.#starting = undefined;
      this.#state = "idle";
      this.#owned?.destroy();
      this.#owned = undefined;
      this.#redis = undefined;
      throw err;
    });
    return this.#starting;
  }

  async #doStart(): Promise<void> {
    this.#state = "starting";
    if (isConnection(this.#redisOption)) {
      this.#redis = this.#redisOption;
    } else {
      const conn = createRedisConnection({ redis: this.#redisOption, clientName: "redmesh-dashboard" });
      conn.on("error", (err) => this.#logger.debug({ err }, "dashboard: redis error"));
      this.#owned = conn;
      this.#redis = conn;
      await conn.connect({ failFast: true });
    }
    this.#state = "running";
  }

  /**
   * Serve the dashboard on a server of its own (closed by `stop()`); starts the dashboard if needed.
   * `/` redirects to the base path. Resolves with the page's URL.
   */
  async listen(options: DashboardListenOptions = {}): Promise<{ url: string; port: number; host: string }> {
    const port = options.port ?? 8090;
    const host = options.host ?? "127.0.0.1";
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new ValidationError(`dashboard: port must be 0..65535, got ${String(port)}`, {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    if (this.#server) throw new StateError(ErrorCode.ALREADY_STARTED, "dashboard: already listening");
    await this.start();
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (this.#base !== "" && path === "/") {
        res.writeHead(302, { location: `${this.#base}/` }).end();
        return;
      }
      this.handler(req, res);
    });
    this.#server = server;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (err) {
      this.#server = undefined;
      throw new ValidationError(`dashboard: cannot listen on ${host}:${port}: ${(err as Error).message}`, {
        code: ErrorCode.INVALID_OPTIONS,
        cause: err,
      });
    }
    const addr = server.address() as AddressInfo;
    const shown = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
    return { url: `http://${shown}:${addr.port}${this.#base}/`, port: addr.port, host: addr.address };
  }

  /**
   * The request handler, for `node:http` or any framework that exposes Node's request and response.
   * Answers requests under the base path; anything else goes to `next` (or gets a 404).
   */
  handler = (req: IncomingMessage, res: ServerResponse, next?: () => void): void => {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://dashboard.invalid");
    } catch {
      this.#plain(res, 400, "bad request URL");
      return;
    }
    const path = url.pathname;
    if (this.#base !== "" && path === this.#base) {
      res.writeHead(301, { location: `${this.#base}/${url.search}` }).end();
      return;
    }
    if (!path.startsWith(`${this.#base}/`)) {
      if (next) next();
      else this.#plain(res, 404, "not found");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      this.#plain(res, 405, "the dashboard is read-only: GET only");
      return;
    }
    if (this.#state !== "running") {
      this.#plain(res, 503, "the dashboard is not running");
      return;
    }
    const rest = path.slice(this.#base.length + 1);
    if (rest === "events") {
      if (req.method === "HEAD") {
        res.writeHead(200, {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache",
        });
        res.end();
      } else this.#openStream(url, req, res);
      return;
    }
    if (rest === "snapshot.json") {
      void this.snapshot().then(
        (snap) => {
          res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
          res.end(req.method === "HEAD" ? undefined : JSON.stringify(snap));
        },
        () => this.#plain(res, 503, "snapshot unavailable"),
      );
      return;
    }
    const name = rest === "" ? "index.html" : rest;
    const type = ASSETS[name];
    if (type === undefined) {
      this.#plain(res, 404, "not found");
      return;
    }
    this.#asset(name).then(
      (body) => {
        res.writeHead(200, {
          "content-type": type,
          "content-length": body.length,
          "cache-control": "no-cache",
          "x-content-type-options": "nosniff",
          "referrer-policy": "no-referrer",
          ...(name === "index.html" ? { "content-security-policy": CSP, "x-frame-options": "DENY" } : {}),
        });
        res.end(req.method === "HEAD" ? undefined : body);
      },
      (err: unknown) => {
        this.#logger.error({ err, asset: name }, "dashboard: asset missing");
        this.#plain(res, 500, "dashboard asset missing (was the package built with its assets?)");
      },
    );
  };

  /**
   * Read one snapshot now (what the page gets), whether or not a page is open. Parts that cannot be
   * read are listed in `errors`; rejects only when discovery cannot start (Redis unreachable).
   */
  async snapshot(): Promise<DashboardSnapshot> {
    const redis = this.#redis;
    if (this.#state !== "running" || !redis) {
      throw new StateError(ErrorCode.NOT_RUNNING, "dashboard: not running (call start())");
    }
    this.#stats.collections++;
    let discovery = await this.#liveDiscovery();
    let temporary: Discovery | undefined;
    if (!discovery) {
      // No page open: a discovery just for this read (a running one would reconcile every second).
      temporary = this.#newDiscovery(redis);
      try {
        await temporary.start();
      } catch (err) {
        await temporary.stop();
        throw err;
      }
      discovery = temporary;
    }
    try {
      return await collectSnapshot({
        redis,
        keys: this.#keys,
        namespace: this.#keys.namespace,
        discovery,
        // Without a source of its own, every queue the services indexed (see readQueueStats).
        queueStats:
          this.#queueStats ??
          (async () => readQueueStats(redis as QueueRedis, this.#keys, await discovery.services())),
      });
    } finally {
      await temporary?.stop();
    }
  }

  #newDiscovery(redis: DuplicableRedis): Discovery {
    return createDiscovery({ redis, keys: this.#keys, hydraInterop: this.#hydra, logger: this.#logger });
  }

  /** The discovery of the active period, started on first use; `undefined` while no page is open. */
  async #liveDiscovery(): Promise<Discovery | undefined> {
    const redis = this.#redis;
    if (!this.#live && redis && this.#clients.size > 0 && this.#state === "running") {
      const discovery = this.#newDiscovery(redis);
      // Registry events (join, leave, routes, config) trigger a collection at once instead of at the
      // next interval: an instance shows up on the page within milliseconds of its start().
      const soon = () => this.#collectSoon();
      discovery.on("event", soon).on("join", soon).on("leave", soon);
      const ready = discovery.start().catch(async (err: unknown) => {
        // Redis unreachable: drop it; the next collection tries a new one.
        if (this.#live?.discovery === discovery) this.#live = undefined;
        await discovery.stop();
        throw err;
      });
      this.#live = { discovery, ready };
    }
    const live = this.#live;
    if (!live) return undefined;
    await live.ready;
    return live.discovery;
  }

  #track(p: Promise<unknown>): void {
    const settled = p.catch(() => undefined);
    this.#ending.add(settled);
    void settled.finally(() => this.#ending.delete(settled));
  }

  #plain(res: ServerResponse, status: number, text: string): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    res.writeHead(status, {
      "content-type": "text/plain; charset=utf-8",
      "x-content-type-options": "nosniff",
    });
    res.end(`${text}\n`);
  }

  #asset(name: string): Promise<Buffer> {
    let p = this.#assets.get(name);
    if (!p) {
      p = readFile(new URL(`./public/${name}`, import.meta.url));
      p.catch(() => this.#assets.delete(name));
      this.#assets.set(name, p);
    }
    return p;
  }

  // ---- SSE ----

  #openStream(url: URL, req: IncomingMessage, res: ServerResponse): void {
    const level = url.searchParams.get("level") ?? "trace";
    if (!isLogLevel(level)) {
      this.#plain(res, 400, `unknown level "${level}": use one of ${Object.keys(LogLevel).join(", ")}`);
      return;
    }
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true);
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      "x-content-type-options": "nosniff",
    });
    const client = new SseClient(res, {
      level,
      minLevel: LogLevel[level],
      maxBufferedBytes: this.#maxBuffered,
      stalledMs: this.#stalledMs,
      onGone: (c) => this.#removeClient(c),
    });
    this.#clients.add(client);
    this.#stats.clientsServed++;
    // Reconnect after 2 s when the stream drops; then the hello with what is known so far.
    client.raw(`retry: 2000\n${sseEvent("hello", { namespace: this.#keys.namespace, level })}`);
    if (this.#lastJson !== undefined) client.snapshot(this.#lastJson);
    const backlog = this.#logs.filter((e) => LogLevel[e.level] >= client.minLevel);
    if (backlog.length > 0) client.raw(sseEvent("logs", backlog));
    if (this.#clients.size === 1) this.#activate();
  }

  #removeClient(c: SseClient): void {
    if (!this.#clients.delete(c)) return;
    this.#droppedByGone += c.stats.droppedLogs;
    if (this.#clients.size === 0) this.#deactivate();
  }

  /** First client: start the collector, the heartbeat and the shared log tail. */
  #activate(): void {
    if (this.#state !== "running") return;
    this.#lastJson = undefined;
    if (this.#collectTimer === undefined && this.#collecting === undefined) this.#tick();
    this.#heartbeat ??= setInterval(() => {
      for (const c of this.#clients) c.raw(": ping\n\n");
    }, this.#heartbeatMs);
    if (!this.#tail) {
      const abort = new AbortController();
      this.#tail = { abort, done: this.#runTail(abort.signal) };
    }
  }

  /** Last client gone: stop everything that costs Redis round trips. */
  #deactivate(): void {
    clearTimeout(this.#collectTimer);
    this.#collectTimer = undefined;
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    this.#lastJson = undefined;
    // A page that opens later gets a fresh backlog from Redis, not what was buffered back then.
    this.#logs = [];
    const tail = this.#tail;
    this.#tail = undefined;
    if (tail) {
      tail.abort.abort();
      this.#track(tail.done);
    }
    const live = this.#live;
    this.#live = undefined;
    if (live) this.#track(live.ready.then(() => live.discovery.stop()));
  }

  /** Collect again shortly (bursts of events coalesce into one collection). */
  #collectSoon(): void {
    if (this.#clients.size === 0 || this.#state !== "running") return;
    if (this.#collecting) {
      this.#again = true;
      return;
    }
    if (this.#collectTimer !== undefined && this.#collectDue - Date.now() <= EVENT_COALESCE_MS) return;
    clearTimeout(this.#collectTimer);
    this.#schedule(EVENT_COALESCE_MS);
  }

  #schedule(ms: number): void {
    this.#collectDue = Date.now() + ms;
    this.#collectTimer = setTimeout(() => this.#tick(), ms);
  }

  #tick(): void {
    this.#collectTimer = undefined;
    this.#again = false;
    this.#collecting = this.snapshot()
      .catch((err: unknown): DashboardSnapshot => {
        this.#logger.debug({ err }, "dashboard: snapshot failed");
        // Keep showing what was last known, with the reason it is not current.
        const last =
          this.#lastJson === undefined ? undefined : (JSON.parse(this.#lastJson) as DashboardSnapshot);
        return {
          namespace: this.#keys.namespace,
          services: last?.services ?? [],
          queues: last?.queues ?? { available: false, reason: "not read yet" },
          errors: [`cannot read the mesh: ${err instanceof Error ? err.message : String(err)}`],
        };
      })
      .then((snap) => {
        const json = JSON.stringify(snap);
        if (json === this.#lastJson || this.#clients.size === 0) return;
        this.#lastJson = json;
        this.#stats.snapshotsPushed++;
        for (const c of this.#clients) c.snapshot(json);
      })
      .finally(() => {
        this.#collecting = undefined;
        if (this.#clients.size > 0 && this.#state === "running") {
          this.#schedule(this.#again ? EVENT_COALESCE_MS : this.#intervalMs);
        }
      });
  }

  /**
   * The shared log tail: first the newest `logBufferSize` entries of every service (so a page that
   * opens shows recent history), then follow from just before the backlog was read. A failure (the tail
   * only ends on one while Redis is unreachable at its start) restarts it after `intervalMs`. Duplicates are skipped per service by stream ID: the follow starts with a
   * clock margin, and `tailLogs` reads a service that appears later from a little before it appeared,
   * so entries of different services can arrive out of global order (a single "last ID" would drop them).
   */
  async #runTail(signal: AbortSignal): Promise<void> {
    const redis = this.#redis;
    if (!redis) return;
    const lastIds = new Map<string, string>();
    let sinceMs: number | undefined;
    while (!signal.aborted) {
      try {
        if (sinceMs === undefined) {
          // 1 s margin: the writers' and Redis's clocks may differ slightly.
          const startedAt = Date.now() - 1000;
          const names = await redis.command<string[]>(["SMEMBERS", this.#keys.serviceIndex()]);
          const perService = await Promise.all(
            names.map((service) => queryLogs(redis, this.#keys, { service, limit: this.#bufferSize })),
          );
          if (signal.aborted) return;
          for (const list of perService) {
            const last = list.at(-1);
            if (last) lastIds.set(last.service, last.id);
          }
          this.#pushBacklog(perService.flat().sort(compareEntries).slice(-this.#bufferSize));
          sinceMs = Math.max(0, startedAt);
        }
        // After a failure this re-reads from the same point (bounded by the stream caps): the per-service
        // positions skip what was shown, and a service that was quiet loses nothing.
        for await (const e of tailLogs(redis, this.#keys, { follow: true, since: sinceMs, signal })) {
          const last = lastIds.get(e.service);
          if (last !== undefined && compareIds(e.id, last) <= 0) continue;
          lastIds.set(e.service, e.id);
          this.#pushLog(e);
        }
      } catch (err) {
        this.#logger.debug({ err }, "dashboard: log tail failed; retrying");
      }
      if (!signal.aborted) await sleep(this.#intervalMs, undefined, { signal }).catch(() => undefined);
    }
  }

  #pushBacklog(entries: LogEntry[]): void {
    if (entries.length === 0) return;
    this.#stats.logEntries += entries.length;
    this.#logs.push(...entries);
    for (const c of this.#clients) {
      const mine = entries.filter((e) => LogLevel[e.level] >= c.minLevel);
      if (mine.length > 0) c.log(sseEvent("logs", mine));
    }
  }

  #pushLog(e: LogEntry): void {
    this.#stats.logEntries++;
    this.#logs.push(e);
    if (this.#logs.length > this.#bufferSize) this.#logs.splice(0, this.#logs.length - this.#bufferSize);
    const chunk = sseEvent("log", e);
    const lv = LogLevel[e.level];
    for (const c of this.#clients) if (lv >= c.minLevel) c.log(chunk);
  }

  /**
   * Stop: end every SSE stream, stop the collector and the tail, close the server of `listen()`,
   * stop discovery and close the connection the dashboard opened. Idempotent.
   */
  stop(): Promise<void> {
    this.#stopping ??= this.#doStop();
    return this.#stopping;
  }

  async #doStop(): Promise<void> {
    const wasStarting = this.#starting;
    this.#state = "stopped";
    for (const c of [...this.#clients]) c.close();
    this.#deactivate();
    await wasStarting?.catch(() => undefined);
    // The clients may have gone while start() finished: make sure nothing was re-armed.
    this.#deactivate();
    await this.#collecting;
    await Promise.all([...this.#ending]);
    const server = this.#server;
    this.#server = undefined;
    if (server) {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
    }
    if (this.#owned) await this.#owned.close({ timeoutMs: 1000 }).catch(() => this.#owned?.destroy());
    this.#owned = undefined;
    this.#redis = undefined;
    this.#logs = [];
  }

  /** Same as {@link stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** Create a dashboard (no I/O until `start()` or `listen()`). */
export function createDashboard(options: DashboardOptions): Dashboard {
  return new Dashboard(options);
}
