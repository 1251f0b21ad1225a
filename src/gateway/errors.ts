/**
 * What the gateway answers when it cannot (or may not) forward a request: a stable code and HTTP status
 * per case, sent as `{ "error": { "code", "message" } }`. Messages are written for API clients: they
 * never carry stack traces, Redis key names or upstream addresses.
 *
 * @module
 */

import type { ServerResponse } from "node:http";
import { ErrorCode } from "../errors.js";

/** The codes the gateway answers with: a subset of the one catalogue, {@link ErrorCode} (docs/errors.md). */
export const GatewayErrorCode = {
  BAD_REQUEST: ErrorCode.BAD_REQUEST,
  BAD_PATH: ErrorCode.BAD_PATH,
  NOT_FOUND: ErrorCode.NOT_FOUND,
  METHOD_NOT_ALLOWED: ErrorCode.METHOD_NOT_ALLOWED,
  FORBIDDEN_ORIGIN: ErrorCode.FORBIDDEN_ORIGIN,
  PAYLOAD_TOO_LARGE: ErrorCode.PAYLOAD_TOO_LARGE,
  RATE_LIMITED: ErrorCode.RATE_LIMITED,
  UPSTREAM: ErrorCode.UPSTREAM,
  NO_INSTANCE: ErrorCode.NO_INSTANCE,
  RPC_UNAVAILABLE: ErrorCode.RPC_UNAVAILABLE,
  REGISTRY_UNAVAILABLE: ErrorCode.REDIS_UNAVAILABLE,
  CIRCUIT_OPEN: ErrorCode.CIRCUIT_OPEN,
  SHUTTING_DOWN: ErrorCode.SHUTTING_DOWN,
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
