/**
 * Redis connection options: a URL string, or an object for a standalone server; the object form has
 * room for Sentinel and Cluster (issue 8) without changing what callers pass today.
 *
 * @module
 */

import type { ConnectionOptions as TlsConnectionOptions } from "node:tls";
import { ErrorCode, ValidationError } from "../errors.js";

/** TLS settings (used for `rediss://` URLs, or set explicitly). */
export interface RedisTlsOptions {
  /** CA certificate(s) to trust (PEM). */
  ca?: string | Buffer | Array<string | Buffer>;
  /** Client certificate (PEM), for servers that require client auth. */
  cert?: string | Buffer;
  /** Client key (PEM). */
  key?: string | Buffer;
  /**
   * Reject servers whose certificate does not verify. Turn off only for local experiments.
   * @default true
   */
  rejectUnauthorized?: boolean;
  /** Server name for SNI and certificate checks (defaults to the host). */
  servername?: string;
}

/** A standalone Redis server. */
export interface StandaloneRedisOptions {
  /** `redis://[user:pass@]host:port[/db]` or `rediss://…` for TLS. Other fields override the URL's parts. */
  url?: string;
  /** @default "127.0.0.1" */
  host?: string;
  /** @default 6379 */
  port?: number;
  /** ACL user name. */
  username?: string;
  /** Password (ACL or `requirepass`). */
  password?: string;
  /**
   * Database number, taken from the URL path or given here (redmesh never sends `SELECT` itself
   * after connecting; the client selects it during the handshake).
   * @default 0
   */
  db?: number;
  /** TLS settings; `true` for TLS with the system CAs. A `rediss://` URL turns TLS on. */
  tls?: boolean | RedisTlsOptions;
  /**
   * Give up a connection attempt after this long.
   * @default 5000
   */
  connectTimeoutMs?: number;
  /**
   * Longest wait between two reconnection attempts (backoff doubles from 50 ms up to this).
   * @default 500
   */
  maxReconnectDelayMs?: number;
  /**
   * Default deadline for control-plane commands (registry, health, config). Hot paths (publish) pass
   * their own deadline instead, because a per-command timer costs throughput.
   * @default 5000
   */
  commandTimeoutMs?: number;
  /**
   * A connection on which a command has waited this long while nothing at all came back is treated as
   * dead-but-open (a black-holed network path, a half-open socket): it is torn down and re-established.
   * The subscriber connection is probed with a `PING` every `stallTimeoutMs / 2` to find out. 0 turns
   * the watchdog off.
   * @default 3000 (a presence TTL: longer, and peers would see this instance as gone first)
   */
  stallTimeoutMs?: number;
  /** Connection name shown by `CLIENT LIST` (redmesh sets a useful default). */
  clientName?: string;
}

/** Settings shared by every node of a Cluster or Sentinel set-up (see {@link StandaloneRedisOptions}). */
export type SharedRedisSettings = Pick<
  StandaloneRedisOptions,
  | "username"
  | "password"
  | "tls"
  | "connectTimeoutMs"
  | "maxReconnectDelayMs"
  | "commandTimeoutMs"
  | "stallTimeoutMs"
  | "clientName"
>;

/**
 * A Redis Cluster. Every key of a service then carries the hash tag `{<svc>}`, service channels use
 * sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`), and commands are routed to the node owning their slot.
 *
 * @example `{ cluster: ["redis://10.0.0.1:7000", "redis://10.0.0.2:7000"], password: "…" }`
 */
export interface ClusterRedisOptions extends SharedRedisSettings {
  /**
   * Seed nodes (`redis://[user:pass@]host:port`, `rediss://…` or `host:port`); any reachable one is
   * enough, the client discovers the others. Credentials in the first URL apply to every node unless
   * `username`/`password` are given.
   */
  cluster: string[];
}

/**
 * A primary watched by Redis Sentinel: the client asks the sentinels where the primary is and follows
 * failovers (commands and subscriptions move to the new primary).
 *
 * @example `{ sentinel: { name: "mymaster", sentinels: ["redis://10.0.0.1:26379"] } }`
 */
export interface SentinelRedisOptions extends SharedRedisSettings {
  sentinel: {
    /** The primary's name as configured in the sentinels (`sentinel monitor <name> …`). */
    name: string;
    /** Sentinel addresses (`redis://host:port` or `host:port`, usually port 26379). */
    sentinels: string[];
    /** ACL user for the sentinels themselves (when they require auth). */
    username?: string;
    /** Password for the sentinels themselves. */
    password?: string;
  };
  /** Database number on the primary. @default 0 */
  db?: number;
}

/**
 * Everything `redis:` accepts: a URL string or one of the object forms. Besides `redis://` and
 * `rediss://` URLs, strings may name a Cluster (`redis-cluster://host:port,host:port`) or a Sentinel
 * set-up (`redis-sentinel://host:port,host:port/<primary name>`), with `rediss-…` for TLS and
 * `user:pass@` before the first host; that is how the CLI's `--redis` and `REDIS_URL` select them.
 */
export type RedisOptions = string | StandaloneRedisOptions | ClusterRedisOptions | SentinelRedisOptions;

/** A host and port. */
export interface RedisHostPort {
  host: string;
  port: number;
}

/** Resolved settings every topology has. */
export interface ResolvedCommonOptions {
  username: string | undefined;
  password: string | undefined;
  tls: RedisTlsOptions | undefined;
  connectTimeoutMs: number;
  maxReconnectDelayMs: number;
  commandTimeoutMs: number;
  stallTimeoutMs: number;
  clientName: string | undefined;
  /** A printable description without secrets, e.g. `redis://127.0.0.1:6379/0`. */
  display: string;
}

/** Fully resolved standalone options (what the standalone connection uses). */
export interface ResolvedStandaloneOptions extends ResolvedCommonOptions {
  kind: "standalone";
  host: string;
  port: number;
  db: number;
}

/** Fully resolved Cluster options. */
export interface ResolvedClusterOptions extends ResolvedCommonOptions {
  kind: "cluster";
  /** Seed nodes. */
  nodes: RedisHostPort[];
}

/** Fully resolved Sentinel options. */
export interface ResolvedSentinelOptions extends ResolvedCommonOptions {
  kind: "sentinel";
  /** The primary's name. */
  name: string;
  sentinels: RedisHostPort[];
  sentinelUsername: string | undefined;
  sentinelPassword: string | undefined;
  db: number;
}

/** What {@link resolveTopology} returns: one of the three topologies. */
export type ResolvedRedisOptions =
  | ResolvedStandaloneOptions
  | ResolvedClusterOptions
  | ResolvedSentinelOptions;

/** Default connection settings. */
export const DEFAULT_REDIS_OPTIONS = Object.freeze({
  url: "redis://127.0.0.1:6379",
  connectTimeoutMs: 5000,
  maxReconnectDelayMs: 500,
  commandTimeoutMs: 5000,
  stallTimeoutMs: 3000,
});

function badUrl(message: string): ValidationError {
  return new ValidationError(message, { code: ErrorCode.INVALID_REDIS_URL });
}

function nonNegativeInt(name: string, v: unknown, fallback: number): number {
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) {
    throw new ValidationError(`redis option ${name} must be a non-negative integer (got ${String(v)})`, {
      code: ErrorCode.INVALID_OPTIONS,
    });
  }
  return v;
}

/** Parse the timing / naming settings every topology shares. */
function resolveTimings(
  opts: SharedRedisSettings,
): Pick<
  ResolvedCommonOptions,
  "connectTimeoutMs" | "maxReconnectDelayMs" | "commandTimeoutMs" | "stallTimeoutMs" | "clientName"
> {
  const d = DEFAULT_REDIS_OPTIONS;
  if (opts.clientName !== undefined && typeof opts.clientName !== "string")
    throw new ValidationError("redis option clientName must be a string", {
      code: ErrorCode.INVALID_OPTIONS,
    });
  return {
    connectTimeoutMs: nonNegativeInt("connectTimeoutMs", opts.connectTimeoutMs, d.connectTimeoutMs),
    maxReconnectDelayMs: nonNegativeInt(
      "maxReconnectDelayMs",
      opts.maxReconnectDelayMs,
      d.maxReconnectDelayMs,
    ),
    commandTimeoutMs: nonNegativeInt("commandTimeoutMs", opts.commandTimeoutMs, d.commandTimeoutMs),
    stallTimeoutMs: nonNegativeInt("stallTimeoutMs", opts.stallTimeoutMs, d.stallTimeoutMs),
    clientName: opts.clientName,
  };
}

function mergeTls(
  base: RedisTlsOptions | undefined,
  tls: SharedRedisSettings["tls"],
): RedisTlsOptions | undefined {
  if (tls === true) return base ?? {};
  if (tls === false) return undefined;
  if (typeof tls === "object" && tls !== null) return { ...base, ...tls };
  return base;
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port <= 0 || port > 65535)
    throw badUrl(`invalid Redis port ${String(port)}`);
}

function hostPart(h: RedisHostPort): string {
  return `${h.host.includes(":") ? `[${h.host}]` : h.host}:${h.port}`;
}

/**
 * One node address of a Cluster or Sentinel list: `redis://[user:pass@]host:port`, `rediss://…` or a bare
 * `host:port`. Returns the address plus what the URL carried (credentials, TLS).
 */
function parseNode(
  raw: unknown,
  what: string,
  defaultPort: number,
): RedisHostPort & { username?: string; password?: string; tls?: boolean } {
  if (typeof raw !== "string" || raw.length === 0) throw badUrl(`${what} must be a non-empty string`);
  const text = /^[a-z]+:\/\//i.test(raw) ? raw : `redis://${raw}`;
  let u: URL;
  try {
    u = new URL(text);
  } catch {
    throw badUrl(`invalid ${what} ${JSON.stringify(redact(raw))}: expected redis://host:port or host:port`);
  }
  if (u.protocol !== "redis:" && u.protocol !== "rediss:")
    throw badUrl(`invalid ${what} scheme "${u.protocol}": use redis:// or rediss://`);
  const out: RedisHostPort & { username?: string; password?: string; tls?: boolean } = {
    host: u.hostname.replace(/^\[|\]$/g, "") || "127.0.0.1",
    port: u.port ? Number(u.port) : defaultPort,
  };
  checkPort(out.port);
  if (u.username) out.username = decodeURIComponent(u.username);
  if (u.password) out.password = decodeURIComponent(u.password);
  if (u.protocol === "rediss:") out.tls = true;
  return out;
}

/**
 * `redis-cluster://[user:pass@]h:p,h:p` and `redis-sentinel://[user:pass@]h:p,h:p/<name>` (and
 * `rediss-…`) as object options; `undefined` for any other string.
 */
function parseTopologyUrl(url: string): ClusterRedisOptions | SentinelRedisOptions | undefined {
  const m = /^(rediss?)-(cluster|sentinel):\/\/(?:([^@/]*)@)?([^/?#]+)(?:\/([^?#]*))?$/i.exec(url);
  if (!m) {
    if (/^rediss?-(cluster|sentinel):/i.test(url))
      throw badUrl(
        `invalid Redis URL ${JSON.stringify(redact(url))}: expected redis-cluster://host:port,host:port or redis-sentinel://host:port,host:port/<primary name>`,
      );
    return undefined;
  }
  const [, scheme, kind, auth, hosts, path] = m as unknown as [
    string,
    string,
    string,
    string | undefined,
    string,
    string | undefined,
  ];
  const prefix = auth ? `${auth}@` : "";
  const nodes = hosts
    .split(",")
    .map((h, i) => `${scheme.toLowerCase()}://${i === 0 ? prefix : ""}${h.trim()}`);
  const tls = scheme.toLowerCase() === "rediss" ? { tls: true as const } : {};
  if (kind.toLowerCase() === "cluster") {
    if (path) throw badUrl("a redis-cluster:// URL takes no path (Cluster has no databases)");
    return { cluster: nodes, ...tls };
  }
  const name = decodeURIComponent(path ?? "");
  if (!name)
    throw badUrl(
      "a redis-sentinel:// URL needs the primary's name as its path: redis-sentinel://host:port/mymaster",
    );
  // Credentials before the first sentinel are the primary's (what the application uses).
  const first = parseNode(nodes[0], "sentinel address", 26379);
  const creds: { username?: string; password?: string } = {};
  if (first.username !== undefined) creds.username = first.username;
  if (first.password !== undefined) creds.password = first.password;
  return {
    sentinel: { name, sentinels: nodes.map((n) => n.replace(/\/\/[^@/]*@/, "//")) },
    ...creds,
    ...tls,
  };
}

/**
 * Resolve `redis:` options of any topology: a standalone server, a Cluster or a Sentinel set-up.
 * Throws a {@link ValidationError} (`ERR_INVALID_REDIS_URL` / `ERR_INVALID_OPTIONS`) that says what is
 * wrong.
 */
export function resolveTopology(input: RedisOptions | undefined): ResolvedRedisOptions {
  if (typeof input === "string") {
    const parsed = parseTopologyUrl(input);
    if (parsed) return resolveTopology(parsed);
  }
  if (input !== undefined && input !== null && typeof input === "object" && "cluster" in input)
    return resolveCluster(input);
  if (input !== undefined && input !== null && typeof input === "object" && "sentinel" in input)
    return resolveSentinel(input);
  return resolveStandalone(input);
}

function resolveCluster(opts: ClusterRedisOptions): ResolvedClusterOptions {
  if (!Array.isArray(opts.cluster) || opts.cluster.length === 0)
    throw new ValidationError("redis option cluster must be a non-empty array of node URLs", {
      code: ErrorCode.INVALID_OPTIONS,
    });
  if ("db" in opts && (opts as { db?: unknown }).db !== undefined && (opts as { db?: unknown }).db !== 0)
    throw new ValidationError("Redis Cluster has only database 0: remove the db option", {
      code: ErrorCode.INVALID_OPTIONS,
    });
  const nodes = opts.cluster.map((n) => parseNode(n, "cluster node", 6379));
  const first = nodes[0] as (typeof nodes)[number];
  const tls = mergeTls(nodes.some((n) => n.tls) ? {} : undefined, opts.tls);
  const username = opts.username ?? first.username;
  const password = opts.password ?? first.password;
  const scheme = tls ? "rediss" : "redis";
  return {
    kind: "cluster",
    nodes: nodes.map(({ host, port }) => ({ host, port })),
    username,
    password,
    tls,
    ...resolveTimings(opts),
    display: `${scheme}-cluster://${username ? `${username}@` : ""}${nodes.map(hostPart).join(",")}`,
  };
}

function resolveSentinel(opts: SentinelRedisOptions): ResolvedSentinelOptions {
  const s = opts.sentinel as Partial<SentinelRedisOptions["sentinel"]> | undefined;
  if (!s || typeof s !== "object" || typeof s.name !== "string" || s.name.length === 0)
    throw new ValidationError(
      "redis option sentinel.name must name the primary (sentinel monitor <name> …)",
      {
        code: ErrorCode.INVALID_OPTIONS,
      },
    );
  if (!Array.isArray(s.sentinels) || s.sentinels.length === 0)
    throw new ValidationError(
      "redis option sentinel.sentinels must be a non-empty array of sentinel addresses",
      {
        code: ErrorCode.INVALID_OPTIONS,
      },
    );
  const sentinels = s.sentinels.map((n) => parseNode(n, "sentinel address", 26379));
  const tls = mergeTls(sentinels.some((n) => n.tls) ? {} : undefined, opts.tls);
  const scheme = tls ? "rediss" : "redis";
  const db = nonNegativeInt("db", opts.db, 0);
  return {
    kind: "sentinel",
    name: s.name,
    sentinels: sentinels.map(({ host, port }) => ({ host, port })),
    sentinelUsername: s.username ?? sentinels[0]?.username,
    sentinelPassword: s.password ?? sentinels[0]?.password,
    username: opts.username,
    password: opts.password,
    db,
    tls,
    ...resolveTimings(opts),
    display: `${scheme}-sentinel://${opts.username ? `${opts.username}@` : ""}${sentinels.map(hostPart).join(",")}/${s.name}${db ? ` db ${db}` : ""}`,
  };
}

/**
 * Resolve `redis:` options of a standalone server. Cluster and Sentinel options are rejected with a
 * clear `ERR_INVALID_OPTIONS`: use {@link resolveTopology} (what `createRedisConnection` does).
 */
export function resolveRedisOptions(input: RedisOptions | undefined): ResolvedStandaloneOptions {
  const r = resolveTopology(input);
  if (r.kind !== "standalone")
    throw new ValidationError(
      `these redis options describe a Redis ${r.kind === "cluster" ? "Cluster" : "Sentinel set-up"}: create the connection with createRedisConnection(), which picks the matching client`,
      { code: ErrorCode.INVALID_OPTIONS },
    );
  return r;
}

function resolveStandalone(input: string | StandaloneRedisOptions | undefined): ResolvedStandaloneOptions {
  if (input !== undefined && typeof input !== "string" && (typeof input !== "object" || input === null)) {
    throw badUrl("redis option must be a URL string or an options object");
  }
  const opts: StandaloneRedisOptions =
    input === undefined
      ? { url: DEFAULT_REDIS_OPTIONS.url }
      : typeof input === "string"
        ? { url: input }
        : { ...input };
  let host = "127.0.0.1";
  let port = 6379;
  let username: string | undefined;
  let password: string | undefined;
  let db = 0;
  let tls: RedisTlsOptions | undefined;
  if (opts.url !== undefined) {
    if (typeof opts.url !== "string") throw badUrl("redis url must be a string");
    let u: URL;
    try {
      u = new URL(opts.url);
    } catch {
      throw badUrl(`invalid Redis URL ${JSON.stringify(redact(opts.url))}: expected redis://host:port[/db]`);
    }
    if (u.protocol !== "redis:" && u.protocol !== "rediss:") {
      throw badUrl(
        `invalid Redis URL scheme "${u.protocol}": use redis://, rediss:// (TLS), redis-cluster:// or redis-sentinel://`,
      );
    }
    if (u.hostname) host = u.hostname.replace(/^\[|\]$/g, "");
    if (u.port) port = Number(u.port);
    if (u.username) username = decodeURIComponent(u.username);
    if (u.password) password = decodeURIComponent(u.password);
    const path = u.pathname.replace(/^\//, "");
    if (path !== "") {
      if (!/^\d{1,5}$/.test(path)) throw badUrl(`invalid database "${path}" in Redis URL: expected a number`);
      db = Number(path);
    }
    if (u.protocol === "rediss:") tls = {};
  }
  if (opts.host !== undefined) host = opts.host;
  if (opts.port !== undefined) port = opts.port;
  if (opts.username !== undefined) username = opts.username;
  if (opts.password !== undefined) password = opts.password;
  if (opts.db !== undefined) db = nonNegativeInt("db", opts.db, 0);
  tls = mergeTls(tls, opts.tls);
  checkPort(port);
  const scheme = tls ? "rediss" : "redis";
  return {
    kind: "standalone",
    host,
    port,
    username,
    password,
    db,
    tls,
    ...resolveTimings(opts),
    display: `${scheme}://${username ? `${username}@` : ""}${hostPart({ host, port })}/${db}`,
  };
}

/** True when `redis:` options describe a Redis Cluster (keys then need the `{<svc>}` hash tag). */
export function isClusterOptions(input: RedisOptions | undefined): boolean {
  return resolveTopology(input).kind === "cluster";
}

/** Hide the password of a URL for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):([^@/]*)@/, "//$1:***@");
}

/** Delay before reconnection attempt `retries`: exponential from 50 ms, capped at `maxMs`. */
export function reconnectDelayMs(retries: number, maxMs: number): number {
  return Math.min(50 * 2 ** Math.min(retries, 10), maxMs);
}

/**
 * node-redis socket settings every connection of every topology uses: connect timeout, keep-alive,
 * no Nagle, the reconnect backoff (capped at `maxDelayMs`, default `maxReconnectDelayMs`), and TLS.
 * `tlsHost` names the server for TLS; `undefined` for settings shared by several nodes.
 */
export function socketOptions(
  o: ResolvedCommonOptions,
  tlsHost: string | undefined,
  maxDelayMs = o.maxReconnectDelayMs,
): Record<string, unknown> {
  const socket: Record<string, unknown> = {
    connectTimeout: o.connectTimeoutMs,
    keepAlive: true,
    noDelay: true,
    // A restarted Redis is found again within the cap.
    reconnectStrategy: (retries: number) => reconnectDelayMs(retries, maxDelayMs),
  };
  if (o.tls) Object.assign(socket, { tls: true }, toTlsConnectionOptions(tlsHost, o.tls));
  return socket;
}

/** The credentials and client name node-redis sends in its handshake (only the ones that are set). */
export function handshakeOptions(
  username: string | undefined,
  password: string | undefined,
  name: string | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (username !== undefined) out.username = username;
  if (password !== undefined) out.password = password;
  if (name) out.name = name;
  return out;
}

/** Node TLS options for a resolved TLS config. */
export function toTlsConnectionOptions(host: string | undefined, tls: RedisTlsOptions): TlsConnectionOptions {
  const out: TlsConnectionOptions = { rejectUnauthorized: tls.rejectUnauthorized ?? true };
  if (tls.ca !== undefined) out.ca = tls.ca;
  if (tls.cert !== undefined) out.cert = tls.cert;
  if (tls.key !== undefined) out.key = tls.key;
  // SNI must not be an IP address; Node still checks the IP against the certificate's SAN. Without a
  // host (settings shared by every node of a Cluster or Sentinel set-up) no name is derived: each
  // connection's certificate is then checked against its own host.
  const servername = tls.servername ?? (host === undefined || /^[\d.]+$|:/.test(host) ? undefined : host);
  if (servername !== undefined) out.servername = servername;
  return out;
}
