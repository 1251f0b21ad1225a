/**
 * WebSocket ↔ services bridge (`/ws`).
 *
 * A client sends UMF messages `{ to, bdy, mid?, typ?, hdr? }` as text frames. The gateway stamps them
 * with `frm` and `via` set to the socket's own route, `<gateway iid>@<gateway name>:/ws/<socket id>`
 * (a client cannot pose as a service), and publishes them on the direct channel of one live instance of
 * the addressed service (or of the instance the route names). Services answer like they answer anyone:
 * to `via` (or `frm`) with `rmid` set. The gateway listens on its own instance channel and hands each
 * message to the socket named in its `to` path, or else to the socket that sent the message its `rmid`
 * refers to. Errors go back to the client as `{ "error": { code, message }, "rmid": <mid> }`.
 *
 * Pub/sub is at-most-once (DESIGN.md §4): a message to an instance that died in flight is lost; the
 * client sees no reply and should time out.
 *
 * @module
 */

import { randomBytes } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import { type WebSocket, WebSocketServer } from "ws";
import { type BalancingLoop, goneError } from "../balancer/index.js";
import {
  createMessage,
  decode,
  encode,
  parseRoute,
  safeJsonParse,
  toShort,
  type UmfMessage,
} from "../envelope/index.js";
import { ErrorCode, RedmeshError } from "../errors.js";
import type { Logger } from "../logger.js";
import type { Instance } from "../registry/index.js";
import type { Service } from "../service.js";
import type { GatewayMetrics } from "./metrics.js";

/** Close code sent to clients when the gateway shuts down (RFC 6455 §7.4.1 "going away"). */
export const WS_CLOSE_GOING_AWAY = 1001;

/** How many `mid → socket` entries are remembered for `rmid` routing (oldest dropped first). */
const MAX_PENDING = 100_000;

/** What the bridge needs from the gateway. */
export interface WsBridgeOptions {
  service: Service;
  maxPayloadBytes: number;
  /** Ping interval; a socket that has not answered the previous ping is terminated. 0: no pings. */
  pingMs: number;
  metrics: GatewayMetrics;
  logger: Logger;
  /** Live, pickable instances of a service. */
  instances: (service: string) => Promise<Instance[]>;
  /** The gateway's balancing loop: picks the instance a message goes to, and another one when nobody received it. */
  loop: BalancingLoop;
}

/** The `/ws` endpoint. */
export class WsBridge {
  readonly #o: WsBridgeOptions;
  readonly #wss: WebSocketServer;
  readonly #sockets = new Map<string, WebSocket>();
  /** mid of a message a socket sent → socket id, for replies that only carry `rmid`. */
  readonly #pending = new Map<string, string>();
  readonly #alive = new WeakSet<WebSocket>();
  #pinger: NodeJS.Timeout | undefined;
  #channel = "";
  readonly #onMessage = (raw: string) => this.#deliver(raw);

  constructor(options: WsBridgeOptions) {
    this.#o = options;
    // noServer: the gateway's HTTP server owns the socket and routes only `/ws` upgrades here.
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: options.maxPayloadBytes });
  }

  /** Open connections. */
  get size(): number {
    return this.#sockets.size;
  }

  /** Subscribe to the gateway's own instance channel. */
  async start(): Promise<void> {
    const s = this.#o.service;
    this.#channel = s.keys.instanceChannel(s.name, s.instanceId);
    await s.redis.subscribe(this.#channel, this.#onMessage);
    if (this.#o.pingMs > 0) {
      // Half-open TCP connections (a client that vanished without a FIN) are found by missing pongs.
      this.#pinger = setInterval(() => {
        for (const ws of this.#sockets.values()) {
          if (!this.#alive.has(ws)) {
            ws.terminate();
            continue;
          }
          this.#alive.delete(ws);
          ws.ping();
        }
      }, this.#o.pingMs);
      this.#pinger.unref();
    }
  }

  /** Take over an HTTP upgrade. */
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    this.#wss.handleUpgrade(req, socket, head, (ws) => this.#accept(ws));
  }

  #route(id: string): string {
    return `${this.#o.service.instanceId}@${this.#o.service.name}:/ws/${id}`;
  }

  #accept(ws: WebSocket): void {
    const id = randomBytes(8).toString("hex");
    this.#sockets.set(id, ws);
    this.#alive.add(ws);
    ws.on("pong", () => this.#alive.add(ws));
    this.#o.metrics.wsConnections.inc();
    ws.on("message", (data, isBinary) => {
      this.#o.metrics.wsMessages.inc({ direction: "in" });
      const text = isBinary ? Buffer.concat(toBuffers(data)).toString("utf8") : String(data);
      this.#fromClient(id, ws, text).catch((err: unknown) => {
        this.#o.logger.debug({ err }, "websocket message failed");
      });
    });
    ws.on("error", (err) => {
      // ws closes the socket itself (e.g. 1009 on maxPayload); only note it.
      this.#o.logger.debug({ err: err.message }, "websocket error");
    });
    ws.once("close", () => {
      this.#sockets.delete(id);
      this.#o.metrics.wsConnections.dec();
    });
  }

  async #fromClient(id: string, ws: WebSocket, text: string): Promise<void> {
    let mid: string | undefined;
    try {
      let obj: unknown;
      try {
        obj = safeJsonParse(text);
      } catch {
        throw new RedmeshError(ErrorCode.INVALID_MESSAGE, "the message is not valid JSON");
      }
      if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
        throw new RedmeshError(ErrorCode.INVALID_MESSAGE, "a message must be a JSON object");
      }
      const o = obj as Record<string, unknown>;
      mid = typeof o.mid === "string" && o.mid.length > 0 && o.mid.length <= 128 ? o.mid : undefined;
      if (typeof o.to !== "string") throw new RedmeshError(ErrorCode.INVALID_MESSAGE, "`to` must be a route");
      const to = parseRoute(o.to);
      const route = this.#route(id);
      const init: Parameters<typeof createMessage>[0] = {
        to: o.to,
        from: route,
        via: route,
        body: o.bdy ?? o.body ?? null,
      };
      if (mid !== undefined) init.mid = mid;
      if (typeof o.typ === "string") init.type = o.typ;
      if (typeof o.hdr === "object" && o.hdr !== null && !Array.isArray(o.hdr))
        init.headers = o.hdr as Record<string, unknown>;
      if (typeof o.tmo === "number" && Number.isFinite(o.tmo)) init.timeout = o.tmo;
      const msg = createMessage(init);
      mid = msg.mid;
      const wire = encode(msg, { maxBytes: this.#o.maxPayloadBytes * 2 });
      this.#remember(msg.mid, id);
      await this.#publish(to.service, to.instance, wire);
    } catch (err) {
      const e =
        err instanceof RedmeshError ? err : new RedmeshError(ErrorCode.INVALID_MESSAGE, "message rejected");
      this.#send(ws, JSON.stringify({ error: { code: e.code, message: e.message }, rmid: mid ?? null }));
    }
  }

  async #publish(service: string, instance: string | undefined, wire: string): Promise<void> {
    const { keys, redis } = this.#o.service;
    if (instance !== undefined) {
      const n = await redis.publish(keys.instanceChannel(service, instance), wire);
      if (n === 0)
        throw new RedmeshError(
          ErrorCode.NO_INSTANCE,
          `instance ${instance} of "${service}" is not listening`,
        );
      return;
    }
    // One live instance through the balancing loop; PUBLISH reaching nobody means it is gone (evicted,
    // another one at once).
    await this.#o.loop.run({
      service,
      retries: 0,
      candidates: () => this.#o.instances(service),
      attempt: async (target) => {
        const n = await redis.publish(keys.instanceChannel(service, target.id), wire);
        if (n === 0) throw goneError(service, target.id, "no receiver");
      },
    });
  }

  #remember(mid: string, socketId: string): void {
    if (this.#pending.size >= MAX_PENDING) {
      const oldest = this.#pending.keys().next();
      if (!oldest.done) this.#pending.delete(oldest.value);
    }
    this.#pending.set(mid, socketId);
  }

  /** A message arrived on the gateway's instance channel: hand it to its socket. */
  #deliver(raw: string): void {
    let msg: UmfMessage;
    try {
      msg = decode(raw, { maxBytes: this.#o.maxPayloadBytes * 2 });
    } catch {
      this.#o.metrics.wsMessages.inc({ direction: "dropped" });
      return;
    }
    let socketId: string | undefined;
    try {
      const m = /^\/ws\/([0-9a-f]{16})$/.exec(parseRoute(msg.to).path);
      socketId = m?.[1];
    } catch {
      /* not a route of ours: fall back to rmid */
    }
    if (socketId === undefined && msg.rmid !== undefined) socketId = this.#pending.get(msg.rmid);
    const ws = socketId === undefined ? undefined : this.#sockets.get(socketId);
    if (!ws) {
      this.#o.metrics.wsMessages.inc({ direction: "dropped" });
      return;
    }
    this.#send(ws, JSON.stringify(toShort(msg)));
    this.#o.metrics.wsMessages.inc({ direction: "out" });
  }

  #send(ws: WebSocket, text: string): void {
    if (ws.readyState !== ws.OPEN) return;
    ws.send(text, (err) => {
      if (err) this.#o.logger.debug({ err: err.message }, "websocket send failed");
    });
  }

  /**
   * Close every socket with 1001 (going away), wait for them to close (at most `graceMs`; then
   * terminate), and unsubscribe. When `signal` aborts (a forced stop), sockets are terminated at once.
   */
  async stop(graceMs: number, signal?: AbortSignal): Promise<void> {
    clearInterval(this.#pinger);
    this.#pinger = undefined;
    const closing = [...this.#sockets.values()].map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === ws.CLOSED) return resolve();
          if (signal?.aborted) {
            ws.terminate();
            return resolve();
          }
          const settle = (cut: boolean) => {
            clearTimeout(t);
            signal?.removeEventListener("abort", onAbort);
            if (cut) ws.terminate();
            resolve();
          };
          const onAbort = () => settle(true);
          const t = setTimeout(onAbort, graceMs);
          signal?.addEventListener("abort", onAbort, { once: true });
          ws.once("close", () => settle(false));
          ws.close(WS_CLOSE_GOING_AWAY, "gateway shutting down");
        }),
    );
    await Promise.all(closing);
    this.#pending.clear();
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
    if (this.#channel) {
      try {
        await this.#o.service.redis.unsubscribe(this.#channel, this.#onMessage);
      } catch {
        /* the connection is closing anyway */
      }
    }
  }
}

function toBuffers(data: Buffer | ArrayBuffer | Buffer[]): Buffer[] {
  if (Array.isArray(data)) return data;
  return [Buffer.isBuffer(data) ? data : Buffer.from(data)];
}
