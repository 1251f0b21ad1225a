/**
 * Request/reply RPC: the calling and answering halves, typed contracts, tracing.
 * @module
 */
export {
  type CallOptions,
  DEFAULT_RPC_TIMEOUT_MS,
  RpcClient,
  type RpcClientOptions,
  type RpcClientStats,
} from "./client.js";
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
export { Rpc, type RpcOptions, type RpcStats } from "./rpc.js";
export {
  type HandleOptions,
  type Handler,
  type HandlerContext,
  RpcServer,
  type RpcServerOptions,
  type RpcServerStats,
} from "./server.js";
export { loadOtel, otelApi, outgoingTraceparent, parseTraceparent } from "./trace.js";
