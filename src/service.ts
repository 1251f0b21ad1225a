// Long because it is the composition root: it builds every capability, runs their one step list, and carries the API most users call.
/**
 * `createService()`: one instance of a service, with one life cycle for every capability.
 *
 * The parts come up in the order of {@link Service}'s step list and go down in reverse, the same
 * list for a stop and for a start that failed half-way (docs/architecture.md "Start and stop"):
 * Redis → discovery → balancer → config → messaging → registration → health → work. Taking
 * the work part down is the drain: announce draining, stop the queues, wait for in-flight work
 * (bounded by `stopGraceMs`, cut short by `stop({ force: true })`), abort what is left. Then
 * health and heartbeats stop, the instance deregisters, messaging unsubscribes and fails the calls
 * still waiting, config and discovery stop, the last log entries are flushed and the connection
 * closes. `stop()` is memoised, never rejects, and is also
 * `[Symbol.asyncDispose]`; `closed()` resolves once the instance is fully down.
 *
 * @module
 */

import { randomUUID } from "node:crypto";
import { EventEmitter } from "node:events";
import { hostname as osHostname } from "node:os";
import { InFlight } from "./async.js";
import {
  type Balancer,
  type BalancerOptions,
  BalancingLoop,
  type CandidateSource,
  createBalancer,
  LoadTracker,
} from "./balancer/index.js";
import { type ConfigClient, createConfigClient } from "./config/index.js";
import { normalizeRoutePattern } from "./envelope/index.js";
import { AbortError, ErrorCode, type RedmeshError, ValidationError } from "./errors.js";
import { appendHealthLog, type HealthCheck, HealthMonitor, type HealthSnapshot } from "./health/index.js";
import { assertInstanceId, assertServiceName, createKeys, type Keys } from "./keys.js";
import {
  Lifecycle,
  LifeState,
  type LifeStateValue,
  StepList,
  type StopContext,
  type StopOptions,
} from "./lifecycle.js";
import { createServiceLog, type ServiceLog } from "./log/index.js";
import { type Logger, silentLogger } from "./logger.js";
import { Messenger } from "./messaging/index.js";
import { createQueue, type Queue, type QueueOptions } from "./queue/index.js";
import { createRedisConnection, type RedisHandle } from "./redis/index.js";
import { Discovery, InstanceStatus, type NodeEntry, Registration } from "./registry/index.js";
import {
  type CallOptions,
  type Contract,
  type HandleOptions,
  type Handler,
  HTTP_ROUTE_METHOD,
  type HttpRouteHandler,
  type HttpRouteRequest,
  type HttpRouteResponse,
  type MethodOf,
  type ParamsOf,
  type ResultOf,
  Rpc,
} from "./rpc/index.js";
import {
  checkServiceOptions,
  DEFAULT_SERVICE_OPTIONS,
  type RegistryView,
  type ServiceEvents,
  type ServiceOptions,
  type ServiceStats,
} from "./service-options.js";

export {
  DEFAULT_SERVICE_OPTIONS,
  type RegistryView,
  type ServiceEvents,
  type ServiceOptions,
  type ServiceStats,
} from "./service-options.js";

/** Life-cycle states of a service (the {@link LifeState} every redmesh object shares). */
export const ServiceState = LifeState;
/** Union of service states. */
export type ServiceStateValue = LifeStateValue;

/** One running instance of a service. Create with {@link createService}. */
export class Service<C = unknown> extends EventEmitter<ServiceEvents> {
  /** Service name. */
  readonly name: string;
  /** This instance's id (32 hex). */
  readonly instanceId: string;
  /** Key builder of this service's namespace. */
  readonly keys: Keys;
  /** The shared command connection (capabilities use it; do not close it yourself). */
  readonly redis: RedisHandle;
  /** Discovery. */
  readonly registry: RegistryView;
  /** The logger given in the options (silent by default). */
  readonly logger: Logger;
  /** The distributed log of this instance: `svc.log.info(msg, fields)` → the service's log stream. */
  readonly log: ServiceLog;
  /** This service's shared, versioned config: `await svc.config.get()`, `svc.config.on("change", fn)`. */
  readonly config: ConfigClient<C>;

  readonly #o: Required<
    Omit<
      ServiceOptions,
      | "redis"
      | "logger"
      | "instanceId"
      | "hydraInterop"
      | "log"
      | "config"
      | "secret"
      | "requireSignature"
      | "replayWindowMs"
      | "maxMessageBytes"
      | "rpcTimeoutMs"
      | "picker"
      | "balancer"
      | "coalesce"
      | "maxInFlightPerService"
    >
  > & {
    hydraInterop: boolean;
  };
  readonly #discovery: Discovery;
  readonly #registration: Registration;
  readonly #health: HealthMonitor;
  readonly #loop: BalancingLoop;
  readonly #messenger: Messenger;
  readonly #rpc: Rpc;
  readonly #loadTracker: LoadTracker | undefined;
  /** `svc.route()` handlers by normalised pattern. */
  readonly #httpRoutes = new Map<string, HttpRouteHandler>();
  /** The routes given to `registerRoutes()` (served over HTTP by the instance itself). */
  #declaredRoutes: string[] = [];
  #unwatchBalancer: (() => void) | undefined;
  /** The built-in balancer (breaker states, outstanding counts), or `undefined` with a custom `picker`. */
  readonly balancer: Balancer | undefined;
  readonly #life: Lifecycle;
  readonly #steps: StepList;
  #draining = false;
  readonly #work = new InFlight();
  #startedOn = "";
  readonly #queues = new Map<string, Queue<unknown>>();
  readonly #onRedisReady = ({ reconnect }: { reconnect: boolean }) => {
    if (!reconnect || this.#life.state !== LifeState.RUNNING) return;
    // Calls that timed out while Redis was away (a Sentinel failover queues them) opened circuits of
    // healthy instances, which then refused calls for a whole cooldown after Redis was back.
    this.balancer?.resetBreakers();
    this.emit("redis:up");
    // Events may have been missed and the data may be gone: check presence now, refresh the cache.
    void this.#registration.heartbeat();
    this.#discovery.invalidate();
    this.#discovery.reconcile().catch(() => undefined);
    // A Redis that restarted without persistence lost queued jobs: say so (log + queue warning).
    for (const q of this.#queues.values()) void q.verifyData();
  };
  readonly #onRedisDown = ({ error }: { error: RedmeshError }) => {
    // Replies to pending calls cannot arrive through a dropped subscriber: fail them now, typed.
    this.#rpc.failAll(error);
    if (this.#life.live) this.emit("redis:down", { error });
  };
  readonly #onRedisError = (error: RedmeshError) => {
    if (this.listenerCount("error") > 0) this.emit("error", error);
  };

  constructor(options: ServiceOptions<C>) {
    super();
    checkServiceOptions(options);
    assertServiceName(options.name);
    const instanceId = options.instanceId ?? randomUUID().replace(/-/g, "");
    assertInstanceId(instanceId);
    const d = DEFAULT_SERVICE_OPTIONS;
    const namespace = options.namespace ?? d.namespace;
    this.#o = {
      name: options.name,
      namespace,
      version: options.version ?? d.version,
      description: options.description ?? d.description,
      type: options.type ?? d.type,
      ip: options.ip ?? d.ip,
      port: options.port ?? d.port,
      hostName: options.hostName ?? osHostname(),
      presenceTtlMs: options.presenceTtlMs ?? d.presenceTtlMs,
      heartbeatMs: options.heartbeatMs ?? d.heartbeatMs,
      healthIntervalMs: options.healthIntervalMs ?? d.healthIntervalMs,
      reconcileMs: options.reconcileMs ?? d.reconcileMs,
      stopGraceMs: options.stopGraceMs ?? d.stopGraceMs,
      connectTimeoutMs: options.connectTimeoutMs ?? d.connectTimeoutMs,
      hydraInterop: options.hydraInterop ?? namespace === "hydra",
    };
    if (this.#o.presenceTtlMs < 2 * this.#o.heartbeatMs) {
      throw new ValidationError(
        `presenceTtlMs (${this.#o.presenceTtlMs}) must be at least twice heartbeatMs (${this.#o.heartbeatMs}), or one late heartbeat makes the instance vanish`,
        { code: ErrorCode.INVALID_OPTIONS },
      );
    }
    this.name = options.name;
    this.instanceId = instanceId;
    this.#life = new Lifecycle(`service "${options.name}"`);
    this.logger = options.logger ?? silentLogger;
    this.redis = createRedisConnection({
      redis: options.redis ?? "redis://127.0.0.1:6379",
      clientName: `redmesh:${this.name}:${instanceId.slice(0, 8)}`,
    });
    // In a Cluster every key of a service carries its `{<svc>}` hash tag (one slot per service).
    this.keys = createKeys({ namespace, cluster: this.redis.topology === "cluster" });
    this.#discovery = new Discovery({
      redis: this.redis,
      keys: this.keys,
      logger: this.logger,
      reconcileMs: this.#o.reconcileMs,
      hydraInterop: this.#o.hydraInterop,
    });
    this.#registration = new Registration({
      redis: this.redis,
      keys: this.keys,
      service: this.name,
      instanceId,
      serviceType: this.#o.type,
      presenceTtlMs: this.#o.presenceTtlMs,
      heartbeatMs: this.#o.heartbeatMs,
      logger: this.logger,
      node: () => this.#nodeEntry(),
    });
    this.#health = new HealthMonitor({
      redis: this.redis,
      keys: this.keys,
      service: this.name,
      instanceId,
      intervalMs: this.#o.healthIntervalMs,
      inFlight: () => this.#work.count,
      draining: () => this.#draining,
      logger: this.logger,
      counters: () => ({
        heartbeatErrors: this.#registration.stats.heartbeatErrors,
        reregistrations: this.#registration.stats.reregistrations,
        badRegistryEvents: this.#discovery.stats.badEvents,
        logDropped: this.log.stats.dropped,
      }),
    });
    // Built-in check: Redis reachable and answering heartbeats in less than a heartbeat interval.
    // A paused or overloaded Redis makes the instance `degraded` (not gone: presence outlives it).
    this.#health.addCheck("redis", () => {
      const slowest = this.#registration.takeSlowestHeartbeat();
      if (!this.redis.isReady) return { ok: false, detail: "Redis is unreachable" };
      if (slowest > this.#o.heartbeatMs) {
        return {
          ok: false,
          detail: Number.isFinite(slowest)
            ? `a heartbeat took ${Math.round(slowest)} ms since the last snapshot`
            : "a heartbeat failed since the last snapshot",
        };
      }
      return true;
    });
    this.log = createServiceLog({
      ...options.log,
      redis: this.redis,
      keys: this.keys,
      service: this.name,
      instanceId,
      logger: this.logger,
    });
    this.config = createConfigClient<C>({
      ...options.config,
      redis: this.redis,
      keys: this.keys,
      service: this.name,
      logger: this.logger,
    });
    if (options.picker && options.balancer !== undefined) {
      throw new ValidationError("give either `picker` or `balancer`, not both", {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    let picker = options.picker;
    if (!picker) {
      const bo: BalancerOptions =
        typeof options.balancer === "string" ? { strategy: options.balancer } : (options.balancer ?? {});
      if (!bo.loadTracker)
        this.#loadTracker = new LoadTracker({ redis: this.redis, keys: this.keys, logger: this.logger });
      this.balancer = createBalancer({
        logger: this.logger,
        ...bo,
        ...(this.#loadTracker ? { loadTracker: this.#loadTracker } : {}),
      });
      picker = this.balancer;
    }
    const discovery = this.#discovery;
    const candidates: CandidateSource = {
      cached: (svc) => discovery.cachedInstances(svc),
      load: (svc) => discovery.instances(svc),
      evict: (svc, iid) => {
        this.#messenger.stats.evicted++;
        discovery.evict(svc, iid);
      },
    };
    this.#loop = new BalancingLoop({
      picker,
      candidates,
      ...(options.maxInFlightPerService === undefined
        ? {}
        : { maxInFlightPerService: options.maxInFlightPerService }),
    });
    this.#messenger = new Messenger({
      redis: this.redis,
      keys: this.keys,
      loop: this.#loop,
      service: this.name,
      instanceId,
      logger: this.logger,
      // RPC takes its traffic before `message` listeners see anything.
      inbound: (m) => this.#rpc.accept(m),
      ...(options.maxMessageBytes === undefined ? {} : { maxMessageBytes: options.maxMessageBytes }),
      ...(options.secret === undefined ? {} : { secret: options.secret }),
      requireSignature: options.requireSignature ?? false,
      ...(options.replayWindowMs === undefined ? {} : { replayWindowMs: options.replayWindowMs }),
      coalesce: options.coalesce ?? true,
      wantsMessages: () => this.listenerCount("message") > 0,
    });
    this.#messenger.on("message", (m) => this.emit("message", m));
    this.#rpc = new Rpc({
      port: this.#messenger,
      loop: this.#loop,
      discovery: this.#discovery,
      service: this.name,
      logger: this.logger,
      ...(options.rpcTimeoutMs === undefined ? {} : { timeoutMs: options.rpcTimeoutMs }),
      beginWork: () => this.beginWork(),
      draining: () => this.#draining,
    });
    this.#steps = this.#stepList();
    const d2 = this.#discovery;
    this.registry = {
      services: () => d2.services(),
      instances: (svc: string) => d2.instances(svc),
      nodes: () => d2.nodes(),
      routes: (svc?: string) => d2.routes(svc),
      events: d2,
    };
  }

  /** Namespace of the keys. */
  get namespace(): string {
    return this.#o.namespace;
  }

  /** Current life-cycle state. */
  get state(): ServiceStateValue {
    return this.#life.state;
  }

  /** True once `stop()` has begun: the instance takes no new work. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Work in progress (RPC handlers, jobs) counted through {@link beginWork}. */
  get inFlight(): number {
    return this.#work.count;
  }

  /** Presence and health settings in force. */
  get settings(): Readonly<{
    presenceTtlMs: number;
    heartbeatMs: number;
    healthIntervalMs: number;
    reconcileMs: number;
  }> {
    const { presenceTtlMs, heartbeatMs, healthIntervalMs, reconcileMs } = this.#o;
    return { presenceTtlMs, heartbeatMs, healthIntervalMs, reconcileMs };
  }

  #nodeEntry(): NodeEntry {
    return {
      serviceName: this.name,
      serviceDescription: this.#o.description,
      version: this.#o.version,
      instanceID: this.instanceId,
      updatedOn: new Date().toISOString(),
      processID: process.pid,
      ip: this.#o.ip,
      port: this.#o.port,
      hostName: this.#o.hostName,
      rm: {
        v: 1,
        frames: this.#messenger.frames,
        status: this.#draining ? InstanceStatus.DRAINING : InstanceStatus.OK,
        startedOn: this.#startedOn,
      },
    };
  }

  /**
   * The parts of an instance, in start order; they go down in reverse (see the module comment).
   * A part whose `up` failed is taken down too, so every `down` copes with a part half up.
   */
  #stepList(): StepList {
    const step = (
      name: string,
      up: (() => Promise<unknown> | unknown) | undefined,
      down?: (ctx: StopContext) => Promise<unknown> | unknown,
    ) => ({
      name,
      ...(up ? { up: async () => void (await up()) } : {}),
      ...(down ? { down } : {}),
    });
    return new StepList(
      [
        step(
          "redis",
          async () => {
            this.redis.on("ready", this.#onRedisReady);
            this.redis.on("down", this.#onRedisDown);
            this.redis.on("error", this.#onRedisError);
            await this.redis.connect({ timeoutMs: this.#o.connectTimeoutMs });
          },
          async (ctx) => {
            // The last log entries (of the stop itself, too) go out right before the connection closes.
            await this.log.close({ timeoutMs: ctx.force || !ctx.wasRunning ? 0 : 1000 });
            this.redis.off("ready", this.#onRedisReady);
            this.redis.off("down", this.#onRedisDown);
            this.redis.off("error", this.#onRedisError);
            await this.redis.stop(ctx.force ? { force: true } : {});
          },
        ),
        step(
          "discovery",
          () => this.#discovery.start(),
          () => this.#discovery.stop(),
        ),
        step(
          "balancer",
          async () => {
            await this.#loadTracker?.start();
            this.#unwatchBalancer = this.balancer?.watch(this.#discovery);
          },
          async () => {
            this.#unwatchBalancer?.();
            await this.#loadTracker?.stop();
          },
        ),
        // The config is loaded before the instance is discoverable, so its first work sees it.
        step(
          "config",
          () => this.config.start(),
          () => this.config.stop(),
        ),
        // Subscribed before registering: a message sent right after discovery finds us is not lost.
        step(
          "messaging",
          () => this.#messenger.start(),
          async () => {
            // After deregistering nobody new finds us: stop listening, fail calls still waiting.
            await this.#messenger.stop();
            this.#rpc.close();
          },
        ),
        step(
          "registration",
          async () => {
            await this.#registration.register();
            this.#registration.startHeartbeat();
          },
          async () => {
            this.#registration.stopHeartbeat();
            await this.#registration.deregister();
          },
        ),
        step(
          "health",
          () => this.#health.start(),
          () => this.#health.stop(),
        ),
        step("work", undefined, (ctx) => this.#drain(ctx)),
      ],
      this.logger,
    );
  }

  /**
   * Connect, register and start heartbeats and health. Rejects with a typed error (and leaves
   * nothing running; `closed()` resolves with that error) when Redis cannot be reached within
   * `connectTimeoutMs`.
   */
  async start(): Promise<void> {
    await this.#life.start(
      async () => {
        this.#startedOn = new Date().toISOString();
        await this.#steps.up();
      },
      (ctx) => this.#steps.down(ctx),
    );
    this.logger.info({ service: this.name, instanceId: this.instanceId }, "service started");
    this.emit("start");
  }

  /**
   * Drain and leave: see the module comment for the order. Memoised (every call returns the same
   * promise); never rejects: cleanup steps that fail (Redis down) are logged and skipped.
   * `force: true` does not wait for in-flight work (handlers are aborted, jobs handed back at once,
   * the connection destroyed) and also cuts short a graceful stop under way.
   */
  stop(options?: StopOptions): Promise<void> {
    return this.#life.stop(async (ctx) => {
      await this.#steps.down(ctx);
      if (ctx.wasRunning) this.emit("stop");
    }, options);
  }

  /** Resolves once the instance is fully down: the start's error if it never came up, else `undefined`. */
  closed(): Promise<Error | undefined> {
    return this.#life.closed();
  }

  /** The work part going down: announce draining, stop the queues, wait for in-flight work, abort the rest. */
  async #drain(ctx: StopContext): Promise<void> {
    this.#draining = true;
    if (!ctx.wasRunning) return;
    const grace = ctx.force ? 0 : this.#o.stopGraceMs;
    const step = async (what: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        this.logger.warn({ err, step: what }, "stop step failed");
      }
    };
    await step("announce draining", () => this.#registration.update());
    // Queues first: finish or return in-flight jobs while this instance is still registered.
    await step("stop queues", () =>
      Promise.all([...this.#queues.values()].map((q) => q.stop({ graceMs: grace, force: ctx.force }))),
    );
    if (!(await this.#work.whenIdle(grace, ctx.signal)) && this.#work.count > 0)
      this.logger.warn({ inFlight: this.#work.count }, "stop grace period ended with work still in flight");
    this.#rpc.abortRunning(new AbortError("the stop grace period ended"));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /**
   * Count a unit of work as in flight (shown in health, waited for by `stop()`). Returns the function
   * that ends it; calling that more than once has no further effect.
   */
  beginWork(): () => void {
    return this.#work.begin();
  }

  /**
   * A reliable work queue (cached per service and name). `"default"` is this service's own
   * Hydra-compatible queue (`mqrecieved`); `options.service` binds it to another service's queue (to
   * produce for it). Workers started with `process()` are stopped by `stop()` before deregistering.
   */
  queue<T = unknown>(
    name = "default",
    options: Omit<QueueOptions, "redis" | "keys" | "name" | "service"> & { service?: string } = {},
  ): Queue<T> {
    const service = options.service ?? this.name;
    const key = `${service}\u0000${name}`;
    let q = this.#queues.get(key);
    if (!q) {
      q = createQueue<unknown>({
        consumerId: this.instanceId,
        from: `${this.name}:/`,
        logger: this.logger,
        beginWork: () => this.beginWork(),
        ...options,
        redis: this.redis,
        keys: this.keys,
        service,
        name,
      });
      this.#queues.set(key, q);
    }
    return q as Queue<T>;
  }

  /**
   * Register the HTTP routes this service answers (Hydra's routes set), e.g.
   * `["[get]/v1/orders/:id", "[post]/v1/orders"]`. Replaces the previous set (routes added with
   * {@link Service.route} are kept).
   */
  async registerRoutes(routes: readonly string[]): Promise<string[]> {
    const out = await this.#registration.registerRoutes([
      ...new Set([...routes, ...this.#httpRoutes.keys()]),
    ]);
    this.#declaredRoutes = routes.map((r) => normalizeRoutePattern(r));
    return out;
  }

  /**
   * Answer an HTTP route through the gateway without an HTTP server of your own: the route is
   * registered (for the gateway's table) and requests matching it arrive here over RPC. Call before
   * or after `start()`. Throw a `ValidationError` to answer 400; other errors answer 502.
   *
   * ```ts
   * svc.route("[get]/v1/items/:id", async (req) => ({ body: await items.get(req.params.id) }));
   * ```
   */
  async route(pattern: string, handler: HttpRouteHandler): Promise<void> {
    const norm = normalizeRoutePattern(pattern);
    if (typeof handler !== "function") {
      throw new ValidationError("route() needs a handler function", { code: ErrorCode.INVALID_OPTIONS });
    }
    if (this.#httpRoutes.size === 0) {
      this.#rpc.handle(HTTP_ROUTE_METHOD, (req: HttpRouteRequest, ctx) =>
        this.#dispatchHttp(req, ctx.signal),
      );
    }
    this.#httpRoutes.set(norm, handler);
    // Before start() this only records the routes; registration writes them.
    await this.registerRoutes(this.#declaredRoutes);
  }

  async #dispatchHttp(req: HttpRouteRequest, signal: AbortSignal): Promise<HttpRouteResponse> {
    const only = this.#httpRoutes.size === 1 ? [...this.#httpRoutes.values()][0] : undefined;
    const handler = (req?.route !== undefined ? this.#httpRoutes.get(req.route) : undefined) ?? only;
    if (!handler)
      return { status: 404, body: { error: { code: ErrorCode.NOT_FOUND, message: "no such route here" } } };
    return handler(req, { signal });
  }

  /** Add a custom health check (a failing check makes the status `degraded`). */
  healthCheck(name: string, check: HealthCheck): void {
    this.#health.addCheck(name, check);
  }

  /** Take a health snapshot now (without writing it). */
  health(): Promise<HealthSnapshot> {
    return this.#health.sample();
  }

  /** Write a health snapshot now (normally done every `healthIntervalMs`). */
  writeHealth(): Promise<void> {
    return this.#health.write();
  }

  /**
   * Append an entry to this instance's Hydra-compatible health log (warnings and errors). Rejects
   * with a typed error when Redis is down.
   */
  healthLog(type: "warn" | "error" | "info" | string, message: string): Promise<void> {
    this.#requireRunning();
    return appendHealthLog(this.redis, this.keys, this.name, this.instanceId, type, message);
  }

  /** Internal counters (heartbeats, reconciliations, events…) for diagnostics and tests. */
  stats(): ServiceStats {
    const r = this.#registration.stats;
    const d = this.#discovery.stats;
    return {
      heartbeats: r.heartbeats,
      heartbeatErrors: r.heartbeatErrors,
      reregistrations: r.reregistrations,
      reconciles: d.reconciles,
      registryEvents: d.events,
      badRegistryEvents: d.badEvents,
      pruned: d.pruned,
      healthWrites: this.#health.stats.writes,
      inFlight: this.#work.count,
      logDropped: this.log.stats.dropped,
      messaging: { ...this.#messenger.stats },
      rpc: this.#rpc.stats,
    };
  }

  // ------------------------------------------------------------- messaging and RPC

  /**
   * Register the RPC handler of `method`. Handlers get `(params, ctx)`; `ctx.signal` aborts on the
   * call's deadline or when the caller cancels. Throw to answer with an error.
   */
  handle<P = unknown, R = unknown>(method: string, fn: Handler<P, R>, options?: HandleOptions<P, R>): this {
    this.#rpc.handle(method, fn, options);
    return this;
  }

  /** Register the handlers of a contract, with its schemas (params rejected before the handler runs). */
  implement<A extends Record<string, { params: unknown; result: unknown }>>(
    contract: Contract<A>,
    handlers: { [K in keyof A]: Handler<A[K]["params"], A[K]["result"]> },
  ): this {
    for (const method of Object.keys(handlers) as Array<keyof A & string>) {
      const spec = contract.methods[method];
      const o: HandleOptions = {};
      if (spec?.params) o.params = spec.params;
      if (spec?.result) o.result = spec.result;
      if (spec?.maxInFlight !== undefined) o.maxInFlight = spec.maxInFlight;
      this.#rpc.handle(method, handlers[method] as Handler, o);
    }
    return this;
  }

  /**
   * Call `method` on one live instance of a service (`"svc"` or `"iid@svc"`, or a contract for a
   * compile-time checked call). Resolves with the result or rejects with a typed error
   * (`ERR_TIMEOUT`, `ERR_NO_INSTANCE`, `ERR_ABORTED`, `ERR_INSTANCE_LOST`, the handler's error…).
   */
  call<C extends Contract, M extends MethodOf<C>>(
    contract: C,
    method: M,
    params: ParamsOf<C, M>,
    options?: CallOptions,
  ): Promise<ResultOf<C, M>>;
  call<R = unknown>(target: string, method: string, params?: unknown, options?: CallOptions): Promise<R>;
  call(target: string | Contract, method: string, params?: unknown, options?: CallOptions): Promise<unknown> {
    if (!this.#live()) return Promise.reject(this.#notRunning());
    if (typeof target === "string") return this.#rpc.call(target, method, params, options);
    const schema = target.methods[method]?.params;
    if (schema) {
      const res = schema.safeParse(params);
      if (!res.success) {
        return Promise.reject(
          new ValidationError(`invalid params for "${target.service}.${method}"`, {
            data: { method, issues: String((res.error as { message?: unknown })?.message ?? res.error) },
          }),
        );
      }
      params = res.data;
    }
    return this.#rpc.call(target.service, method, params, options);
  }

  /**
   * Send a message to one live instance of `target` (`"svc"`, picked by the balancer, or
   * `"iid@svc"`). Resolves with the id of the instance that received it. At-most-once.
   */
  send(
    target: string,
    body: unknown,
    options?: { type?: string; headers?: Record<string, unknown> },
  ): Promise<string> {
    if (!this.#live()) return Promise.reject(this.#notRunning());
    try {
      return this.#messenger.send(target, body, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Send a message to every instance of `service`. Resolves with the number of receivers. */
  broadcast(
    service: string,
    body: unknown,
    options?: { type?: string; headers?: Record<string, unknown> },
  ): Promise<number> {
    if (!this.#live()) return Promise.reject(this.#notRunning());
    return this.#messenger.broadcast(service, body, options);
  }

  #live(): boolean {
    return this.#life.live;
  }

  #notRunning() {
    return this.#life.notRunning();
  }

  #requireRunning(): void {
    if (!this.#life.live) throw this.#life.notRunning();
  }
}

/** Create a service instance (no I/O until `start()`). */
export function createService<C = unknown>(options: ServiceOptions<C>): Service<C> {
  return new Service<C>(options);
}
