/**
 * The only place that builds Redis key and channel names (DESIGN.md §2).
 *
 * With `namespace: "hydra"` and `cluster: false` every Hydra key is byte-identical to Hydra 1.9's, so
 * Hydra and redmesh services share one Redis. In Cluster mode every per-service key carries the hash
 * tag `{<svc>}` so that a service's keys share one slot (multi-key Lua scripts then never CROSSSLOT).
 *
 * @module
 */

import { ErrorCode, ValidationError } from "./errors.js";

/** Service names: lower-case, start alphanumeric, at most 63 characters (DESIGN.md §2). */
const SERVICE_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;
/** Instance ids: a UUIDv4 without dashes, lower-case (what Hydra generates too). */
const INSTANCE_ID_RE = /^[0-9a-f]{32}$/;
/** Namespaces: the same alphabet as names, so a namespace can never inject a `:` or a hash tag. */
const NAMESPACE_RE = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;
/** Queue / sub-resource names inside a service. */
const RESOURCE_NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/**
 * Names that would collide with fixed key segments (`<ns>:service:nodes`, the `mc` channels, …) or
 * read ambiguously in `redis-cli`.
 */
export const RESERVED_SERVICE_NAMES: ReadonlySet<string> = new Set([
  "nodes",
  "mc",
  "rm",
  "service",
  "services",
  "routes",
  "configs",
  "health",
  "presence",
]);

/** Describe a value for an error message without echoing megabytes or control characters back. */
function show(value: unknown): string {
  if (typeof value !== "string") return typeof value;
  const clipped = value.length > 80 ? `${value.slice(0, 80)}…` : value;
  return JSON.stringify(clipped);
}

/**
 * Validate a service name, throwing a {@link ValidationError} (`ERR_INVALID_NAME`) that says what is
 * wrong and how to fix it.
 */
export function assertServiceName(name: unknown): asserts name is string {
  if (typeof name !== "string" || !SERVICE_NAME_RE.test(name)) {
    throw new ValidationError(
      `invalid service name ${show(name)}: use 1-63 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit`,
      { code: ErrorCode.INVALID_NAME, data: { name: typeof name === "string" ? name.slice(0, 200) : null } },
    );
  }
  if (RESERVED_SERVICE_NAMES.has(name)) {
    throw new ValidationError(
      `invalid service name ${show(name)}: it is reserved (it would collide with a fixed key segment)`,
      { code: ErrorCode.INVALID_NAME, data: { name } },
    );
  }
}

/** True when `name` is a valid, non-reserved service name. */
export function isServiceName(name: unknown): name is string {
  return typeof name === "string" && SERVICE_NAME_RE.test(name) && !RESERVED_SERVICE_NAMES.has(name);
}

/** Validate an instance id (32 lower-case hex characters). */
export function assertInstanceId(iid: unknown): asserts iid is string {
  if (typeof iid !== "string" || !INSTANCE_ID_RE.test(iid)) {
    throw new ValidationError(`invalid instance id ${show(iid)}: expected 32 lower-case hex characters`, {
      code: ErrorCode.INVALID_INSTANCE_ID,
    });
  }
}

/** True when `iid` is a valid instance id. */
export function isInstanceId(iid: unknown): iid is string {
  return typeof iid === "string" && INSTANCE_ID_RE.test(iid);
}

/** Validate a namespace. */
export function assertNamespace(ns: unknown): asserts ns is string {
  if (typeof ns !== "string" || !NAMESPACE_RE.test(ns)) {
    throw new ValidationError(
      `invalid namespace ${show(ns)}: use 1-63 characters of letters, digits, ".", "_" or "-"`,
      { code: ErrorCode.INVALID_OPTIONS },
    );
  }
}

/** Validate a resource (queue) name inside a service. */
export function assertResourceName(kind: string, name: unknown): asserts name is string {
  if (typeof name !== "string" || !RESOURCE_NAME_RE.test(name)) {
    throw new ValidationError(
      `invalid ${kind} name ${show(name)}: use 1-63 characters of a-z, 0-9, ".", "_" or "-", starting with a letter or digit`,
      { code: ErrorCode.INVALID_NAME },
    );
  }
}

/** Options of {@link createKeys}. */
export interface KeysOptions {
  /**
   * Key prefix. `"hydra"` gives Hydra-compatible keys.
   * @default "redmesh"
   */
  namespace?: string;
  /**
   * Add the `{<svc>}` hash tag to per-service keys and channels (Redis Cluster).
   * @default false
   */
  cluster?: boolean;
}

/** Key and channel builder for one namespace. Get one from {@link createKeys}. */
export interface Keys {
  /** The namespace these keys live in. */
  readonly namespace: string;
  /** Whether per-service keys carry the `{<svc>}` hash tag. */
  readonly cluster: boolean;

  // ---- Hydra-compatible keys ----
  /** STRING JSON `{serviceName,type,registeredOn}`: the service exists. */
  service(svc: string): string;
  /** STRING (= iid) with a TTL: the instance is alive. */
  presence(svc: string, iid: string): string;
  /** HASH iid → node JSON for every instance of every service. */
  nodes(): string;
  /** STRING JSON: latest health snapshot of an instance. */
  health(svc: string, iid: string): string;
  /** LIST (newest first, capped): warnings and errors of an instance. */
  healthLog(svc: string, iid: string): string;
  /** SET of `[verb]/path` route patterns the service answers. */
  routes(svc: string): string;
  /** HASH version → config JSON. */
  configs(svc: string): string;
  /** LIST of pending queue messages for the service (Hydra's spelling: "mqrecieved"). */
  queuePending(svc: string): string;
  /** Channel: broadcast to every instance of a service. */
  serviceChannel(svc: string): string;
  /** Channel: direct to one instance. */
  instanceChannel(svc: string, iid: string): string;

  // ---- redmesh additions ----
  /** ZSET iid → presence deadline (ms, Redis clock): discovery without SCAN. */
  instanceIndex(svc: string): string;
  /** SET of every registered service name. */
  serviceIndex(): string;
  /** Channel carrying registry events (join / leave / update / routes / config). */
  events(): string;
  /** STREAM: the service's distributed log. */
  log(svc: string): string;
  /** STRING: the active config version. */
  configActive(svc: string): string;
  /**
   * A key private to one queue of a service: `<ns>:service:<svc>:mq:<queue>:<part>`.
   * `queue` is the queue name (the default queue is `"default"`), `part` the structure (e.g. `delayed`).
   */
  queue(svc: string, queue: string, part: string): string;
  /** SET of the queue names a service uses (written when a queue is first used; for tools). */
  queueIndex(svc: string): string;
  /** A key private to one consumer of a queue: `<ns>:service:<svc>:mq:<queue>:<part>:<iid>`. */
  queueConsumer(svc: string, queue: string, part: string, iid: string): string;
  /** The prefix shared by every key of a service (for ACL key patterns). */
  servicePrefix(svc: string): string;
  /** The prefix shared by every channel of a service (for ACL channel patterns). */
  channelPrefix(svc: string): string;
}

/** Build the key/channel builder for a namespace. Validates the namespace. */
export function createKeys(options: KeysOptions = {}): Keys {
  const ns = options.namespace ?? "redmesh";
  assertNamespace(ns);
  const cluster = options.cluster ?? false;
  const root = `${ns}:service`;
  // In Cluster mode the tag puts every key of one service in one slot (DESIGN.md §2 "Rules").
  const t = cluster ? (svc: string) => `{${svc}}` : (svc: string) => svc;
  const mc = `${root}:mc`;
  const ext = `${ns}:rm`;
  return Object.freeze({
    namespace: ns,
    cluster,
    service: (svc: string) => `${root}:${t(svc)}:service`,
    presence: (svc: string, iid: string) => `${root}:${t(svc)}:${iid}:presence`,
    nodes: () => `${root}:nodes`,
    health: (svc: string, iid: string) => `${root}:${t(svc)}:${iid}:health`,
    healthLog: (svc: string, iid: string) => `${root}:${t(svc)}:${iid}:health:log`,
    routes: (svc: string) => `${root}:${t(svc)}:service:routes`,
    configs: (svc: string) => `${root}:${t(svc)}:configs`,
    queuePending: (svc: string) => `${root}:${t(svc)}:mqrecieved`,
    serviceChannel: (svc: string) => `${mc}:${t(svc)}`,
    instanceChannel: (svc: string, iid: string) => `${mc}:${t(svc)}:${iid}`,
    instanceIndex: (svc: string) => `${root}:${t(svc)}:instances`,
    serviceIndex: () => `${ext}:services`,
    events: () => `${ext}:events`,
    log: (svc: string) => `${root}:${t(svc)}:log`,
    configActive: (svc: string) => `${root}:${t(svc)}:config:active`,
    queue: (svc: string, queue: string, part: string) => `${root}:${t(svc)}:mq:${queue}:${part}`,
    queueIndex: (svc: string) => `${root}:${t(svc)}:queues`,
    queueConsumer: (svc: string, queue: string, part: string, iid: string) =>
      `${root}:${t(svc)}:mq:${queue}:${part}:${iid}`,
    servicePrefix: (svc: string) => `${root}:${t(svc)}:`,
    channelPrefix: (svc: string) => `${mc}:${t(svc)}`,
  });
}
