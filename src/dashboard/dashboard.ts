/**
 * The live web dashboard: a static page (plain HTML, CSS and one small ES module) plus a
 * Server-Sent Events stream that pushes what the mesh looks like (services, instances, health,
 * routes, config versions, queue stats) whenever it changes, and a live log tail.
 *
 * {@link Dashboard} composes the parts: the HTTP side (`http.ts`: routing, assets, the SSE endpoint,
 * the server of `listen()`), the connected pages (`sse.ts`), the collector (`collector.ts`: what is
 * read and when) and the shared log tail (`log-tail.ts`, with its own connection).
 *
 * Cost model: nothing runs while no page is open. The first SSE client starts the active period:
 * the collector (one snapshot every `intervalMs`, sent only when it differs from the last one), the
 * heartbeat and one shared log tail (one extra Redis connection for `XREAD BLOCK`); the last client
 * to leave ends it. Every client filters the shared tail by its own level.
 *
 * Shutdown order (`stop()`): mark stopping (new requests get 503) → end every SSE response (which
 * stops the heartbeat) → stop the collector (timer, discovery) and abort the log tail (its connection
 * is destroyed at once), and wait for both → close the HTTP server of `listen()` and drop its
 * connections → close the Redis connection when the dashboard opened it itself. `stop({ force: true })`
 * keeps the order but waits for nothing: streams are dropped instead of ended, the connection is
 * destroyed instead of closed.
 *
 * Read-only: the dashboard never writes to Redis.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { settleWithin } from "../async.js";
import { ErrorCode, StateError, ValidationError } from "../errors.js";
import { createKeys, type Keys } from "../keys.js";
import {
  Lifecycle,
  LifeState,
  type LifeStateValue,
  StepList,
  type StopContext,
  type StopOptions,
  type Stoppable,
} from "../lifecycle.js";
import type { DuplicableRedis } from "../log/index.js";
import { type Logger, silentLogger } from "../logger.js";
import {
  createRedisConnection,
  isClusterOptions,
  type RedisHandle,
  type RedisOptions,
} from "../redis/index.js";
import { Collector } from "./collector.js";
import { type DashboardAddress, DashboardHttp, type DashboardListenOptions } from "./http.js";
import { LogTail } from "./log-tail.js";
import type { DashboardSnapshot, QueueStatsSource } from "./snapshot.js";
import { type SseClient, SseClients, sseEvent } from "./sse.js";

export type { DashboardAddress, DashboardListenOptions } from "./http.js";

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

// setTimeout's longest delay: the stop's waits end with their commands' deadlines, or at once when forced.
const UNBOUNDED_MS = 2 ** 31 - 1;

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
export class Dashboard implements Stoppable {
  readonly #redisOption: RedisOptions | DuplicableRedis;
  readonly #keys: Keys;
  readonly #queueStats: QueueStatsSource | undefined;
  readonly #intervalMs: number;
  readonly #bufferSize: number;
  readonly #hydra: boolean;
  readonly #logger: Logger;
  readonly #life = new Lifecycle("dashboard");
  readonly #steps: StepList;
  readonly #clients: SseClients;
  readonly #http: DashboardHttp;
  #starting: Promise<void> | undefined;
  #redis: DuplicableRedis | undefined;
  #owned: RedisHandle | undefined;
  /** Created once connected; kept after `stop()` for their counters. */
  #parts: { collector: Collector; tail: LogTail } | undefined;

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
    const maxBufferedBytes = positiveInt(
      "maxBufferedBytes",
      options.maxBufferedBytes,
      DEFAULT_DASHBOARD_OPTIONS.maxBufferedBytes,
    );
    const stalledMs = positiveInt(
      "stalledClientMs",
      options.stalledClientMs,
      DEFAULT_DASHBOARD_OPTIONS.stalledClientMs,
    );
    const heartbeatMs = positiveInt(
      "heartbeatMs",
      options.heartbeatMs,
      DEFAULT_DASHBOARD_OPTIONS.heartbeatMs,
      100,
    );
    const basePath = options.basePath ?? DEFAULT_DASHBOARD_OPTIONS.basePath;
    if (typeof basePath !== "string" || !/^(\/[A-Za-z0-9._~-]+)*$/.test(basePath)) {
      throw new ValidationError(
        `dashboard: basePath must be "" or like "/dashboard" (no trailing slash), got ${JSON.stringify(basePath)}`,
        { code: ErrorCode.INVALID_OPTIONS },
      );
    }
    this.#hydra = options.hydraInterop ?? this.#keys.namespace === "hydra";
    this.#logger = options.logger ?? silentLogger;

    this.#clients = new SseClients({
      maxBufferedBytes,
      stalledMs,
      heartbeatMs,
      onFirst: () => this.#activate(),
      onLast: () => this.#deactivate(),
    });
    this.#http = new DashboardHttp({
      basePath,
      namespace: this.#keys.namespace,
      clients: this.#clients,
      logger: this.#logger,
      isRunning: () => this.#life.state === LifeState.RUNNING,
      snapshot: () => this.snapshot(),
      welcome: (client) => this.#welcome(client),
    });
    this.handler = this.#http.handler;
    // Up in this order, down in reverse: the stop order of the module comment.
    this.#steps = new StepList(
      [
        { name: "connection", up: () => this.#connect(), down: (ctx) => this.#disconnect(ctx) },
        { name: "server", down: () => this.#http.close() },
        {
          name: "collector and log tail",
          up: () => this.#createParts(),
          down: (ctx) => {
            const parts = this.#parts;
            if (!parts) return;
            return settleWithin(
              Promise.all([parts.collector.stop(), parts.tail.stop()]),
              UNBOUNDED_MS,
              ctx.signal,
            );
          },
        },
        { name: "streams", down: (ctx) => this.#clients.closeAll(ctx.force) },
      ],
      this.#logger,
    );
  }

  /**
   * The request handler, for `node:http` or any framework that exposes Node's request and response.
   * Answers requests under the base path; anything else goes to `next` (or gets a 404).
   */
  readonly handler: (req: IncomingMessage, res: ServerResponse, next?: () => void) => void;

  /** The namespace shown. */
  get namespace(): string {
    return this.#keys.namespace;
  }

  /** The URL path the dashboard answers under. */
  get basePath(): string {
    return this.#http.basePath;
  }

  /** Life-cycle state. */
  get state(): LifeStateValue {
    return this.#life.state;
  }

  /** Counters (clients, collections, pushes, log entries). */
  stats(): DashboardStats {
    const parts = this.#parts;
    return {
      clients: this.#clients.size,
      active: (parts?.collector.active ?? false) || (parts?.tail.active ?? false),
      collections: parts?.collector.stats.collections ?? 0,
      snapshotsPushed: parts?.collector.stats.snapshotsPushed ?? 0,
      logEntries: parts?.tail.stats.entries ?? 0,
      clientsServed: this.#clients.served,
      logsDropped: this.#clients.droppedLogs,
    };
  }

  /**
   * Connect (when the dashboard owns its connection). Idempotent while starting or running (every
   * call returns the same promise); rejects with `ERR_NOT_RUNNING` once stopped, or once a start
   * failed. Nothing else runs until a page opens (or `snapshot()` is called).
   */
  start(): Promise<void> {
    const state = this.#life.state;
    if (state === LifeState.STOPPING || state === LifeState.STOPPED) {
      return Promise.reject(new StateError(ErrorCode.NOT_RUNNING, "dashboard: stopped; create a new one"));
    }
    this.#starting ??= this.#life.start(
      () => this.#steps.up(),
      (ctx) => this.#steps.down(ctx),
    );
    return this.#starting;
  }

  /**
   * Serve the dashboard on a server of its own (closed by `stop()`); starts the dashboard if needed.
   * `/` redirects to the base path. Resolves with the page's URL.
   */
  listen(options: DashboardListenOptions = {}): Promise<DashboardAddress> {
    return this.#http.listen(options, async () => {
      await this.start();
      if (this.#life.state !== LifeState.RUNNING) {
        throw new StateError(ErrorCode.NOT_RUNNING, "dashboard: stopped; create a new one");
      }
    });
  }

  /**
   * Read one snapshot now (what the page gets), whether or not a page is open. Parts that cannot be
   * read are listed in `errors`; rejects only when discovery cannot start (Redis unreachable).
   */
  async snapshot(): Promise<DashboardSnapshot> {
    const parts = this.#parts;
    if (this.#life.state !== LifeState.RUNNING || !parts) {
      throw new StateError(ErrorCode.NOT_RUNNING, "dashboard: not running (call start())");
    }
    return parts.collector.snapshot();
  }

  /**
   * Stop, in the order of the module comment: end every SSE stream, stop the collector and the tail,
   * close the server of `listen()` and the connection the dashboard opened. Memoised (every call
   * returns the same promise), never rejects. `force`: drop the streams and destroy the connection at
   * once instead of waiting (also cuts short a graceful stop under way).
   */
  stop(options?: StopOptions): Promise<void> {
    return this.#life.stop((ctx) => this.#steps.down(ctx), options);
  }

  /** Resolves once fully stopped: with the reason when a start failed, else `undefined`. */
  closed(): Promise<Error | undefined> {
    return this.#life.closed();
  }

  /** Same as {@link stop}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #connect(): Promise<void> {
    if (isConnection(this.#redisOption)) {
      this.#redis = this.#redisOption;
      return;
    }
    const conn = createRedisConnection({ redis: this.#redisOption, clientName: "redmesh-dashboard" });
    conn.on("error", (err) => this.#logger.debug({ err }, "dashboard: redis error"));
    this.#owned = conn;
    this.#redis = conn;
    await conn.connect({ failFast: true });
  }

  /** Close the connection the dashboard opened (a shared one stays open). */
  async #disconnect(ctx: StopContext): Promise<void> {
    const conn = this.#owned;
    this.#owned = undefined;
    this.#redis = undefined;
    if (!conn) return;
    if (!ctx.force) {
      // close() gives pending replies its own bound; a force arriving meanwhile destroys at once.
      const closing = conn.close().then(
        () => true,
        () => false,
      );
      if ((await settleWithin(closing, UNBOUNDED_MS, ctx.signal)) && (await closing)) return;
    }
    conn.destroy();
  }

  #createParts(): void {
    const redis = this.#redis;
    if (!redis) throw new StateError(ErrorCode.NOT_RUNNING, "dashboard: no connection");
    const common = { redis, keys: this.#keys, logger: this.#logger, sink: this.#clients };
    this.#parts = {
      collector: new Collector({
        ...common,
        queueStats: this.#queueStats,
        intervalMs: this.#intervalMs,
        hydraInterop: this.#hydra,
      }),
      // A tail that failed (Redis unreachable at its start) tries again one collection period later.
      tail: new LogTail({ ...common, bufferSize: this.#bufferSize, retryMs: this.#intervalMs }),
    };
  }

  /** First client: the active period begins. */
  #activate(): void {
    const parts = this.#parts;
    if (this.#life.state !== LifeState.RUNNING || !parts) return;
    parts.collector.activate();
    parts.tail.start();
  }

  /** Last client gone: stop everything that costs Redis round trips. */
  #deactivate(): void {
    const parts = this.#parts;
    if (!parts) return;
    parts.collector.deactivate();
    void parts.tail.stop();
  }

  /** What a new stream gets after its hello: the last snapshot and the buffered log entries. */
  #welcome(client: SseClient): void {
    const parts = this.#parts;
    if (!parts) return;
    const last = parts.collector.last;
    if (last !== undefined) client.snapshot(last);
    const backlog = parts.tail.recent(client.minLevel);
    if (backlog.length > 0) client.raw(sseEvent("logs", backlog));
  }
}

/** Create a dashboard (no I/O until `start()` or `listen()`). */
export function createDashboard(options: DashboardOptions): Dashboard {
  return new Dashboard(options);
}
