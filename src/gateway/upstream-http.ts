/**
 * Forwarding to an instance that advertises `ip` + `port`: one undici keep-alive `Pool` per origin,
 * request and response bodies streamed (the request body counted against `maxBodyBytes` on the way).
 *
 * A failure is classified once, here: a connection that could not be made (nothing sent: retryable,
 * and the instance is reported through `onConnectFailed`), a reused keep-alive socket found closed
 * before any response byte (retryable when idempotent), a timeout (504), a failure mid-body (the
 * response is cut), and a client that left (no error of the instance's).
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { Transform } from "node:stream";
import { Pool } from "undici";
import { settleWithin } from "../async.js";
import type { Logger } from "../logger.js";
import type { Instance } from "../registry/index.js";
import { GatewayErrorCode, sendError } from "./errors.js";
import { REQUEST_ID_HEADER, stripHopByHop } from "./headers.js";
import type { GatewayMetrics } from "./metrics.js";
import { type Attempt, BodyTooLarge, tooLargeMessage } from "./upstream.js";

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

/** Idle time of an upstream keep-alive socket: below Node's default server keepAliveTimeout (5 s). */
const POOL_KEEP_ALIVE_MS = 4000;
/** Cap on the time to open an upstream connection (a black-holed address fails within it). */
const MAX_CONNECT_TIMEOUT_MS = 10_000;

/** What {@link HttpUpstream} needs from the gateway. Durations in milliseconds. */
export interface HttpUpstreamOptions {
  /** Largest request body (413 beyond, counted while streaming). */
  maxBodyBytes: number;
  /** Time to the response headers, and between body chunks (504 / cut beyond). */
  upstreamTimeoutMs: number;
  /** Keep-alive connections per origin. */
  upstreamConnections: number;
  /** Where upstream errors are counted. */
  metrics: GatewayMetrics;
  /** Failed attempts are logged at debug level. */
  logger: Logger;
  /** Told when a connection to an instance could not be made (the caller avoids it for a while). */
  onConnectFailed: (target: Instance) => void;
}

/** One request to forward. */
export interface HttpForward {
  /** Upper-case method. */
  method: string;
  /** The chosen instance. */
  target: Instance;
  /** `http://ip:port` of the instance. */
  origin: string;
  /** Normalised path and query, as forwarded. */
  path: string;
  /** Headers to send (hop-by-hop ones removed, `X-Forwarded-*` added). */
  headers: Record<string, string | string[]>;
  /** The request may be repeated on another instance when nothing was sent. */
  retryable: boolean;
}

/** HTTP forwarding over one undici pool per upstream origin. */
export class HttpUpstream {
  readonly #o: HttpUpstreamOptions;
  readonly #pools = new Map<string, Pool>();

  constructor(options: HttpUpstreamOptions) {
    this.#o = options;
  }

  /** Forward `req` and stream the answer into `res`; every outcome but `retry` has answered `res`. */
  async forward(req: IncomingMessage, res: ServerResponse, f: HttpForward): Promise<Attempt> {
    const { maxBodyBytes, metrics } = this.#o;
    const { target } = f;
    // No AbortController per request (its signal plumbing is a measurable share of the gateway's CPU):
    // the pool's headersTimeout gives the 504, its bodyTimeout cuts a stalled body, and a client that
    // leaves makes the response pipeline fail, which destroys the upstream body.
    let tooLarge = false;
    let body: Transform | undefined;
    if (Number(req.headers["content-length"] ?? 0) > 0 || req.headers["transfer-encoding"] !== undefined) {
      let seen = 0;
      body = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          seen += chunk.length;
          if (seen > maxBodyBytes) {
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
      await this.#pool(f.origin).stream(
        { path: f.path, method: f.method as "GET", headers: f.headers, body: body ?? null },
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
        sendError(res, GatewayErrorCode.PAYLOAD_TOO_LARGE, tooLargeMessage(maxBodyBytes));
        return { outcome: "fail" };
      }
      if (res.headersSent) {
        // Failed mid-body: nothing can be retried or reported in HTTP/1.1; cut the response.
        // A client that left shows up as an aborted or prematurely closed writable: not an upstream error.
        if (!CLIENT_GONE_ERRORS.has(code)) {
          const kind = code === "UND_ERR_BODY_TIMEOUT" ? "timeout" : "reset";
          metrics.upstreamErrors.inc({ service: target.service, kind });
        }
        res.destroy();
        return CLIENT_GONE_ERRORS.has(code) ? { outcome: "fail" } : { outcome: "fail", error: err };
      }
      if (code === "UND_ERR_HEADERS_TIMEOUT" || code === "UND_ERR_BODY_TIMEOUT") {
        metrics.upstreamErrors.inc({ service: target.service, kind: "timeout" });
        sendError(res, GatewayErrorCode.TIMEOUT, `service "${target.service}" did not answer in time`);
        return { outcome: "fail", error: err };
      }
      // The client left (IncomingMessage.destroyed is no signal: it is set once a body was read).
      if (res.destroyed) return { outcome: "fail" };
      const connectFailed =
        CONNECT_ERRORS.has(code) || aggregateCodes(err).some((c) => CONNECT_ERRORS.has(c));
      // A keep-alive socket closed under us before any response byte: safe to repeat only when idempotent.
      const closedEarly = code === "UND_ERR_SOCKET" || code === "ECONNRESET";
      metrics.upstreamErrors.inc({ service: target.service, kind: connectFailed ? "connect" : "reset" });
      if (connectFailed) this.#o.onConnectFailed(target);
      this.#o.logger.debug({ code, service: target.service, instance: target.id }, "upstream attempt failed");
      if ((connectFailed || closedEarly) && f.retryable)
        return { outcome: "retry", error: err, reason: connectFailed ? "connect failed" : "closed early" };
      sendError(res, GatewayErrorCode.UPSTREAM, `service "${target.service}" failed to answer`);
      return { outcome: "fail", error: err };
    }
  }

  /**
   * Close every pool. A graceful close waits for requests still queued on a pool (a client that left
   * while its upstream hangs), at most `graceMs` and not past `signal` (a forced stop: at once); then
   * the pool is destroyed.
   */
  async close(graceMs: number, signal?: AbortSignal): Promise<void> {
    const pools = [...this.#pools.values()];
    this.#pools.clear();
    await Promise.all(
      pools.map(async (p) => {
        await settleWithin(p.close(), graceMs, signal);
        if (!p.closed) await p.destroy().catch(() => undefined);
      }),
    );
  }

  #pool(origin: string): Pool {
    let p = this.#pools.get(origin);
    if (!p) {
      const { upstreamConnections, upstreamTimeoutMs } = this.#o;
      p = new Pool(origin, {
        connections: upstreamConnections,
        keepAliveTimeout: POOL_KEEP_ALIVE_MS,
        headersTimeout: upstreamTimeoutMs,
        bodyTimeout: upstreamTimeoutMs,
        connectTimeout: Math.min(upstreamTimeoutMs || MAX_CONNECT_TIMEOUT_MS, MAX_CONNECT_TIMEOUT_MS),
      });
      this.#pools.set(origin, p);
    }
    return p;
  }
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
