/**
 * The one error hierarchy of redmesh.
 *
 * Every error redmesh throws or rejects with is a {@link RedmeshError}: it has a stable string `code`
 * (documented with how to fix it in `docs/errors.md`), a `retryable` flag, optional structured `data`
 * and, when it wraps something, a standard `cause`. Errors cross the RPC wire as
 * `{ code, message, data, retryable }` and are rebuilt typed on the caller with {@link errorFromWire}.
 *
 * @module
 */

/** Stable error codes. Never rename one: callers and other services match on them. */
export const ErrorCode = {
  /** An option passed to a constructor or factory is invalid. */
  INVALID_OPTIONS: "ERR_INVALID_OPTIONS",
  /** A service name does not follow the naming rule or is reserved. */
  INVALID_NAME: "ERR_INVALID_NAME",
  /** An instance id is not 32 lower-case hex characters. */
  INVALID_INSTANCE_ID: "ERR_INVALID_INSTANCE_ID",
  /** A route pattern is malformed. */
  INVALID_ROUTE: "ERR_INVALID_ROUTE",
  /** A message (UMF envelope) is malformed. */
  INVALID_MESSAGE: "ERR_INVALID_MESSAGE",
  /** A message is larger than the configured limit. */
  MESSAGE_TOO_LARGE: "ERR_MESSAGE_TOO_LARGE",
  /** A signed message failed verification, or an unsigned one arrived while signing is enforced. */
  BAD_SIGNATURE: "ERR_BAD_SIGNATURE",
  /** The Redis URL or connection options are invalid. */
  INVALID_REDIS_URL: "ERR_INVALID_REDIS_URL",
  /** Redis could not be reached, or the connection dropped while a command was pending. */
  REDIS_UNAVAILABLE: "ERR_REDIS_UNAVAILABLE",
  /** Redis answered with an error. */
  REDIS_ERROR: "ERR_REDIS",
  /** A wait ran past its deadline. */
  TIMEOUT: "ERR_TIMEOUT",
  /** A wait was cancelled through its AbortSignal. */
  ABORTED: "ERR_ABORTED",
  /** The object is not started, or is stopping/stopped. */
  NOT_RUNNING: "ERR_NOT_RUNNING",
  /** `start()` was called on an object that is already started. */
  ALREADY_STARTED: "ERR_ALREADY_STARTED",
  /** No live instance of the target service exists. */
  NO_INSTANCE: "ERR_NO_INSTANCE",
  /** A handler threw: the remote error, rebuilt on the caller. */
  REMOTE: "ERR_REMOTE",
  /** The circuit breaker for the target is open. */
  CIRCUIT_OPEN: "ERR_CIRCUIT_OPEN",
  /** The handler's bulkhead (max in-flight) is full. */
  BULKHEAD_FULL: "ERR_BULKHEAD_FULL",
  /** No handler is registered for the called method. */
  NO_HANDLER: "ERR_NO_HANDLER",
  /** Params or a result failed schema validation. */
  VALIDATION: "ERR_VALIDATION",
  /** A value could not be serialised (cycles, BigInt, …). */
  SERIALIZATION: "ERR_SERIALIZATION",
  /** The instance handling a call went away (presence lost) before it answered. */
  INSTANCE_LOST: "ERR_INSTANCE_LOST",
  /** No configuration is stored for the service (and no defaults were given). */
  CONFIG_NOT_FOUND: "ERR_CONFIG_NOT_FOUND",
  /** A configuration version already exists, or an expected version did not match. */
  CONFIG_CONFLICT: "ERR_CONFIG_CONFLICT",
  /**
   * A write (a queue `add`) reached the primary but fewer replicas than required confirmed it in
   * time: a failover now could lose it, so it was not acknowledged. Retryable.
   */
  NOT_REPLICATED: "ERR_NOT_REPLICATED",
  // The gateway's HTTP answers (docs/gateway.md "Errors"): the `error.code` of its JSON error bodies.
  /** The request is malformed (body not JSON where JSON is declared, rejected by the service). HTTP 400. */
  BAD_REQUEST: "ERR_BAD_REQUEST",
  /** The request path is not acceptable (traversal, encoded separators, control characters). HTTP 400. */
  BAD_PATH: "ERR_BAD_PATH",
  /** No registered route matches the path (or a service has no handler for the route). HTTP 404. */
  NOT_FOUND: "ERR_NOT_FOUND",
  /** A route matches the path but not the method. HTTP 405. */
  METHOD_NOT_ALLOWED: "ERR_METHOD_NOT_ALLOWED",
  /** The request's origin or method is not in the CORS allow-list. HTTP 403. */
  FORBIDDEN_ORIGIN: "ERR_FORBIDDEN_ORIGIN",
  /** The request body is larger than the gateway's limit. HTTP 413. */
  PAYLOAD_TOO_LARGE: "ERR_PAYLOAD_TOO_LARGE",
  /** The client is over its rate limit. HTTP 429. */
  RATE_LIMITED: "ERR_RATE_LIMITED",
  /** The upstream instance failed to answer (reset, error). HTTP 502. */
  UPSTREAM: "ERR_UPSTREAM",
  /** The instance has no HTTP address and answers no routes over RPC. HTTP 502. */
  RPC_UNAVAILABLE: "ERR_RPC_UNAVAILABLE",
  /** The gateway is stopping. HTTP 503. */
  SHUTTING_DOWN: "ERR_SHUTTING_DOWN",
} as const;

/** Union of every stable error code. */
export type ErrorCodeValue = (typeof ErrorCode)[keyof typeof ErrorCode];

/** Options accepted by every redmesh error constructor. */
export interface RedmeshErrorOptions {
  /** The underlying error, kept as the standard `cause`. */
  cause?: unknown;
  /** Structured, JSON-safe detail (crosses the wire with RPC errors). */
  data?: Record<string, unknown>;
  /** Overrides the class default for whether the operation may be retried. */
  retryable?: boolean;
}

/** The wire shape of an error (what crosses RPC and what {@link errorFromWire} accepts). */
export interface WireError {
  code: string;
  message: string;
  data?: Record<string, unknown>;
  retryable?: boolean;
}

/** Base class of every redmesh error. Match on `code` rather than on the class where you can. */
export class RedmeshError extends Error {
  override name = "RedmeshError";
  /** Stable machine-readable code, e.g. `ERR_TIMEOUT`. */
  readonly code: string;
  /** Whether retrying the same operation may succeed. */
  readonly retryable: boolean;
  /** Structured detail, JSON-safe. */
  readonly data: Record<string, unknown> | undefined;

  constructor(code: string, message: string, options: RedmeshErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.retryable = options.retryable ?? false;
    this.data = options.data;
  }

  /** The wire form of this error (see {@link WireError}). */
  toJSON(): WireError {
    const out: WireError = { code: this.code, message: this.message, retryable: this.retryable };
    if (this.data !== undefined) out.data = this.data;
    return out;
  }
}

/** Invalid input: options, names, routes, ids. Never retryable. */
export class ValidationError extends RedmeshError {
  override name = "ValidationError";
  constructor(message: string, options: RedmeshErrorOptions & { code?: ErrorCodeValue } = {}) {
    super(options.code ?? ErrorCode.VALIDATION, message, { ...options, retryable: false });
  }
}

/** A malformed, oversized or badly signed message. */
export class MessageError extends RedmeshError {
  override name = "MessageError";
  constructor(
    code:
      | typeof ErrorCode.INVALID_MESSAGE
      | typeof ErrorCode.MESSAGE_TOO_LARGE
      | typeof ErrorCode.BAD_SIGNATURE,
    message: string,
    options: RedmeshErrorOptions = {},
  ) {
    super(code, message, { ...options, retryable: false });
  }
}

/** Redis is unreachable or the connection dropped. Retryable: it may come back. */
export class ConnectionError extends RedmeshError {
  override name = "ConnectionError";
  constructor(message: string, options: RedmeshErrorOptions = {}) {
    super(ErrorCode.REDIS_UNAVAILABLE, message, { retryable: true, ...options });
  }
}

/** Redis answered with an error reply. */
export class RedisReplyError extends RedmeshError {
  override name = "RedisReplyError";
  constructor(message: string, options: RedmeshErrorOptions = {}) {
    super(ErrorCode.REDIS_ERROR, message, options);
  }
}

/** A wait ran past its deadline. */
export class TimeoutError extends RedmeshError {
  override name = "TimeoutError";
  constructor(message: string, options: RedmeshErrorOptions = {}) {
    super(ErrorCode.TIMEOUT, message, { retryable: true, ...options });
  }
}

/** A wait was cancelled by its caller's AbortSignal. */
export class AbortError extends RedmeshError {
  override name = "AbortError";
  constructor(message = "the operation was aborted", options: RedmeshErrorOptions = {}) {
    super(ErrorCode.ABORTED, message, { ...options, retryable: false });
  }
}

/** The object is not in a state that allows the operation (not started, stopping, already started). */
export class StateError extends RedmeshError {
  override name = "StateError";
  constructor(
    code: typeof ErrorCode.NOT_RUNNING | typeof ErrorCode.ALREADY_STARTED,
    message: string,
    options: RedmeshErrorOptions = {},
  ) {
    super(code, message, { ...options, retryable: false });
  }
}

/**
 * No live instance of the target service could take the request. `data.reason` says why when an
 * instance was picked: `"no receiver"` (its `PUBLISH` reached nobody), `"connect failed"` (HTTP),
 * `"draining"` (it refused new work) — then nothing ran and the request was tried elsewhere at once.
 */
export class NoInstanceError extends RedmeshError {
  override name = "NoInstanceError";
  constructor(service: string, options: RedmeshErrorOptions & { message?: string } = {}) {
    const { message, ...rest } = options;
    super(ErrorCode.NO_INSTANCE, message ?? `no live instance of service "${service}"`, {
      retryable: true,
      ...rest,
      data: { service, ...rest.data },
    });
  }
}

/** The instance handling a call went away (presence lost) before it answered: the call may have run. */
export class InstanceLostError extends RedmeshError {
  override name = "InstanceLostError";
  constructor(message: string, options: RedmeshErrorOptions = {}) {
    super(ErrorCode.INSTANCE_LOST, message, { retryable: true, ...options });
  }
}

/** The circuit breaker for an instance (or service) is open: the call was not attempted. */
export class CircuitOpenError extends RedmeshError {
  override name = "CircuitOpenError";
  constructor(message: string, options: RedmeshErrorOptions = {}) {
    super(ErrorCode.CIRCUIT_OPEN, message, { retryable: true, ...options });
  }
}

/** A bulkhead (max in-flight for a handler or target) is full: the work was rejected, not queued. */
export class BulkheadFullError extends RedmeshError {
  override name = "BulkheadFullError";
  constructor(message: string, options: RedmeshErrorOptions = {}) {
    super(ErrorCode.BULKHEAD_FULL, message, { retryable: true, ...options });
  }
}

/** A value (params, a result, a message body, a job, a config) cannot be serialised to JSON (cycles, BigInt, …). */
export class SerializationError extends RedmeshError {
  override name = "SerializationError";
  constructor(message: string, options: RedmeshErrorOptions = {}) {
    super(ErrorCode.SERIALIZATION, message, { ...options, retryable: false });
  }
}

/** A configuration operation failed: nothing stored, a version conflict. */
export class ConfigError extends RedmeshError {
  override name = "ConfigError";
  constructor(
    code: typeof ErrorCode.CONFIG_NOT_FOUND | typeof ErrorCode.CONFIG_CONFLICT,
    message: string,
    options: RedmeshErrorOptions = {},
  ) {
    super(code, message, { ...options, retryable: false });
  }
}

/** An error thrown by a remote handler (or any wire error whose code is not a known local class). */
export class RemoteError extends RedmeshError {
  override name = "RemoteError";
}

/** The wire table: each code a remote error can carry, rebuilt as its own class on the caller. */
const byCode: Record<string, (w: WireError) => RedmeshError> = {
  [ErrorCode.TIMEOUT]: (w) => new TimeoutError(w.message, wireOptions(w)),
  [ErrorCode.ABORTED]: (w) => new AbortError(w.message, wireOptions(w)),
  [ErrorCode.VALIDATION]: (w) => new ValidationError(w.message, wireOptions(w)),
  [ErrorCode.REDIS_UNAVAILABLE]: (w) => new ConnectionError(w.message, wireOptions(w)),
  [ErrorCode.REDIS_ERROR]: (w) => new RedisReplyError(w.message, wireOptions(w)),
  [ErrorCode.CIRCUIT_OPEN]: (w) => new CircuitOpenError(w.message, wireOptions(w)),
  [ErrorCode.BULKHEAD_FULL]: (w) => new BulkheadFullError(w.message, wireOptions(w)),
  [ErrorCode.NO_INSTANCE]: (w) =>
    new NoInstanceError(typeof w.data?.service === "string" ? w.data.service : "", {
      ...wireOptions(w),
      message: w.message,
    }),
  [ErrorCode.INSTANCE_LOST]: (w) => new InstanceLostError(w.message, wireOptions(w)),
  [ErrorCode.SERIALIZATION]: (w) => new SerializationError(w.message, wireOptions(w)),
  [ErrorCode.NOT_RUNNING]: (w) => new StateError(ErrorCode.NOT_RUNNING, w.message, wireOptions(w)),
  [ErrorCode.INVALID_MESSAGE]: (w) => new MessageError(ErrorCode.INVALID_MESSAGE, w.message, wireOptions(w)),
  [ErrorCode.MESSAGE_TOO_LARGE]: (w) =>
    new MessageError(ErrorCode.MESSAGE_TOO_LARGE, w.message, wireOptions(w)),
  [ErrorCode.BAD_SIGNATURE]: (w) => new MessageError(ErrorCode.BAD_SIGNATURE, w.message, wireOptions(w)),
  [ErrorCode.CONFIG_NOT_FOUND]: (w) => new ConfigError(ErrorCode.CONFIG_NOT_FOUND, w.message, wireOptions(w)),
  [ErrorCode.CONFIG_CONFLICT]: (w) => new ConfigError(ErrorCode.CONFIG_CONFLICT, w.message, wireOptions(w)),
};

function wireOptions(w: WireError): RedmeshErrorOptions {
  const o: RedmeshErrorOptions = {};
  if (w.data !== undefined) o.data = w.data;
  if (w.retryable !== undefined) o.retryable = w.retryable;
  return o;
}

/**
 * Rebuild a typed error from its wire form. Unknown codes become a {@link RemoteError} that keeps the
 * remote code, so callers can still match on it.
 */
export function errorFromWire(value: unknown): RedmeshError {
  if (typeof value !== "object" || value === null) {
    return new RemoteError(ErrorCode.REMOTE, typeof value === "string" ? value : "remote error");
  }
  const v = value as Partial<WireError>;
  const w: WireError = {
    code: typeof v.code === "string" && v.code.length > 0 ? v.code : ErrorCode.REMOTE,
    message: typeof v.message === "string" ? v.message : "remote error",
  };
  if (typeof v.data === "object" && v.data !== null && !Array.isArray(v.data)) w.data = v.data;
  if (typeof v.retryable === "boolean") w.retryable = v.retryable;
  const make = byCode[w.code];
  return make ? make(w) : new RemoteError(w.code, w.message, wireOptions(w));
}

/** Convert anything thrown into its wire form, without leaking stacks. */
export function errorToWire(err: unknown): WireError {
  if (err instanceof RedmeshError) return err.toJSON();
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return {
      code: typeof code === "string" ? code : ErrorCode.REMOTE,
      message: err.message,
      retryable: false,
    };
  }
  return { code: ErrorCode.REMOTE, message: String(err), retryable: false };
}

/** True when `err` is a redmesh error with the given code. */
export function isRedmeshError(err: unknown, code?: string): err is RedmeshError {
  return err instanceof RedmeshError && (code === undefined || err.code === code);
}
