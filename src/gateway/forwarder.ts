/**
 * How the gateway gets a matched request to an instance: the balancing loop every redmesh request
 * runs (`balancer/loop.ts`: pick, attempt, classify, retry), over the two upstreams (HTTP for an
 * instance that advertises `ip`+`port`, RPC otherwise). A refused connection goes to another instance
 * at once and the instance is avoided for a while (suspect) and evicted from the discovery cache; a
 * connection closed before the answer is repeated after a backoff, and only for idempotent requests;
 * every other outcome is the answer. WebSocket messages to a service go through the same picker.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import {
  type Balancer,
  BalancingLoop,
  createBalancer,
  goneError,
  type InstancePicker,
  RetryPolicy,
} from "../balancer/index.js";
import { ErrorCode, InstanceLostError, RedmeshError } from "../errors.js";
import type { Logger } from "../logger.js";
import { type Instance, InstanceStatus } from "../registry/index.js";
import type { Service } from "../service.js";
import { GatewayErrorCode, sendError } from "./errors.js";
import { type GatewayMetrics, NO_SERVICE } from "./metrics.js";
import type { GatewayPicker, ResolvedGatewayOptions } from "./options.js";
import type { NormalizedPath } from "./path.js";
import type { RouteMatch } from "./router.js";
import type { Attempt } from "./upstream.js";
import { HttpUpstream } from "./upstream-http.js";
import { createServiceRpcInvoker, type GatewayRpcInvoker, RpcUpstream } from "./upstream-rpc.js";

/** How long an instance that refused a connection is avoided (it is usually gone within presence TTL). */
const SUSPECT_MS = 5000;

/**
 * A {@link GatewayPicker} that takes instances in turn: the balancer's round-robin strategy, without
 * circuit breakers. @deprecated Give `balancer: createBalancer({ strategy: "round-robin" })` instead
 * (it also keeps circuit breakers and outstanding counts); this stays for existing callers.
 */
export function createRoundRobinPicker(): GatewayPicker {
  const b = createBalancer({ strategy: "round-robin", breaker: false });
  return (service, candidates) => b.pick(candidates, { service });
}

/** A `pick` function given in the options, as the balancing loop's picker (tried instances left out). */
function pickerOf(pick: GatewayPicker): InstancePicker {
  return {
    pick: (candidates, ctx) => {
      const exclude = ctx.exclude;
      const left =
        exclude === undefined || exclude.size === 0
          ? [...candidates]
          : candidates.filter((c) => !exclude.has(c.id));
      return left.length === 0 ? undefined : pick(ctx.service, left);
    },
  };
}

/** What is forwarded: the matched route, the normalised path, what goes upstream. */
export interface Forwarding {
  match: Extract<RouteMatch, { kind: "found" }>;
  norm: NormalizedPath;
  fwd: { path: string; headers: Record<string, string | string[]> };
  /** The request may be repeated (idempotent method, no body). */
  retryable: boolean;
}

/** What the request pipeline tracks of one request (the service it went to, for metrics). */
export interface RequestContext {
  service: string;
  requestId: string;
  method: string;
}

/** Options of {@link Forwarder}. */
export interface ForwarderOptions {
  /** The gateway's own service (discovery, RPC). */
  service: Service;
  /** The gateway's limits (attempts, body size, upstream timeout and connections). */
  limits: ResolvedGatewayOptions["limits"];
  /** `GatewayOptions.pick`. */
  pick?: GatewayPicker | undefined;
  /** `GatewayOptions.balancer`. */
  balancer?: InstancePicker | undefined;
  /** `GatewayOptions.rpc`. */
  rpc?: GatewayRpcInvoker | undefined;
  metrics: GatewayMetrics;
  logger: Logger;
}

/** Picks instances and forwards requests to them. */
export class Forwarder {
  /** The picker of the gateway's loops. */
  readonly picker: InstancePicker;
  /** The balancer the gateway made for itself (forgets instances that leave), if it made one. */
  readonly ownBalancer: Balancer | undefined;
  /** The loop of WebSocket messages (no backoff retries: a message goes now or fails). */
  readonly messages: BalancingLoop;
  readonly #service: Service;
  readonly #limits: ResolvedGatewayOptions["limits"];
  readonly #loop: BalancingLoop;
  readonly #http: HttpUpstream;
  readonly #rpc: RpcUpstream;
  readonly #suspects = new Map<string, number>();

  constructor(o: ForwarderOptions) {
    const limits = o.limits;
    this.#service = o.service;
    this.#limits = limits;
    // Default: the balancer in round-robin (per-instance circuit breakers and outstanding counts).
    this.ownBalancer =
      o.balancer || o.pick ? undefined : createBalancer({ strategy: "round-robin", logger: o.logger });
    this.picker = o.pick ? pickerOf(o.pick) : (o.balancer ?? (this.ownBalancer as Balancer));
    const candidates = {
      cached: () => undefined,
      load: (svc: string) => this.candidates(svc),
      evict: (svc: string, id: string) => this.#suspect(svc, id),
    };
    this.#loop = new BalancingLoop({
      picker: this.picker,
      candidates,
      retry: new RetryPolicy({ maxAttempts: limits.maxAttempts }),
      redirects: limits.maxAttempts - 1,
    });
    this.messages = new BalancingLoop({ picker: this.picker, candidates });
    this.#http = new HttpUpstream({
      maxBodyBytes: limits.maxBodyBytes,
      upstreamTimeoutMs: limits.upstreamTimeoutMs,
      upstreamConnections: limits.upstreamConnections,
      metrics: o.metrics,
      logger: o.logger,
      // Also when the request cannot be repeated (it had a body), so the next one avoids the instance.
      onConnectFailed: (target) => this.#suspect(target.service, target.id),
    });
    // Without a forwarder of its own, the gateway calls the route's handler over redmesh RPC
    // (`svc.route(pattern, handler)` on the service side).
    this.#rpc = new RpcUpstream({
      invoker: o.rpc ?? createServiceRpcInvoker(o.service),
      maxBodyBytes: limits.maxBodyBytes,
      upstreamTimeoutMs: limits.upstreamTimeoutMs,
      metrics: o.metrics,
    });
  }

  /**
   * Forward through the balancing loop: the first service of the route with a live instance takes
   * the request. Always answers `res`.
   */
  async forward(
    req: IncomingMessage,
    res: ServerResponse,
    ctx: RequestContext,
    { match, norm, fwd, retryable }: Forwarding,
  ): Promise<void> {
    const attempt = async (target: Instance): Promise<Attempt> => {
      ctx.service = target.service;
      const node = target.node;
      const result =
        node?.ip && node.port > 0
          ? await this.#http.forward(req, res, {
              method: ctx.method,
              target,
              origin: `http://${hostPort(node.ip, node.port)}`,
              path: fwd.path,
              headers: fwd.headers,
              retryable,
            })
          : await this.#rpc.forward(req, res, {
              method: ctx.method,
              target,
              path: norm.path,
              query: norm.query,
              params: match.params,
              headers: fwd.headers,
              route: match.route.pattern,
            });
      if (result.outcome !== "retry") return result;
      if (result.reason === "connect failed") throw goneError(target.service, target.id, "connect failed");
      throw new InstanceLostError(`the connection to instance ${target.id} closed before the answer`, {
        cause: result.error,
        data: { service: target.service, instance: target.id },
      });
    };
    for (const svc of match.route.services) {
      try {
        await this.#loop.run<Attempt>({
          service: svc,
          idempotent: retryable,
          maxAttempts: this.#limits.maxAttempts,
          candidates: () => this.candidates(svc),
          attempt,
          // 5xx answers count against the instance too (they drive the balancer's circuit breaker).
          failure: (result) =>
            result.error ??
            (result.outcome === "ok" && res.statusCode >= 500
              ? new Error(`HTTP ${res.statusCode}`)
              : undefined),
        });
        return;
      } catch (err) {
        if (err instanceof RedmeshError && err.code === ErrorCode.CIRCUIT_OPEN) {
          if (ctx.service === NO_SERVICE) ctx.service = svc;
          return sendError(
            res,
            GatewayErrorCode.CIRCUIT_OPEN,
            `service "${ctx.service}" is failing; retry later`,
          );
        }
        // Nothing live here (or every instance refused): the next service of the route may take it.
        const gone =
          err instanceof RedmeshError &&
          (err.code === ErrorCode.NO_INSTANCE || err.code === ErrorCode.INSTANCE_LOST);
        if (!gone) throw err;
      }
    }
    if (ctx.service === NO_SERVICE) ctx.service = match.route.services[0] ?? NO_SERVICE;
    // Nothing live, or every instance tried refused the connection.
    sendError(
      res,
      GatewayErrorCode.NO_INSTANCE,
      `no live instance of service "${ctx.service}" could take the request`,
    );
  }

  /** Live, non-draining instances, with recently refused ones moved out unless nothing else is left. */
  async candidates(service: string): Promise<Instance[]> {
    const events = this.#service.registry.events;
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

  /** An instance left the registry: nothing to avoid any more. */
  forget(id: string): void {
    this.#suspects.delete(id);
  }

  /** Close the HTTP pools: gracefully within `graceMs`, at once when `signal` aborts (see HttpUpstream.close). */
  close(graceMs: number, signal: AbortSignal): Promise<void> {
    return this.#http.close(graceMs, signal);
  }

  /** An instance refused a connection or had no receiver: avoid it for a while, drop it from the cache. */
  #suspect(service: string, id: string): void {
    this.#suspects.set(id, Date.now() + SUSPECT_MS);
    this.#service.registry.events.evict(service, id);
  }
}

function hostPort(ip: string, port: number): string {
  return ip.includes(":") ? `[${ip}]:${port}` : `${ip}:${port}`;
}
