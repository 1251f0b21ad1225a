/**
 * Request/reply RPC: handlers, calls, typed contracts, tracing.
 * @module
 */
export {
  type Api,
  type Contract,
  defineContract,
  type MethodOf,
  type MethodSchemas,
  type MethodTypes,
  type ParamsOf,
  type ResultOf,
  type Schema,
} from "./contract.js";
export { DeadlineTimer } from "./deadlines.js";
export {
  HTTP_ROUTE_METHOD,
  type HttpRouteHandler,
  type HttpRouteRequest,
  type HttpRouteResponse,
} from "./http-route.js";
export {
  type CallOptions,
  DEFAULT_RPC_TIMEOUT_MS,
  type HandleOptions,
  type Handler,
  type HandlerContext,
  InstanceLostError,
  Rpc,
  type RpcOptions,
  type RpcStats,
  RpcType,
} from "./rpc.js";
export { loadOtel, otelApi, outgoingTraceparent, parseTraceparent } from "./trace.js";
