/**
 * Registry: registration, presence, discovery and routes.
 * @module
 */
export {
  createDiscovery,
  DEFAULT_DISCOVERY_OPTIONS,
  Discovery,
  type DiscoveryEvents,
  type DiscoveryOptions,
  parseNode,
} from "./discovery.js";
export { Registration, type RegistrationOptions } from "./registration.js";
export {
  type Instance,
  InstanceStatus,
  type InstanceStatusValue,
  type NodeEntry,
  type RegistryEvent,
} from "./types.js";
