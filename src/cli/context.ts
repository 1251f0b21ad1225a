/**
 * What every CLI command group shares: the global options, a connection opener (`withSession`), a
 * short-lived calling service (`withCaller`), argument parsing that fails as a usage error, and the exit
 * codes errors map to. Output helpers (tables, colours) live in `output.ts`.
 * @module
 */
import type { Command } from "commander";
import { ErrorCode, isRedmeshError, RedmeshError } from "../errors.js";
import { createKeys, type Keys } from "../keys.js";
import { createRedisConnection, type RedisHandle } from "../redis/index.js";
import { createDiscovery, type Discovery } from "../registry/index.js";
import { createService } from "../service.js";
import { type CliIO, type Paint, paintFor } from "./output.js";

/** Exit codes scripts can rely on. */
export const ExitCode = {
  /** Success. */
  OK: 0,
  /** The operation failed (e.g. a remote error). */
  FAILED: 1,
  /** Bad usage or invalid input (unknown command, bad option, invalid name). */
  USAGE: 2,
  /** Redis could not be reached (or did not answer in time). */
  REDIS_UNAVAILABLE: 3,
  /** What was asked for does not exist (no config stored, no such version). */
  NOT_FOUND: 4,
} as const;

/** The exit code an error thrown by a command ends the CLI with. */
export function exitCodeOf(err: unknown): number {
  if (isRedmeshError(err, ErrorCode.REDIS_UNAVAILABLE) || isRedmeshError(err, ErrorCode.TIMEOUT))
    return ExitCode.REDIS_UNAVAILABLE;
  if (
    isRedmeshError(err) &&
    (err.code === ErrorCode.INVALID_OPTIONS ||
      err.code === ErrorCode.INVALID_NAME ||
      err.code === ErrorCode.INVALID_REDIS_URL ||
      err.code === ErrorCode.VALIDATION ||
      err.code === ErrorCode.SERIALIZATION)
  )
    return ExitCode.USAGE;
  if (isRedmeshError(err, ErrorCode.CONFIG_NOT_FOUND)) return ExitCode.NOT_FOUND;
  return ExitCode.FAILED;
}

/** The options every command takes (`--redis`, `--namespace`, `--json`, `--timeout`), as commander parsed them. */
export interface GlobalOptions {
  /** Redis URL (`--redis`, env `REDIS_URL`). */
  redis: string;
  /** Key namespace (`--namespace`, env `REDMESH_NAMESPACE`). */
  namespace: string;
  /** Print JSON instead of tables (`--json`). */
  json: boolean;
  /** How long to wait for Redis, in ms, as typed (`--timeout`). */
  timeout: string;
}

/** What a command gets: a connection, keys, discovery and output helpers. */
export interface Session {
  /** The connected Redis handle; destroyed when the command ends. */
  redis: RedisHandle;
  /** Key builder for the namespace (hash-tagged on a Cluster). */
  keys: Keys;
  /** Started registry discovery; stopped when the command ends. */
  discovery: Discovery;
  /** The global options. */
  opts: GlobalOptions;
  /** Where output goes. */
  io: CliIO;
  /** Print the human text, or with `--json` the JSON value, on stdout. */
  print(human: () => string, json: () => unknown): void;
}

/** A short-lived service the CLI calls and sends through. */
export type CallerService = ReturnType<typeof createService>;

/** What each command group is given to add its commands. */
export interface CliContext {
  /** Where all output goes; nothing in the CLI touches `process`. */
  readonly io: CliIO;
  /** Colours for stdout. */
  readonly paint: Paint;
  /** The global options as parsed (read when a command runs, not when it is added). */
  globals(): GlobalOptions;
  /** Connect to Redis, start discovery, run `fn`, then disconnect whatever happened. */
  withSession(fn: (s: Session) => Promise<void>): Promise<void>;
  /** Run `fn` with a short-lived service (RPC replies need an instance channel); it leaves at once after. */
  withCaller(fn: (svc: CallerService, s: Session) => Promise<void>): Promise<void>;
}

/** A group of commands added to the program: registry listings, messaging, queue, … */
export type CommandGroup = (program: Command, ctx: CliContext) => void;

/** The shared context of the commands of `program`, writing to `io`. */
export function createCliContext(program: Command, io: CliIO): CliContext {
  const globals = () => program.opts<GlobalOptions>();
  const withSession = (fn: (s: Session) => Promise<void>) => openSession(io, globals(), fn);
  return {
    io,
    paint: paintFor(io.stdout, io.env),
    globals,
    withSession,
    withCaller: (fn) =>
      withSession(async (s) => {
        const svc = createService({ name: "redmesh-cli", namespace: s.opts.namespace, redis: s.opts.redis });
        await svc.start();
        try {
          await fn(svc, s);
        } finally {
          await svc.stop();
        }
      }),
  };
}

async function openSession(io: CliIO, opts: GlobalOptions, fn: (s: Session) => Promise<void>): Promise<void> {
  const timeoutMs = Number(opts.timeout);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw usage(`--timeout must be a positive number of ms`);
  const redis = createRedisConnection({ redis: opts.redis, clientName: "redmesh-cli" });
  const keys = createKeys({ namespace: opts.namespace, cluster: redis.topology === "cluster" });
  redis.on("error", () => undefined); // reported through the rejected command instead
  const discovery = createDiscovery({ redis, keys, hydraInterop: opts.namespace === "hydra" });
  try {
    await redis.connect({ timeoutMs, failFast: true });
    await discovery.start();
    await fn({
      redis,
      keys,
      discovery,
      opts,
      io,
      print(human, json) {
        io.stdout.write(opts.json ? `${JSON.stringify(json(), null, 2)}\n` : `${human()}\n`);
      },
    });
  } finally {
    await discovery.stop();
    redis.destroy();
  }
}

/** A usage error (exit code {@link ExitCode.USAGE}). */
export function usage(message: string): RedmeshError {
  return new RedmeshError(ErrorCode.INVALID_OPTIONS, message);
}

/** Parse a JSON argument (absent → `{}`), as a usage error when it is not JSON. */
export function jsonArg(text: string | undefined, what: string): unknown {
  if (text === undefined) return {};
  try {
    return JSON.parse(text);
  } catch (err) {
    throw usage(`${what} is not valid JSON: ${(err as Error).message}`);
  }
}

/** Parse a whole number >= 0 given for `what` (an option name), as a usage error otherwise. */
export function nonNegativeInt(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 0) throw usage(`${what} must be a whole number >= 0, not "${text}"`);
  return n;
}
