/**
 * Request/reply RPC over messaging (DESIGN.md §4 "RPC"): the calling half ({@link RpcClient},
 * `client.ts`) and the answering half ({@link RpcServer}, `server.ts`) of one instance, and the
 * inbound demultiplexer that gives each the messages that are its own. The envelopes are
 * `envelope/rpc.ts`'s; the choice of instance and the retries are the balancing loop's.
 *
 * @module
 */

import type { BalancingLoop, LeaveSource } from "../balancer/index.js";
import { RpcType, type UmfShort } from "../envelope/index.js";
import type { RedmeshError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { MessagePort } from "../messaging/index.js";
import { type CallOptions, RpcClient, type RpcClientStats } from "./client.js";
import { type HandleOptions, type Handler, RpcServer, type RpcServerStats } from "./server.js";

/** RPC counters. */
export interface RpcStats extends RpcClientStats, RpcServerStats {
  /** Calls waiting for a reply now. */
  pending: number;
  /** Handlers running now. */
  running: number;
}

/** Options of {@link Rpc}. */
export interface RpcOptions {
  /** What RPC uses of messaging. */
  port: MessagePort;
  /** The balancing loop calls run in (the service's, shared with messaging). */
  loop: BalancingLoop;
  /** Announces instances that leave (the service's discovery): calls waiting on them end at once. */
  discovery: LeaveSource;
  /** This service's name. */
  service: string;
  logger?: Logger;
  /** Default call timeout. @default 10000 */
  timeoutMs?: number;
  /** Count a running handler as in-flight work (for draining). */
  beginWork: () => () => void;
  /** True when the instance takes no new work. */
  draining: () => boolean;
}

/** Callers and handlers of one instance. Created and wired by `createService`. */
export class Rpc {
  /** The calling half. */
  readonly client: RpcClient;
  /** The answering half. */
  readonly server: RpcServer;
  readonly #discovery: LeaveSource;
  readonly #onLeave = ({ service, id }: { service: string; id: string }) => this.client.lost(service, id);

  constructor(o: RpcOptions) {
    this.client = new RpcClient({
      port: o.port,
      loop: o.loop,
      service: o.service,
      ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
    });
    this.server = new RpcServer({
      port: o.port,
      service: o.service,
      beginWork: o.beginWork,
      draining: o.draining,
      ...(o.logger ? { logger: o.logger } : {}),
    });
    this.#discovery = o.discovery;
    this.#discovery.on("leave", this.#onLeave);
  }

  /**
   * Take an incoming message if it is RPC traffic (a request, a cancel, or the reply of a pending
   * call: any message whose `rmid` matches one); false leaves it to `message` listeners.
   */
  accept(m: UmfShort): boolean {
    const typ = m.typ;
    if (typ === RpcType.CANCEL) {
      this.server.takeCancel(m);
      return true;
    }
    if (m.rmid !== undefined) return this.client.takeReply(m);
    if (typ === RpcType.REQUEST) {
      this.server.takeRequest(m);
      return true;
    }
    return false;
  }

  /** Counters. */
  get stats(): RpcStats {
    return {
      ...this.client.counters,
      ...this.server.counters,
      pending: this.client.pending,
      running: this.server.running,
    };
  }

  /** Registered method names. */
  get methods(): string[] {
    return this.server.methods;
  }

  /** Register the handler of `method` (replaces an earlier one). */
  handle<P, R>(method: string, fn: Handler<P, R>, options?: HandleOptions<P, R>): void {
    this.server.handle(method, fn, options);
  }

  /** Call `method` on one instance of `target` (`svc` or `iid@svc`); see {@link RpcClient.call}. */
  call<R = unknown>(target: string, method: string, params: unknown, options?: CallOptions): Promise<R> {
    return this.client.call<R>(target, method, params, options);
  }

  /** Redis went down: pending replies cannot arrive, so every pending call fails now (typed). */
  failAll(err: RedmeshError): void {
    this.client.failAll(err);
  }

  /** Stop: pending calls fail with `ERR_NOT_RUNNING`, running handlers are aborted, timers cleared. */
  close(): void {
    this.client.close();
    this.server.close();
    this.#discovery.off("leave", this.#onLeave);
  }

  /** Abort the signals of handlers still running (the stop grace period ended). */
  abortRunning(reason: RedmeshError): void {
    this.server.abortRunning(reason);
  }
}
