/**
 * Forwarding to an instance that advertises no HTTP address: the body is read whole (bounded by
 * `maxBodyBytes`) and parsed when JSON, the request goes through a {@link GatewayRpcInvoker} (by
 * default redmesh RPC to the route's `svc.route()` handler), and the answer, or the error, becomes the
 * HTTP response.
 *
 * @module
 */

import type { IncomingMessage, ServerResponse } from "node:http";
import { ErrorCode, RedmeshError } from "../errors.js";
import { safeJsonParse } from "../json.js";
import type { Instance } from "../registry/index.js";
import { HTTP_ROUTE_METHOD, type HttpRouteRequest, type HttpRouteResponse } from "../rpc/index.js";
import type { Service } from "../service.js";
import { GatewayErrorCode, sendError } from "./errors.js";
import { stripHopByHop } from "./headers.js";
import type { GatewayMetrics } from "./metrics.js";
import { type Attempt, BodyTooLarge, tooLargeMessage } from "./upstream.js";

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

/** How the gateway forwards a request to an instance that advertises no HTTP address. */
export type GatewayRpcInvoker = (
  target: { service: string; instanceId?: string },
  request: GatewayRpcRequest,
  opts: { timeoutMs: number; signal: AbortSignal },
) => Promise<GatewayRpcResponse>;

/** The default invoker: redmesh RPC from `service` to the route's handler (`svc.route()` on the other side). */
export function createServiceRpcInvoker(service: Service): GatewayRpcInvoker {
  return async (target, request, { timeoutMs, signal }) => {
    const to = target.instanceId ? `${target.instanceId}@${target.service}` : target.service;
    const out = await service.call<HttpRouteResponse>(to, HTTP_ROUTE_METHOD, request, {
      timeout: timeoutMs,
      signal,
    });
    const res: GatewayRpcResponse = { status: out?.status ?? 200 };
    if (out?.headers) res.headers = out.headers;
    if (out?.body !== undefined) res.body = out.body;
    return res;
  };
}

/** What {@link RpcUpstream} needs from the gateway. Durations in milliseconds. */
export interface RpcUpstreamOptions {
  /** The forwarder. */
  invoker: GatewayRpcInvoker;
  /** Largest request body (413 beyond). */
  maxBodyBytes: number;
  /** Time the invoker has to answer (504 beyond). */
  upstreamTimeoutMs: number;
  /** Where upstream errors are counted. */
  metrics: GatewayMetrics;
}

/** One request to forward. */
export interface RpcForward {
  /** Upper-case method. */
  method: string;
  /** The chosen instance. */
  target: Instance;
  /** Normalised path, without the query. */
  path: string;
  /** Raw query string (without `?`). */
  query: string;
  /** Path parameters of the matched route. */
  params: Record<string, string>;
  /** Headers to pass on (hop-by-hop ones removed, `X-Forwarded-*` added). */
  headers: Record<string, string | string[]>;
  /** The matched route pattern. */
  route: string;
}

/** Forwarding through the RPC seam. */
export class RpcUpstream {
  readonly #o: RpcUpstreamOptions;

  constructor(options: RpcUpstreamOptions) {
    this.#o = options;
  }

  /** Forward `req` and answer `res` (never `retry`: a call may have reached the instance). */
  async forward(req: IncomingMessage, res: ServerResponse, f: RpcForward): Promise<Attempt> {
    const { maxBodyBytes, upstreamTimeoutMs, metrics } = this.#o;
    const { target } = f;
    let raw: Buffer;
    try {
      raw = await readBody(req, maxBodyBytes);
    } catch (err) {
      res.shouldKeepAlive = false;
      if (err instanceof BodyTooLarge)
        sendError(res, GatewayErrorCode.PAYLOAD_TOO_LARGE, tooLargeMessage(maxBodyBytes));
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
    const timer = setTimeout(() => ac.abort(), upstreamTimeoutMs);
    const onClientGone = () => ac.abort();
    res.once("close", onClientGone);
    try {
      const out = await this.#o.invoker(
        { service: target.service, instanceId: target.id },
        {
          route: f.route,
          method: f.method,
          path: f.path,
          params: f.params,
          query: parseQuery(f.query),
          headers: f.headers,
          body,
        },
        { timeoutMs: upstreamTimeoutMs, signal: ac.signal },
      );
      if (res.destroyed) return { outcome: "fail" };
      send(res, f.method, out);
      return { outcome: "ok" };
    } catch (err) {
      if (ac.signal.aborted && res.destroyed) return { outcome: "fail" };
      sendRpcError(res, metrics, target.service, err, ac.signal.aborted);
      return { outcome: "fail", error: err };
    } finally {
      clearTimeout(timer);
      res.off("close", onClientGone);
    }
  }
}

/** Write the invoker's answer (a body that is not a string or Buffer goes as JSON). */
function send(res: ServerResponse, method: string, out: GatewayRpcResponse): void {
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
  const status = Number.isInteger(out.status) && out.status >= 200 && out.status <= 599 ? out.status : 502;
  for (const [k, v] of Object.entries(h)) res.setHeader(k, v);
  res.setHeader("content-length", payload?.length ?? 0);
  res.writeHead(status);
  res.end(method === "HEAD" ? undefined : payload);
}

/** Map an invoker's failure to the response (`timedOut`: our deadline fired, or the client left). */
function sendRpcError(
  res: ServerResponse,
  metrics: GatewayMetrics,
  service: string,
  err: unknown,
  timedOut: boolean,
): void {
  const code = err instanceof RedmeshError ? err.code : "";
  if (code === ErrorCode.TIMEOUT || timedOut) {
    metrics.upstreamErrors.inc({ service, kind: "timeout" });
    sendError(res, GatewayErrorCode.TIMEOUT, `service "${service}" did not answer in time`);
  } else if (code === ErrorCode.NO_HANDLER) {
    sendError(
      res,
      GatewayErrorCode.RPC_UNAVAILABLE,
      `service "${service}" has no HTTP address and answers no routes over RPC`,
    );
  } else if (code === ErrorCode.VALIDATION) {
    // The service rejected the request's content: the client's problem, and the message is for it.
    sendError(res, GatewayErrorCode.BAD_REQUEST, (err as RedmeshError).message);
  } else if (code === ErrorCode.NO_INSTANCE || code === ErrorCode.INSTANCE_LOST) {
    metrics.upstreamErrors.inc({ service, kind: "rpc" });
    sendError(res, GatewayErrorCode.NO_INSTANCE, `no live instance of service "${service}"`);
  } else {
    metrics.upstreamErrors.inc({ service, kind: "rpc" });
    sendError(res, GatewayErrorCode.UPSTREAM, `service "${service}" failed to answer`);
  }
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
