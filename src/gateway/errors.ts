/**
 * What the gateway answers when it cannot (or may not) forward a request: a stable code and HTTP status
 * per case, sent as `{ "error": { "code", "message" } }`. Messages are written for API clients: they
 * never carry stack traces, Redis key names or upstream addresses.
 *
 * @module
 */

import type { ServerResponse } from "node:http";
import { ErrorCode } from "../errors.js";

/** Gateway error codes (the ones shared with the library reuse its {@link ErrorCode} values). */
export const GatewayErrorCode = {
  BAD_REQUEST: "ERR_BAD_REQUEST",
  BAD_PATH: "ERR_BAD_PATH",
  NOT_FOUND: "ERR_NOT_FOUND",
  METHOD_NOT_ALLOWED: "ERR_METHOD_NOT_ALLOWED",
  FORBIDDEN_ORIGIN: "ERR_FORBIDDEN_ORIGIN",
  PAYLOAD_TOO_LARGE: "ERR_PAYLOAD_TOO_LARGE",
  RATE_LIMITED: "ERR_RATE_LIMITED",
  UPSTREAM: "ERR_UPSTREAM",
  NO_INSTANCE: ErrorCode.NO_INSTANCE,
  RPC_UNAVAILABLE: "ERR_RPC_UNAVAILABLE",
  REGISTRY_UNAVAILABLE: ErrorCode.REDIS_UNAVAILABLE,
  CIRCUIT_OPEN: ErrorCode.CIRCUIT_OPEN,
  SHUTTING_DOWN: "ERR_SHUTTING_DOWN",
  TIMEOUT: ErrorCode.TIMEOUT,
} as const;
/** Union of {@link GatewayErrorCode} values. */
export type GatewayErrorCodeValue = (typeof GatewayErrorCode)[keyof typeof GatewayErrorCode];

/** HTTP status of each gateway error code. */
export const GATEWAY_ERROR_STATUS: Readonly<Record<GatewayErrorCodeValue, number>> = Object.freeze({
  ERR_BAD_REQUEST: 400,
  ERR_BAD_PATH: 400,
  ERR_NOT_FOUND: 404,
  ERR_METHOD_NOT_ALLOWED: 405,
  ERR_FORBIDDEN_ORIGIN: 403,
  ERR_PAYLOAD_TOO_LARGE: 413,
  ERR_RATE_LIMITED: 429,
  ERR_UPSTREAM: 502,
  ERR_NO_INSTANCE: 503,
  ERR_RPC_UNAVAILABLE: 503,
  ERR_REDIS_UNAVAILABLE: 503,
  ERR_CIRCUIT_OPEN: 503,
  ERR_SHUTTING_DOWN: 503,
  ERR_TIMEOUT: 504,
});

/**
 * Send a JSON error response (when headers are not sent yet; otherwise the response is cut, which is
 * all HTTP/1.1 allows once a status line is out).
 */
export function sendError(
  res: ServerResponse,
  code: GatewayErrorCodeValue,
  message: string,
  extraHeaders: Record<string, string> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(GATEWAY_ERROR_STATUS[code], {
    ...extraHeaders,
    "content-type": "application/json; charset=utf-8",
    "content-length": Buffer.byteLength(body),
    "cache-control": "no-store",
  });
  res.end(body);
}
