/**
 * HTTP routes answered over RPC: a service with no HTTP server registers a route with
 * `svc.route("[get]/v1/items/:id", handler)`, and the gateway forwards matching requests to it as a
 * call of {@link HTTP_ROUTE_METHOD}, carrying an {@link HttpRouteRequest}; the handler's
 * {@link HttpRouteResponse} becomes the HTTP response.
 *
 * @module
 */

/** The RPC method the gateway calls for routes of services that advertise no HTTP address. */
export const HTTP_ROUTE_METHOD = "rm.http";

/** An HTTP request as a route handler receives it. */
export interface HttpRouteRequest {
  /** The route pattern that matched, normalised (`[get]/v1/items/:id`). */
  route?: string;
  /** Upper-case HTTP method. */
  method: string;
  /** Normalised path, as routed. */
  path: string;
  /** Route parameters (`:id` → `params.id`; a wildcard under its name, `*` by default). */
  params: Record<string, string>;
  /** Query parameters (repeated keys give arrays). */
  query: Record<string, string | string[]>;
  /** Request headers without hop-by-hop ones, plus `x-forwarded-*` and `x-request-id`. */
  headers: Record<string, string | string[]>;
  /** The body: parsed JSON when the content type is JSON, else text; `undefined` when empty. */
  body: unknown;
}

/** What a route handler answers. */
export interface HttpRouteResponse {
  /** HTTP status. @default 200 */
  status?: number;
  /** Response headers (hop-by-hop ones are dropped by the gateway). */
  headers?: Record<string, string | string[]>;
  /** Body: a string is sent as is, anything else as JSON; `undefined` for none. */
  body?: unknown;
}

/** A route handler. Throwing a RedmeshError answers with a mapped status (see docs/gateway.md). */
export type HttpRouteHandler = (
  request: HttpRouteRequest,
  ctx: { signal: AbortSignal },
) => HttpRouteResponse | Promise<HttpRouteResponse>;
