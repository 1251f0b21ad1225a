/**
 * Registry data shapes: what an instance publishes about itself and what discovery returns.
 * @module
 */

/** Health status an instance reports. `draining` instances get no new work. */
export const InstanceStatus = {
  OK: "ok",
  DEGRADED: "degraded",
  DRAINING: "draining",
} as const;
/** Union of instance statuses. */
export type InstanceStatusValue = (typeof InstanceStatus)[keyof typeof InstanceStatus];

/**
 * One entry of the `<ns>:service:nodes` hash (Hydra's shape, field for field) plus redmesh's
 * additions under `rm`, which Hydra ignores.
 */
export interface NodeEntry {
  serviceName: string;
  serviceDescription: string;
  version: string;
  instanceID: string;
  /** ISO-8601 time of the last registration or update. */
  updatedOn: string;
  processID: number;
  ip: string;
  port: number;
  hostName: string;
  /** redmesh additions; absent on Hydra instances. */
  rm?: {
    /** Registry format version. */
    v: 1;
    /** Frame formats this instance understands (message coalescing, DESIGN.md §3). */
    frames?: string[];
    /** Current status. */
    status?: InstanceStatusValue;
    /** ISO-8601 start time. */
    startedOn?: string;
  };
}

/** A live instance as discovery returns it. */
export interface Instance {
  /** Service name. */
  service: string;
  /** Instance id (32 hex). */
  id: string;
  /** Presence deadline on the local clock (epoch ms): past it, the instance is considered gone. */
  deadline: number;
  /** The node entry, or `undefined` when the instance is present but its entry is missing. */
  node: NodeEntry | undefined;
  /** True when the instance is a redmesh instance (false: Hydra or unknown). */
  redmesh: boolean;
  /** Convenience: the node's status, `ok` when unknown. */
  status: InstanceStatusValue;
}

/** Registry events, published on `keys.events()` as JSON. */
export type RegistryEvent =
  | { t: "join"; svc: string; iid: string; ttl: number; node: NodeEntry }
  | { t: "leave"; svc: string; iid: string }
  | { t: "update"; svc: string; iid: string; node: NodeEntry }
  | { t: "routes"; svc: string }
  | { t: "config"; svc: string; version?: string };
