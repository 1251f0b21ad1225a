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

/** Redis Cluster (see issue 8): seed node URLs. */
export interface ClusterRedisOptions {
  cluster: string[];
}

/** Redis Sentinel (see issue 8). */
export interface SentinelRedisOptions {
  sentinel: { name: string; sentinels: string[] };
}

/** Everything `redis:` accepts: a URL string or one of the object forms. */
export type RedisOptions = string | StandaloneRedisOptions | ClusterRedisOptions | SentinelRedisOptions;

/** Fully resolved standalone options (what the connection layer uses). */
export interface ResolvedStandaloneOptions {
  kind: "standalone";
  host: string;
  port: number;
  username: string | undefined;
  password: string | undefined;
  db: number;
  tls: RedisTlsOptions | undefined;
  connectTimeoutMs: number;
  maxReconnectDelayMs: number;
  commandTimeoutMs: number;
  stallTimeoutMs: number;
  clientName: string | undefined;
  /** A printable description without secrets, e.g. `redis://127.0.0.1:6379/0`. */
  display: string;
}

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

/**
 * Resolve `redis:` options to a standalone configuration. Sentinel and Cluster are parsed but not yet
 * connectable: they throw a clear `ERR_INVALID_OPTIONS` until issue 8 lands.
 */
export function resolveRedisOptions(input: RedisOptions | undefined): ResolvedStandaloneOptions {
  if (
    input !== undefined &&
    input !== null &&
    typeof input === "object" &&
    ("cluster" in input || "sentinel" in input)
  ) {
    throw new ValidationError(
      "Redis Cluster and Sentinel connections are not supported by this version yet; pass a redis:// URL",
      { code: ErrorCode.INVALID_OPTIONS },
    );
  }
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
      throw badUrl(`invalid Redis URL scheme "${u.protocol}": use redis:// or rediss:// (TLS)`);
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
  if (opts.tls === true) tls = tls ?? {};
  else if (opts.tls === false) tls = undefined;
  else if (typeof opts.tls === "object") tls = { ...tls, ...opts.tls };
  if (!Number.isInteger(port) || port <= 0 || port > 65535)
    throw badUrl(`invalid Redis port ${String(port)}`);
  const scheme = tls ? "rediss" : "redis";
  const hostPart = host.includes(":") ? `[${host}]` : host;
  return {
    kind: "standalone",
    host,
    port,
    username,
    password,
    db,
    tls,
    connectTimeoutMs: nonNegativeInt(
      "connectTimeoutMs",
      opts.connectTimeoutMs,
      DEFAULT_REDIS_OPTIONS.connectTimeoutMs,
    ),
    maxReconnectDelayMs: nonNegativeInt(
      "maxReconnectDelayMs",
      opts.maxReconnectDelayMs,
      DEFAULT_REDIS_OPTIONS.maxReconnectDelayMs,
    ),
    commandTimeoutMs: nonNegativeInt(
      "commandTimeoutMs",
      opts.commandTimeoutMs,
      DEFAULT_REDIS_OPTIONS.commandTimeoutMs,
    ),
    stallTimeoutMs: nonNegativeInt(
      "stallTimeoutMs",
      opts.stallTimeoutMs,
      DEFAULT_REDIS_OPTIONS.stallTimeoutMs,
    ),
    clientName: opts.clientName,
    display: `${scheme}://${username ? `${username}@` : ""}${hostPart}:${port}/${db}`,
  };
}

/** Hide the password of a URL for messages. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):([^@/]*)@/, "//$1:***@");
}

/** Node TLS options for a resolved TLS config. */
export function toTlsConnectionOptions(host: string, tls: RedisTlsOptions): TlsConnectionOptions {
  const out: TlsConnectionOptions = { rejectUnauthorized: tls.rejectUnauthorized ?? true };
  if (tls.ca !== undefined) out.ca = tls.ca;
  if (tls.cert !== undefined) out.cert = tls.cert;
  if (tls.key !== undefined) out.key = tls.key;
  // SNI must not be an IP address; Node still checks the IP against the certificate's SAN.
  const servername = tls.servername ?? (/^[\d.]+$|:/.test(host) ? undefined : host);
  if (servername !== undefined) out.servername = servername;
  return out;
}
