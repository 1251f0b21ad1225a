/**
 * redmesh: lightweight microservices on one shared Redis.
 *
 * ```ts
 * import { createService } from "redmesh";
 * const svc = createService({ name: "inventory", redis: "redis://127.0.0.1:6379" });
 * await svc.start();
 * console.log(await svc.registry.instances("inventory"));
 * await svc.stop();
 * ```
 * @module
 */
export * from "./balancer/index.js";
export * from "./config/index.js";
export * from "./context.js";
export * from "./envelope/index.js";
export * from "./errors.js";
export * from "./health/index.js";
export {
  assertInstanceId,
  assertServiceName,
  createKeys,
  isInstanceId,
  isServiceName,
  type Keys,
  type KeysOptions,
  RESERVED_SERVICE_NAMES,
} from "./keys.js";
export * from "./log/index.js";
export { type LogFn, type Logger, silentLogger } from "./logger.js";
export * from "./messaging/index.js";
export * from "./queue/index.js";
export * from "./redis/index.js";
export * from "./registry/index.js";
export * from "./rpc/index.js";
export * from "./security/index.js";
export {
  createService,
  DEFAULT_SERVICE_OPTIONS,
  type RegistryView,
  Service,
  type ServiceEvents,
  type ServiceOptions,
  ServiceState,
  type ServiceStateValue,
  type ServiceStats,
} from "./service.js";
