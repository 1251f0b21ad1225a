/**
 * Header handling for proxied requests and responses (RFC 9110 §7.6.1): hop-by-hop headers are
 * removed in both directions, including any named in `Connection`, and the `X-Forwarded-*` headers and
 * a request id are added on the way in.
 *
 * @module
 */

import type { IncomingHttpHeaders } from "node:http";

/** Headers that describe one connection, never forwarded (RFC 9110 §7.6.1, plus `Proxy-*`). */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "proxy-authenticate",
  "proxy-authorization",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** Header carrying the request id (kept when the client sends a sane one). */
export const REQUEST_ID_HEADER = "x-request-id";

const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,128}$/;

/** True when `value` is acceptable as a client-supplied request id. */
export function isValidRequestId(value: unknown): value is string {
  return typeof value === "string" && REQUEST_ID_RE.test(value);
}

/** Names listed in `Connection` header values (lower-case). */
function connectionTokens(value: string | string[] | undefined): Set<string> {
  const out = new Set<string>();
  if (value === undefined) return out;
  for (const v of Array.isArray(value) ? value : [value]) {
    for (const t of v.split(",")) {
      const name = t.trim().toLowerCase();
      if (name) out.add(name);
    }
  }
  return out;
}

/** True when `name` (lower-case) must not be forwarded given the `Connection` tokens. */
function isHopByHop(name: string, tokens: Set<string>): boolean {
  return HOP_BY_HOP.has(name) || name.startsWith("proxy-") || tokens.has(name);
}

/** Copy of `headers` without hop-by-hop headers (names lower-case, as node delivers them). */
export function stripHopByHop(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>) {
  const tokens = connectionTokens(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    const name = k.toLowerCase();
    if (isHopByHop(name, tokens)) continue;
    out[name] = v;
  }
  return out;
}

/** What {@link forwardHeaders} needs to know about the client connection. */
export interface ClientInfo {
  /** Client IP address. */
  ip: string;
  /** `http` or `https` as seen by the client. */
  proto: string;
  /** The `Host` the client asked for. */
  host: string | undefined;
  /** Request id of this request. */
  requestId: string;
}

/**
 * Headers to send upstream: the client's headers minus hop-by-hop ones and `Host` (the upstream gets
 * its own), plus `X-Forwarded-For` (appended), `-Proto`, `-Host` and the request id.
 */
export function forwardHeaders(
  headers: IncomingHttpHeaders,
  client: ClientInfo,
): Record<string, string | string[]> {
  const out = stripHopByHop(headers);
  delete out.host;
  // `Expect: 100-continue` was already answered by this server (Node sends the 100 itself).
  delete out.expect;
  const prior = out["x-forwarded-for"];
  const priorText = Array.isArray(prior) ? prior.join(", ") : prior;
  out["x-forwarded-for"] = priorText ? `${priorText}, ${client.ip}` : client.ip;
  out["x-forwarded-proto"] = client.proto;
  if (client.host !== undefined) out["x-forwarded-host"] = client.host;
  out[REQUEST_ID_HEADER] = client.requestId;
  return out;
}
