/**
 * The `redmesh` command line: registry listings today (`services`, `instances`, `health`, `routes`).
 * Every command takes the global `--redis URL` (env `REDIS_URL`), `--namespace NS` (env
 * `REDMESH_NAMESPACE`) and `--json`, prints a readable table (coloured on a TTY) or JSON, and exits
 * with a code from {@link ExitCode}. Errors are one line on stderr, never a stack.
 * @module
 */
import { Command, CommanderError, Option } from "commander";
import { ErrorCode, isRedmeshError, RedmeshError } from "../errors.js";
import { readHealth } from "../health/index.js";
import { createKeys, type Keys } from "../keys.js";
import { createRedisConnection, type RedisConnection } from "../redis/index.js";
import { createDiscovery, type Discovery, type Instance } from "../registry/index.js";
import { ago, type CliIO, paintFor, table } from "./output.js";

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
} as const;

interface GlobalOptions {
  redis: string;
  namespace: string;
  json: boolean;
  timeout: string;
}

/** What a command gets: a connection, keys, discovery and output helpers. */
interface Session {
  redis: RedisConnection;
  keys: Keys;
  discovery: Discovery;
  opts: GlobalOptions;
  io: CliIO;
  print(human: () => string, json: () => unknown): void;
}

async function withSession(io: CliIO, opts: GlobalOptions, fn: (s: Session) => Promise<void>): Promise<void> {
  const timeoutMs = Number(opts.timeout);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw usage(`--timeout must be a positive number of ms`);
  const keys = createKeys({ namespace: opts.namespace });
  const redis = createRedisConnection({ redis: opts.redis, clientName: "redmesh-cli" });
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

function usage(message: string): RedmeshError {
  return new RedmeshError(ErrorCode.INVALID_OPTIONS, message);
}

async function selectInstances(s: Session, service: string | undefined): Promise<Instance[]> {
  const list = service === undefined ? await s.discovery.nodes() : await s.discovery.instances(service);
  return list.sort((a, b) => a.service.localeCompare(b.service) || a.id.localeCompare(b.id));
}

const statusPaint = (p: ReturnType<typeof paintFor>, status: string) =>
  status === "ok" ? p.green(status) : status === "degraded" ? p.yellow(status) : p.red(status);

/** Build the program. `io` receives all output; nothing here touches `process`. */
export function buildProgram(io: CliIO): Command {
  const paint = paintFor(io.stdout, io.env);
  const program = new Command("redmesh")
    .description("Inspect and drive a redmesh (or Hydra) mesh on Redis.")
    .addOption(new Option("--redis <url>", "Redis URL").default(io.env.REDIS_URL ?? "redis://127.0.0.1:6379"))
    .addOption(
      new Option("--namespace <ns>", "key namespace (`hydra` for Hydra services)").default(
        io.env.REDMESH_NAMESPACE ?? "redmesh",
      ),
    )
    .option("--json", "machine-readable JSON output", false)
    .option("--timeout <ms>", "how long to wait for Redis", "3000")
    .showHelpAfterError("(add --help for usage)")
    .configureOutput({
      writeOut: (s) => io.stdout.write(s),
      writeErr: (s) => io.stderr.write(s),
    })
    .exitOverride();

  const globals = () => program.opts<GlobalOptions>();

  program
    .command("services")
    .description("list registered services with their live instance count and versions")
    .action(() =>
      withSession(io, globals(), async (s) => {
        const names = await s.discovery.services();
        const rows = await Promise.all(
          names.map(async (name) => {
            const inst = await s.discovery.instances(name);
            const versions = [...new Set(inst.map((i) => i.node?.version ?? "?"))].sort();
            return { service: name, instances: inst.length, versions };
          }),
        );
        s.print(
          () =>
            rows.length === 0
              ? paint.dim(`no services registered in namespace "${s.opts.namespace}"`)
              : table(
                  [
                    ["SERVICE", "INSTANCES", "VERSIONS"],
                    ...rows.map((r) => [
                      r.service,
                      r.instances === 0 ? paint.red("0") : String(r.instances),
                      r.versions.join(", "),
                    ]),
                  ],
                  paint,
                ),
          () => rows,
        );
      }),
    );

  program
    .command("instances [service]")
    .description("list live instances (of one service, or of all)")
    .action((service: string | undefined) =>
      withSession(io, globals(), async (s) => {
        const list = await selectInstances(s, service);
        const now = Date.now();
        s.print(
          () =>
            list.length === 0
              ? paint.dim(service ? `no live instance of "${service}"` : "no live instances")
              : table(
                  [
                    ["SERVICE", "INSTANCE", "VERSION", "STATUS", "HOST", "PID", "ADDRESS", "UP"],
                    ...list.map((i) => [
                      i.service,
                      i.id.slice(0, 12),
                      i.node?.version ?? "?",
                      statusPaint(paint, i.status),
                      i.node?.hostName ?? "",
                      String(i.node?.processID ?? ""),
                      i.node?.ip && i.node.port ? `${i.node.ip}:${i.node.port}` : paint.dim("-"),
                      i.node?.rm?.startedOn ? ago(now - Date.parse(i.node.rm.startedOn)) : "",
                    ]),
                  ],
                  paint,
                ),
          () => list,
        );
      }),
    );

  program
    .command("health [service]")
    .description("latest health snapshot of each live instance")
    .action((service: string | undefined) =>
      withSession(io, globals(), async (s) => {
        const list = await selectInstances(s, service);
        const snaps = await Promise.all(list.map((i) => readHealth(s.redis, s.keys, i.service, i.id)));
        const rows = list.map((i, k) => ({ service: i.service, instance: i.id, health: snaps[k] ?? null }));
        const mib = (n: number) => (n / 1048576).toFixed(1);
        s.print(
          () =>
            rows.length === 0
              ? paint.dim(service ? `no live instance of "${service}"` : "no live instances")
              : table(
                  [
                    ["SERVICE", "INSTANCE", "STATUS", "CPU%", "RSS MiB", "LAG p99 ms", "IN-FLIGHT", "CHECKS"],
                    ...rows.map(({ service: svc, instance, health: h }) =>
                      h
                        ? [
                            svc,
                            instance.slice(0, 12),
                            statusPaint(paint, h.status),
                            h.cpuPercent.toFixed(1),
                            mib(h.memory.rss),
                            h.eventLoopLagMs.p99.toFixed(1),
                            String(h.inFlight),
                            Object.entries(h.checks)
                              .map(([n, c]) => (c.ok ? n : paint.red(`${n}✗`)))
                              .join(" "),
                          ]
                        : [svc, instance.slice(0, 12), paint.dim("no snapshot yet"), "", "", "", "", ""],
                    ),
                  ],
                  paint,
                ),
          () => rows,
        );
      }),
    );

  program
    .command("routes [service]")
    .description("HTTP routes registered by services (what the gateway routes by)")
    .action((service: string | undefined) =>
      withSession(io, globals(), async (s) => {
        const routes = await s.discovery.routes(service);
        const rows = Object.entries(routes)
          .sort(([a], [b]) => a.localeCompare(b))
          .flatMap(([svc, list]) => [...list].sort().map((r) => [svc, r]));
        s.print(
          () =>
            rows.length === 0
              ? paint.dim("no routes registered")
              : table([["SERVICE", "ROUTE"], ...rows], paint),
          () => routes,
        );
      }),
    );

  return program;
}

/** Run the CLI with `argv` (without the node and script paths). Resolves with the exit code. */
export async function runCli(argv: readonly string[], io: CliIO): Promise<number> {
  const program = buildProgram(io);
  const paint = paintFor(io.stderr, io.env);
  try {
    await program.parseAsync([...argv], { from: "user" });
    return ExitCode.OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here too, with exit code 0.
      return err.exitCode === 0 ? ExitCode.OK : ExitCode.USAGE;
    }
    const code = exitCodeOf(err);
    const message = err instanceof Error ? err.message : String(err);
    io.stderr.write(`${paint.red("error:")} ${message}\n`);
    return code;
  }
}

function exitCodeOf(err: unknown): number {
  if (isRedmeshError(err, ErrorCode.REDIS_UNAVAILABLE) || isRedmeshError(err, ErrorCode.TIMEOUT))
    return ExitCode.REDIS_UNAVAILABLE;
  if (
    isRedmeshError(err) &&
    (err.code === ErrorCode.INVALID_OPTIONS ||
      err.code === ErrorCode.INVALID_NAME ||
      err.code === ErrorCode.INVALID_REDIS_URL ||
      err.code === ErrorCode.VALIDATION)
  )
    return ExitCode.USAGE;
  return ExitCode.FAILED;
}
