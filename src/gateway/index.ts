/**
 * The API gateway (`redmesh/gateway`): HTTP and WebSocket in front of the services of a namespace.
 * A separate entry point so that services importing `redmesh` never load undici, ws or prom-client.
 *
 * ```ts
 * import { createGateway } from "redmesh/gateway";
 * const gw = createGateway({ redis: "redis://127.0.0.1:6379", port: 8080 });
 * await gw.start();
 * ```
 * @module
 */
export { type CorsOptions, CorsPolicy } from "./cors.js";
export {
  GATEWAY_ERROR_STATUS,
  GatewayErrorCode,
  type GatewayErrorCodeValue,
} from "./errors.js";
export { createRoundRobinPicker } from "./forwarder.js";
export {
  createGateway,
  Gateway,
  GatewayState,
  type GatewayStateValue,
  runGateway,
} from "./gateway.js";
export { forwardHeaders, HOP_BY_HOP, stripHopByHop } from "./headers.js";
export { GatewayMetrics } from "./metrics.js";
export {
  DEFAULT_GATEWAY_LIMITS,
  DEFAULT_GATEWAY_OPTIONS,
  type GatewayLimits,
  type GatewayOptions,
  type GatewayPicker,
} from "./options.js";
export { type NormalizedPath, normalizePath, PathProblem, type PathProblemValue } from "./path.js";
export { type RateDecision, type RateLimitOptions, TokenBucketLimiter } from "./rate-limit.js";
export {
  ANY_METHOD,
  buildRouteTable,
  parsePattern,
  type RouteEntry,
  type RouteMatch,
  RouteTable,
} from "./router.js";
export type { GatewayRpcInvoker, GatewayRpcRequest, GatewayRpcResponse } from "./upstream-rpc.js";
export { WS_CLOSE_GOING_AWAY } from "./ws-bridge.js";
