/**
 * What `createService()` takes and gives: its options with their defaults, validated by hand (no
 * schema library at run time: loading one would grow every service process, and an idle service
 * must stay small), and the types of its events, registry view and counters.
 *
 * @module
 */

import type { BalancerOptions, InstancePicker, StrategyName } from "./balancer/index.js";
import type { ConfigOptions } from "./config/index.js";
import type { UmfMessage } from "./envelope/index.js";
import { ErrorCode, type RedmeshError, ValidationError } from "./errors.js";
import type { LogOptions } from "./log/index.js";
import type { Logger } from "./logger.js";
import type { MessagingStats } from "./messaging/index.js";
import type { RedisOptions } from "./redis/index.js";
import type { Discovery } from "./registry/index.js";
import type { RpcStats } from "./rpc/index.js";

/** Options of {@link createService}. Durations are in milliseconds. */
export interface ServiceOptions<C = unknown> {
  /** Service name: 1-63 of `a-z 0-9 . _ -`, starting with a letter or digit. */
  name: string;
  /** Redis to use (URL or options). @default "redis://127.0.0.1:6379" */
  redis?: RedisOptions;
  /** Key prefix; `"hydra"` for Hydra compatibility. @default "redmesh" */
  namespace?: string;
  /** Version advertised in the registry. @default "0.0.0" */
  version?: string;
  /** Human description advertised in the registry. @default "" */
  description?: string;
  /** Service type written in the `:service` key (Hydra's `serviceType`). @default "" */
  type?: string;
  /** IP address advertised (for HTTP routing by the gateway). @default "" (none) */
  ip?: string;
  /** Port advertised. @default 0 (none) */
  port?: number;
  /** Host name advertised. @default os.hostname() */
  hostName?: string;
  /** Instance id (32 lower-case hex). @default a fresh UUIDv4 without dashes */
  instanceId?: string;
  /** Presence key TTL. Must be at least twice `heartbeatMs`. @default 3000 */
  presenceTtlMs?: number;
  /** Presence refresh interval. @default 1000 */
  heartbeatMs?: number;
  /** Health snapshot interval. @default 5000 */
  healthIntervalMs?: number;
  /** Discovery cache reconciliation interval. @default 1000 */
  reconcileMs?: number;
  /** Discover Hydra instances too (via the `nodes` hash). @default true when namespace is "hydra" */
  hydraInterop?: boolean;
  /** Longest `stop()` waits for in-flight work before deregistering anyway. @default 5000 */
  stopGraceMs?: number;
  /** Longest `start()` waits for Redis. @default 5000 */
  connectTimeoutMs?: number;
  /** pino-compatible logger for redmesh's own diagnostics. @default silent */
  logger?: Logger;
  /** Distributed log settings (`svc.log`): level, stream cap, local echo, buffer bound. */
  log?: LogOptions;
  /** Shared config (`svc.config`): an optional schema (anything with zod's `safeParse`) and defaults. */
  config?: ConfigOptions<C>;
  /** HMAC-SHA256 secret: outgoing messages are signed, signed incoming ones are verified. */
  secret?: string | Buffer;
  /** Drop unsigned or badly signed messages (needs `secret`). @default false */
  requireSignature?: boolean;
  /**
   * Replay protection for signed messages (with `secret`): refuse ones whose timestamp is further than
   * this from the local clock, and message ids already seen within it. 0 turns it off. @default 30000
   */
  replayWindowMs?: number;
  /** Largest message accepted or sent, in bytes; checked before parsing. @default 1048576 */
  maxMessageBytes?: number;
  /** Default RPC call timeout. @default 10000 */
  rpcTimeoutMs?: number;
  /**
   * How calls and messages choose among live instances: a strategy name (`"random"`,
   * `"round-robin"`, `"least-outstanding"`, `"affinity"`) or full balancer options (breaker settings…).
   * The balancer keeps a circuit breaker per instance and, for least-outstanding, reads the in-flight
   * counts and event-loop lag instances publish in health (one MGET per target service per second at most).
   * @default "least-outstanding"
   */
  balancer?: StrategyName | BalancerOptions;
  /** A picker of your own instead of the built-in balancer (exclusive with `balancer`). */
  picker?: InstancePicker;
  /** Coalesce messages bound for one redmesh instance in one event-loop turn into one PUBLISH. @default true */
  coalesce?: boolean;
  /**
   * Most calls and sends in flight from this instance to one service (a caller-side bulkhead):
   * beyond, `ERR_BULKHEAD_FULL` at once, retried after a backoff within the call's `retries`.
   * 0: no limit. @default 0
   */
  maxInFlightPerService?: number;
}

/** Default service settings. */
export const DEFAULT_SERVICE_OPTIONS = Object.freeze({
  namespace: "redmesh",
  version: "0.0.0",
  description: "",
  type: "",
  ip: "",
  port: 0,
  // Hydra's values: presence written every second with a 3 s TTL, health every 5 s.
  presenceTtlMs: 3000,
  heartbeatMs: 1000,
  healthIntervalMs: 5000,
  reconcileMs: 1000,
  stopGraceMs: 5000,
  connectTimeoutMs: 5000,
});

/** Events a {@link Service} emits. */
export interface ServiceEvents {
  /** `start()` completed. */
  start: [];
  /** `stop()` completed. */
  stop: [];
  /** Redis became unreachable (or the subscriber socket replies arrive on); calls fail fast until `redis:up`. */
  "redis:down": [{ error: RedmeshError }];
  /** Redis is reachable again (the instance re-registers by itself if needed). */
  "redis:up": [];
  /** A non-fatal error (emitted only when someone listens; never thrown into the event loop). */
  error: [RedmeshError];
  /** A message addressed to this instance or its service that is not RPC traffic (long form). */
  message: [UmfMessage];
}

/** The discovery surface of a service (`svc.registry`). */
export interface RegistryView {
  /** Every registered service name. */
  services(): Promise<string[]>;
  /** Live instances of a service (from the local cache). */
  instances(service: string): ReturnType<Discovery["instances"]>;
  /** Every live instance of every service. */
  nodes(): ReturnType<Discovery["nodes"]>;
  /** Registered routes per service. */
  routes(service?: string): Promise<Record<string, string[]>>;
  /** Subscribe to discovery changes (`join`, `leave`, `routes`, `event`). */
  readonly events: Discovery;
}

/** Counters returned by {@link Service.stats}. */
export interface ServiceStats {
  heartbeats: number;
  heartbeatErrors: number;
  reregistrations: number;
  reconciles: number;
  registryEvents: number;
  badRegistryEvents: number;
  pruned: number;
  healthWrites: number;
  inFlight: number;
  /** Distributed log entries lost (buffer overflow while Redis was slow or down, failed writes). */
  logDropped: number;
  /** Messaging counters (received, dropped, evicted…). */
  messaging: MessagingStats;
  /** RPC counters (calls, timeouts, stray replies…). */
  rpc: RpcStats;
}

const DAY_MS = 86_400_000;

type Check = (v: unknown) => string | undefined;

const str =
  (max?: number): Check =>
  (v) =>
    typeof v !== "string"
      ? `expected a string, got ${typeName(v)}`
      : max !== undefined && v.length > max
        ? `must be at most ${max} characters`
        : undefined;
const int =
  (min: number, max: number): Check =>
  (v) =>
    typeof v !== "number" || !Number.isInteger(v)
      ? `expected an integer, got ${typeName(v)}`
      : v < min || v > max
        ? `must be between ${min} and ${max}`
        : undefined;
const bool: Check = (v) => (typeof v === "boolean" ? undefined : `expected a boolean, got ${typeName(v)}`);
const any: Check = () => undefined;
const secret: Check = (v) =>
  typeof v === "string" || Buffer.isBuffer(v)
    ? (v as string | Buffer).length === 0
      ? "must not be empty"
      : undefined
    : `expected a string or Buffer, got ${typeName(v)}`;
const picker: Check = (v) =>
  typeof v === "object" && v !== null && typeof (v as { pick?: unknown }).pick === "function"
    ? undefined
    : "expected an object with a pick(candidates, ctx) method";
const ms = (min: number) => int(min, DAY_MS);

/** Every option and its check (options not listed here are rejected as unknown). */
const CHECKS: Record<string, Check> = {
  name: str(),
  redis: any,
  namespace: str(),
  version: str(64),
  description: str(1024),
  type: str(64),
  ip: str(64),
  port: int(0, 65535),
  hostName: str(255),
  instanceId: str(),
  presenceTtlMs: ms(100),
  heartbeatMs: ms(20),
  healthIntervalMs: ms(100),
  reconcileMs: ms(20),
  hydraInterop: bool,
  stopGraceMs: ms(0),
  connectTimeoutMs: ms(1),
  logger: any,
  secret,
  requireSignature: bool,
  replayWindowMs: ms(0),
  maxMessageBytes: int(256, 512 * 1024 * 1024),
  rpcTimeoutMs: ms(1),
  picker,
  balancer: (v) =>
    typeof v === "string" || (typeof v === "object" && v !== null && !Array.isArray(v))
      ? undefined
      : "must be a strategy name or balancer options",
  coalesce: bool,
  maxInFlightPerService: int(0, 1_000_000),
  log: (v) => (typeof v === "object" && v !== null && !Array.isArray(v) ? undefined : "must be an object"),
  config: (v) => (typeof v === "object" && v !== null && !Array.isArray(v) ? undefined : "must be an object"),
};

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number" && Number.isNaN(v)) return "NaN";
  return typeof v;
}

/**
 * Check `createService` options; throws one `ValidationError` (`ERR_INVALID_OPTIONS`) listing every
 * problem, e.g. `invalid service options: port: must be between 0 and 65535; colour: unknown option`.
 */
export function checkServiceOptions(options: unknown): void {
  if (typeof options !== "object" || options === null || Array.isArray(options)) {
    throw new ValidationError("invalid service options: expected an object", {
      code: ErrorCode.INVALID_OPTIONS,
    });
  }
  const o = options as Record<string, unknown>;
  const problems: string[] = [];
  if (o.name === undefined) problems.push("name: required");
  for (const key of Object.keys(o)) {
    const check = CHECKS[key];
    if (!check) {
      problems.push(`${key}: unknown option`);
      continue;
    }
    const v = o[key];
    if (v === undefined) continue;
    const p = check(v);
    if (p) problems.push(`${key}: ${p}`);
  }
  if (o.requireSignature === true && o.secret === undefined) {
    problems.push("requireSignature: needs a secret");
  }
  if (problems.length > 0) {
    throw new ValidationError(`invalid service options: ${problems.join("; ")}`, {
      code: ErrorCode.INVALID_OPTIONS,
      data: { problems },
    });
  }
}
