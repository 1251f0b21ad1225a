/**
 * The `redmesh` command line: registry listings (`services`, `instances`, `health`, `routes`), `logs`,
 * `config …`, `dashboard` and `demo`.
 * Every command takes the global `--redis URL` (env `REDIS_URL`), `--namespace NS` (env
 * `REDMESH_NAMESPACE`) and `--json`, prints a readable table (coloured on a TTY) or JSON, and exits
 * with a code from {@link ExitCode}. Errors are one line on stderr, never a stack.
 * @module
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Command, CommanderError, Option } from "commander";
import { createConfigClient } from "../config/index.js";
import { createDashboard } from "../dashboard/index.js";
import { ConnectionError, ErrorCode, isRedmeshError, RedmeshError } from "../errors.js";
import { readHealth } from "../health/index.js";
import { createKeys, type Keys } from "../keys.js";
import { isLogLevel, type LogEntry, queryLogs, tailLogs } from "../log/index.js";
import { createQueue, type JobOptions } from "../queue/index.js";
import {
  ClusterConnection,
  createRedisConnection,
  isClusterOptions,
  type RedisHandle,
} from "../redis/index.js";
import { createDiscovery, type Discovery, type Instance } from "../registry/index.js";
import { aclSetUserCommand } from "../security/index.js";
import { createService } from "../service.js";
import { ago, type CliIO, paintFor, parseSince, spinner, table } from "./output.js";

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

interface GlobalOptions {
  redis: string;
  namespace: string;
  json: boolean;
  timeout: string;
}

/** What a command gets: a connection, keys, discovery and output helpers. */
interface Session {
  redis: RedisHandle;
  keys: Keys;
  discovery: Discovery;
  opts: GlobalOptions;
  io: CliIO;
  print(human: () => string, json: () => unknown): void;
}

async function withSession(io: CliIO, opts: GlobalOptions, fn: (s: Session) => Promise<void>): Promise<void> {
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
    .addOption(
      new Option(
        "--redis <url>",
        "Redis URL: redis://host:port[/db], rediss:// (TLS), redis-cluster://h:p,h:p or redis-sentinel://h:p,h:p/<primary>",
      ).default(io.env.REDIS_URL ?? "redis://127.0.0.1:6379"),
    )
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

  /** Parse a JSON argument (absent → `{}`), as a usage error when it is not JSON. */
  const jsonArg = (text: string | undefined, what: string): unknown => {
    if (text === undefined) return {};
    try {
      return JSON.parse(text);
    } catch (err) {
      throw usage(`${what} is not valid JSON: ${(err as Error).message}`);
    }
  };
  const nonNegativeInt = (text: string, what: string): number => {
    const n = Number(text);
    if (!Number.isInteger(n) || n < 0) throw usage(`${what} must be a whole number >= 0, not "${text}"`);
    return n;
  };
  /** Run `fn` with a short-lived service (RPC replies need an instance channel); it leaves at once after. */
  const withCaller = (fn: (svc: ReturnType<typeof createService>, s: Session) => Promise<void>) =>
    withSession(io, globals(), async (s) => {
      const svc = createService({ name: "redmesh-cli", namespace: s.opts.namespace, redis: s.opts.redis });
      await svc.start();
      try {
        await fn(svc, s);
      } finally {
        await svc.stop();
      }
    });

  program
    .command("call <service> <method> [json]")
    .description("call a method on one live instance (picked by the balancer) and print the result")
    .option("--timeout <ms>", "how long to wait for the answer", "10000")
    .option("--idempotent", "allow retries on another instance after a failure", false)
    .action(
      (
        service: string,
        method: string,
        json: string | undefined,
        o: { timeout: string; idempotent: boolean },
      ) =>
        withCaller(async (svc, s) => {
          const params = jsonArg(json, "the params");
          const timeout = nonNegativeInt(o.timeout, "--timeout");
          const stop = spinner(io.stderr, `calling ${service}.${method}`, !s.opts.json);
          let result: unknown;
          const t0 = performance.now();
          try {
            result = await svc.call(service, method, params, {
              timeout,
              idempotent: o.idempotent,
              ...(io.signal ? { signal: io.signal } : {}),
            });
          } finally {
            stop();
          }
          const ms = performance.now() - t0;
          s.print(
            () => `${JSON.stringify(result, null, 2)}\n${paint.dim(`(${ms.toFixed(1)} ms)`)}`,
            () => result,
          );
        }),
    );

  program
    .command("send <target> [json]")
    .description("send a message to one live instance of a service (`svc`, or `iid@svc`); at-most-once")
    .action((target: string, json: string | undefined) =>
      withCaller(async (svc, s) => {
        const to = await svc.send(target, jsonArg(json, "the message body"));
        s.print(
          () => `${paint.green("✓")} delivered to ${to}`,
          () => ({ delivered: true, instance: to }),
        );
      }),
    );

  program
    .command("broadcast <service> [json]")
    .description("send a message to every live instance of a service; at-most-once")
    .action((service: string, json: string | undefined) =>
      withCaller(async (svc, s) => {
        const r = await svc.broadcast(service, jsonArg(json, "the message body"));
        s.print(
          () =>
            `${paint.green("✓")} broadcast to ${service}${typeof r === "number" ? ` (${r} receiver${r === 1 ? "" : "s"})` : ""}`,
          () => ({ service, receivers: r }),
        );
      }),
    );

  const queue = program
    .command("queue")
    .description("work queues: add jobs, see stats, list and redrive dead letters");
  /** Run `fn` with a producer/admin handle on a service's queue, stopped afterwards. */
  const withQueue = async (
    s: Session,
    service: string,
    name: string,
    fn: (q: ReturnType<typeof createQueue>) => Promise<void>,
  ) => {
    const q = createQueue({ redis: s.redis, keys: s.keys, service, name, checkDurability: false });
    try {
      await fn(q);
    } finally {
      await q.stop();
    }
  };
  queue
    .command("add <service> [json]")
    .description("add a job to a service's queue")
    .option("--queue <name>", "queue name", "default")
    .option("--delay <ms>", "run no earlier than this many ms from now")
    .option("--attempts <n>", "tries before the job goes to dead letters")
    .option("--job-id <id>", "dedup id: a job with the same id is added once")
    .option("--priority <p>", "high or normal")
    .option("--count <n>", "add the same job this many times (load tests)", "1")
    .action(
      (
        service: string,
        json: string | undefined,
        o: {
          queue: string;
          delay?: string;
          attempts?: string;
          jobId?: string;
          priority?: string;
          count: string;
        },
      ) =>
        withSession(io, globals(), async (s) => {
          const body = jsonArg(json, "the job body");
          const opts: JobOptions = {};
          if (o.delay !== undefined) opts.delay = nonNegativeInt(o.delay, "--delay");
          if (o.attempts !== undefined) opts.attempts = nonNegativeInt(o.attempts, "--attempts");
          if (o.jobId !== undefined) opts.jobId = o.jobId;
          if (o.priority !== undefined) {
            if (o.priority !== "high" && o.priority !== "normal")
              throw usage("--priority must be high or normal");
            opts.priority = o.priority;
          }
          const count = nonNegativeInt(o.count, "--count");
          await withQueue(s, service, o.queue, async (q) => {
            const added = await q.addBulk(Array.from({ length: count }, () => ({ body, options: opts })));
            s.print(
              () =>
                added.length === 1
                  ? `${paint.green("✓")} job ${added[0]?.id} ${added[0]?.added ? "added" : paint.yellow("already queued (same job id)")}`
                  : `${paint.green("✓")} ${added.filter((a) => a.added).length} jobs added`,
              () => added,
            );
          });
        }),
    );
  queue
    .command("stats <service>")
    .description("pending, in-flight, delayed and dead jobs, and lifetime counters")
    .option("--queue <name>", "queue name", "default")
    .action((service: string, o: { queue: string }) =>
      withSession(io, globals(), async (s) => {
        await withQueue(s, service, o.queue, async (q) => {
          const st = await q.stats();
          s.print(
            () =>
              table(
                [
                  ["QUEUE", "PENDING", "IN-FLIGHT", "DELAYED", "DEAD", "PROCESSED", "FAILED", "CONSUMERS"],
                  [
                    `${service}/${o.queue}`,
                    String(st.pending),
                    String(st.inFlight),
                    String(st.delayed),
                    st.dead > 0 ? paint.red(String(st.dead)) : "0",
                    String(st.processed),
                    String(st.failed),
                    String(st.consumers),
                  ],
                ],
                paint,
              ),
            () => ({ service, queue: o.queue, ...st }),
          );
        });
      }),
    );
  queue
    .command("dead <service>")
    .description("list dead letters (newest first) with the reason each job failed")
    .option("--queue <name>", "queue name", "default")
    .option("--offset <n>", "skip this many", "0")
    .option("--count <n>", "show at most this many", "20")
    .action((service: string, o: { queue: string; offset: string; count: string }) =>
      withSession(io, globals(), async (s) => {
        await withQueue(s, service, o.queue, async (q) => {
          const dead = await q.dead({
            offset: nonNegativeInt(o.offset, "--offset"),
            count: nonNegativeInt(o.count, "--count"),
          });
          s.print(
            () =>
              dead.length === 0
                ? paint.dim("no dead letters")
                : table(
                    [
                      ["JOB", "ATTEMPTS", "FAILED", "REASON", "BODY"],
                      ...dead.map((d) => {
                        const b = d.raw ?? JSON.stringify(d.body);
                        return [
                          d.id,
                          String(d.attempts),
                          d.failedAt ? new Date(d.failedAt).toISOString() : "",
                          d.reason,
                          b.length > 60 ? `${b.slice(0, 57)}...` : b,
                        ];
                      }),
                    ],
                    paint,
                  ),
            () => dead,
          );
        });
      }),
    );
  queue
    .command("redrive <service>")
    .description("move dead letters back to the queue (all, --count of them, or --id ones)")
    .option("--queue <name>", "queue name", "default")
    .option("--count <n>", "redrive at most this many")
    .option("--id <ids...>", "redrive only these job ids")
    .action((service: string, o: { queue: string; count?: string; id?: string[] }) =>
      withSession(io, globals(), async (s) => {
        await withQueue(s, service, o.queue, async (q) => {
          const n = await q.redrive({
            ...(o.count !== undefined ? { count: nonNegativeInt(o.count, "--count") } : {}),
            ...(o.id ? { ids: o.id } : {}),
          });
          s.print(
            () => `${paint.green("✓")} ${n} job${n === 1 ? "" : "s"} back in ${service}/${o.queue}`,
            () => ({ service, queue: o.queue, redriven: n }),
          );
        });
      }),
    );

  program
    .command("gateway")
    .description("run the HTTP/WebSocket API gateway (routes by the registry) until interrupted")
    .option("--port <port>", "port to listen on", "8080")
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--max-body <bytes>", "largest request body accepted", "1048576")
    .option("--rate-limit <rps>", "per client IP requests/s (0: off)", "0")
    .option("--cors <origins...>", "allowed CORS origins")
    .option("--dashboard", "also serve the live dashboard under /dashboard", false)
    .action(
      (o: {
        port: string;
        host: string;
        maxBody: string;
        rateLimit: string;
        cors?: string[];
        dashboard: boolean;
      }) =>
        withSession(io, globals(), async (s) => {
          const { createGateway } = await import("../gateway/index.js");
          const rps = nonNegativeInt(o.rateLimit, "--rate-limit");
          const gw = createGateway({
            redis: s.opts.redis,
            namespace: s.opts.namespace,
            port: nonNegativeInt(o.port, "--port"),
            host: o.host,
            limits: { maxBodyBytes: nonNegativeInt(o.maxBody, "--max-body") },
            ...(rps > 0 ? { rateLimit: { ratePerSec: rps, burst: rps * 2 } } : {}),
            ...(o.cors ? { cors: { origins: o.cors } } : {}),
            dashboard: o.dashboard,
          });
          await gw.start();
          io.stderr.write(
            `gateway listening on ${paint.bold(gw.url)} (metrics: ${gw.url}/metrics) — Ctrl-C to stop\n`,
          );
          if (s.opts.json) io.stdout.write(`${JSON.stringify({ url: gw.url })}\n`);
          await new Promise<void>((resolve) => {
            if (!io.signal || io.signal.aborted) return resolve();
            io.signal.addEventListener("abort", () => resolve(), { once: true });
          });
          await gw.stop();
        }),
    );

  program
    .command("acl <service>")
    .description("print (or --apply) a least-privilege Redis ACL user for one service")
    .option("--talks-to <services...>", "services it calls, answers or messages (their channels are granted)")
    .option("--produce-to <services...>", "services whose queues it adds jobs to")
    .option("--user <name>", "ACL user name (default redmesh-<service>)")
    .option(
      "--password-env <var>",
      "read the password from this environment variable",
      "REDMESH_ACL_PASSWORD",
    )
    .option("--apply", "create or replace the user on the Redis given by --redis", false)
    .action(
      (
        service: string,
        o: { talksTo?: string[]; produceTo?: string[]; user?: string; passwordEnv: string; apply: boolean },
      ) => {
        const opts = globals();
        const password = io.env[o.passwordEnv];
        if (!password) throw usage(`set the user's password in $${o.passwordEnv} (16 characters or more)`);
        const cmd = aclSetUserCommand({
          keys: createKeys({ namespace: opts.namespace, cluster: isClusterOptions(opts.redis) }),
          service,
          talksTo: o.talksTo ?? [],
          produceTo: o.produceTo ?? [],
          password,
          ...(o.user ? { user: o.user } : {}),
        });
        const shown = cmd.map((a) => (a.startsWith(">") ? ">********" : a));
        if (!o.apply) {
          io.stdout.write(
            opts.json
              ? `${JSON.stringify({ command: shown })}\n`
              : `${shown.map((a) => (/^[\w.:@+-]+$/.test(a) ? a : `'${a}'`)).join(" ")}\n`,
          );
          return Promise.resolve();
        }
        return withSession(io, opts, async (s) => {
          if (s.redis instanceof ClusterConnection) {
            // Every node of a Cluster keeps its own users: set it on each one.
            const results = await s.redis.commandOnEveryNode(cmd);
            const failed = results.filter((r) => r.reply instanceof Error);
            if (failed.length > 0)
              throw new ConnectionError(
                `ACL SETUSER failed on ${failed.map((f) => `${f.node} (${(f.reply as Error).message})`).join(", ")}`,
              );
          } else await s.redis.command(cmd);
          s.print(
            () => `${paint.green("✓")} ACL user ${paint.bold(cmd[2] ?? "")} set for service ${service}`,
            () => ({ user: cmd[2], service, applied: true }),
          );
        });
      },
    );

  program
    .command("logs [services...]")
    .description(
      "show (or follow with -f) the distributed logs of some or all services, merged in time order",
    )
    .option("-f, --follow", "keep printing new entries until interrupted", false)
    .option("--level <level>", "lowest level shown: trace, debug, info, warn, error, fatal", "trace")
    .option("--since <when>", "start this far back (30s, 15m, 2h, 1d) or at an ISO time", "15m")
    .option("--grep <text>", "only entries whose message or fields contain this (one service)")
    .option("-n, --limit <n>", "most entries shown without --follow", "200")
    .action(
      (
        services: string[],
        o: { follow: boolean; level: string; since: string; grep?: string; limit: string },
      ) =>
        withSession(io, globals(), async (s) => {
          if (!isLogLevel(o.level)) throw usage(`unknown level "${o.level}"`);
          const since = parseSince(o.since);
          if (since === undefined)
            throw usage(`--since must be a duration (15m) or an ISO time, not "${o.since}"`);
          const limit = Number(o.limit);
          if (!Number.isInteger(limit) || limit < 1) throw usage("--limit must be a positive integer");
          const line = (e: LogEntry) => {
            if (s.opts.json) return JSON.stringify(e);
            const lv = e.level.toUpperCase().padEnd(5);
            const lvl =
              e.level === "error" || e.level === "fatal"
                ? paint.red(lv)
                : e.level === "warn"
                  ? paint.yellow(lv)
                  : e.level === "info"
                    ? paint.green(lv)
                    : paint.dim(lv);
            const who = `${e.service}${e.instance ? `/${e.instance.slice(0, 8)}` : ""}`;
            const fields = e.fields ? ` ${paint.dim(JSON.stringify(e.fields))}` : "";
            return `${paint.dim(new Date(e.ts).toISOString().slice(11, 23))} ${lvl} ${paint.bold(who)} ${e.msg}${fields}`;
          };
          if (o.grep !== undefined) {
            if (services.length !== 1) throw usage("--grep searches one service: name exactly one");
            const found = await queryLogs(s.redis, s.keys, {
              service: services[0] as string,
              level: o.level,
              from: since,
              text: o.grep,
              limit,
            });
            io.stdout.write(found.map((e) => `${line(e)}\n`).join(""));
            return;
          }
          const tailOpts = {
            level: o.level,
            since,
            follow: o.follow,
            ...(services.length > 0 ? { services } : {}),
            ...(io.signal ? { signal: io.signal } : {}),
          };
          if (o.follow) {
            for await (const e of tailLogs(s.redis, s.keys, tailOpts)) io.stdout.write(`${line(e)}\n`);
            return;
          }
          const last: LogEntry[] = [];
          for await (const e of tailLogs(s.redis, s.keys, tailOpts)) {
            last.push(e);
            if (last.length > limit) last.shift();
          }
          if (last.length === 0 && !s.opts.json) io.stdout.write(`${paint.dim("no log entries")}\n`);
          else io.stdout.write(last.map((e) => `${line(e)}\n`).join(""));
        }),
    );

  const config = program
    .command("config")
    .description("read and change the shared, versioned config of a service");
  const configClient = (s: Session, service: string) =>
    createConfigClient({ redis: s.redis, keys: s.keys, service });
  config
    .command("get <service>")
    .description("print the active config (or one version with --version)")
    .option("--version <v>", "a stored version instead of the active one")
    .action((service: string, o: { version?: string }) =>
      withSession(io, globals(), async (s) => {
        const history = await configClient(s, service).history();
        const entry =
          o.version === undefined
            ? history.find((h) => h.active)
            : history.find((h) => h.version === o.version);
        if (!entry) {
          throw new RedmeshError(
            ErrorCode.CONFIG_NOT_FOUND,
            o.version === undefined
              ? `no config stored for service "${service}"`
              : `service "${service}" has no config version "${o.version}"`,
          );
        }
        s.print(
          () =>
            `${paint.dim(`# ${service} version ${entry.version}${entry.active ? " (active)" : ""}`)}\n${JSON.stringify(entry.value, null, 2)}`,
          () => ({ service, version: entry.version, active: entry.active, value: entry.value }),
        );
      }),
    );
  config
    .command("set <service> [json]")
    .description(
      "store a new config version and make it active (inline JSON or --file); every instance is notified",
    )
    .option("--file <path>", "read the config from a JSON file")
    .option("--version <v>", "version label (default: the highest one bumped)")
    .action((service: string, json: string | undefined, o: { file?: string; version?: string }) =>
      withSession(io, globals(), async (s) => {
        if ((json === undefined) === (o.file === undefined))
          throw usage("give the config either inline or with --file, not both or neither");
        let text = json ?? "";
        if (o.file !== undefined) {
          if (!io.readFile) throw usage("--file is not available here");
          text = await io.readFile(o.file);
        }
        const value = jsonArg(text, "the config");
        const r = await configClient(s, service).set(
          value,
          o.version === undefined ? {} : { version: o.version },
        );
        s.print(
          () =>
            `${paint.green("✓")} ${service} config version ${paint.bold(r.version)} is active${r.previousVersion ? paint.dim(` (was ${r.previousVersion})`) : ""}`,
          () => ({ service, ...r }),
        );
      }),
    );
  config
    .command("list <service>")
    .description("list the stored versions (natural order, the active one marked)")
    .action((service: string) =>
      withSession(io, globals(), async (s) => {
        const history = await configClient(s, service).history();
        s.print(
          () =>
            history.length === 0
              ? paint.dim(`no config stored for "${service}"`)
              : history.map((h) => `${h.active ? paint.green("*") : " "} ${h.version}`).join("\n"),
          () => history.map((h) => ({ version: h.version, active: h.active })),
        );
      }),
    );
  config
    .command("history <service>")
    .description("every stored version with its content")
    .action((service: string) =>
      withSession(io, globals(), async (s) => {
        const history = await configClient(s, service).history();
        s.print(
          () =>
            history.length === 0
              ? paint.dim(`no config stored for "${service}"`)
              : table(
                  [
                    ["VERSION", "ACTIVE", "CONFIG"],
                    ...history.map((h) => {
                      const j = JSON.stringify(h.value);
                      return [
                        h.version,
                        h.active ? paint.green("yes") : "",
                        j.length > 80 ? `${j.slice(0, 77)}...` : j,
                      ];
                    }),
                  ],
                  paint,
                ),
          () => history,
        );
      }),
    );
  config
    .command("rollback <service> <version>")
    .description("make an earlier version active again; every instance is notified")
    .action((service: string, version: string) =>
      withSession(io, globals(), async (s) => {
        await configClient(s, service).rollback(version);
        s.print(
          () => `${paint.green("✓")} ${service} config version ${paint.bold(version)} is active again`,
          () => ({ service, version }),
        );
      }),
    );

  program
    .command("dashboard")
    .description("serve the live web dashboard (read-only, no authentication: keep it on localhost)")
    .option("--port <port>", "TCP port (0: any free one)", "8090")
    .option("--host <host>", "interface to bind", "127.0.0.1")
    .action((o: { port: string; host: string }) =>
      withSession(io, globals(), async (s) => {
        const port = /^\d{1,5}$/.test(o.port) ? Number(o.port) : -1;
        if (port < 0 || port > 65535) throw usage(`--port must be an integer 0..65535, not "${o.port}"`);
        if (!io.signal)
          throw usage("dashboard runs until interrupted: no interrupt signal is available here");
        const signal = io.signal;
        const dash = createDashboard({ redis: s.redis, keys: s.keys });
        try {
          const { url } = await dash.listen({ port, host: o.host });
          s.print(
            () =>
              `${paint.green("✓")} dashboard for namespace ${paint.bold(s.opts.namespace)} at ${paint.bold(url)}\n${paint.dim("read-only; Ctrl-C to stop")}`,
            () => ({ url, namespace: s.opts.namespace }),
          );
          if (!signal.aborted)
            await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
        } finally {
          await dash.stop();
        }
      }),
    );

  program
    .command("demo")
    .description(
      "run the product tour (orders, inventory, billing and the gateway on one Redis); only from a clone of the repository",
    )
    .option("--keep", "leave everything running after the tour (dashboard URL printed) until Ctrl-C", false)
    .action(async (o: { keep: boolean }) => {
      // The demo is TypeScript that ships only in the repository (not in the npm package): run it with
      // the same Node and tsx, as `npm run demo` does.
      const script = io.demoScript ?? fileURLToPath(new URL("../../examples/demo/main.ts", import.meta.url));
      if (!existsSync(script)) {
        throw new Error(
          `the demo ships only in the redmesh repository (${script} not found): clone it and run \`npm run demo\``,
        );
      }
      if (!io.execPath) throw new Error("no Node binary to run the demo with");
      let tsx: string;
      try {
        tsx = import.meta.resolve("tsx");
      } catch {
        throw new Error("the demo needs tsx: run `npm install` in the repository first");
      }
      // Only what was given on the command line overrides the demo's own defaults (its namespace is
      // "redmesh-demo", and it starts a throwaway Redis when none answers).
      const env = { ...io.env };
      if (program.getOptionValueSource("redis") === "cli") env.REDIS_URL = globals().redis;
      if (program.getOptionValueSource("namespace") === "cli") env.REDMESH_NAMESPACE = globals().namespace;
      // On a terminal the demo writes to it directly (colours, Ctrl-C reaches it too); otherwise its
      // output goes through `io` like every other command's.
      const direct = io.stdout.isTTY === true;
      const child = spawn(io.execPath, ["--import", tsx, script, ...(o.keep ? ["--keep"] : [])], {
        env,
        stdio: direct ? "inherit" : ["ignore", "pipe", "pipe"],
      });
      child.stdout?.on("data", (d: Buffer) => io.stdout.write(d.toString()));
      child.stderr?.on("data", (d: Buffer) => io.stderr.write(d.toString()));
      // Ctrl-C (or SIGTERM to this process alone) ends the demo cleanly: it stops its children itself.
      const onAbort = () => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGINT");
      };
      io.signal?.addEventListener("abort", onAbort, { once: true });
      try {
        const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>(
          (resolve, reject) => {
            child.once("error", reject);
            child.once("close", (c, s) => resolve([c, s]));
          },
        );
        if (code !== 0)
          throw new Error(`the demo ended with ${code === null ? signal : `exit code ${code}`}`);
      } finally {
        io.signal?.removeEventListener("abort", onAbort);
      }
    });

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
      err.code === ErrorCode.VALIDATION ||
      err.code === ErrorCode.SERIALIZATION)
  )
    return ExitCode.USAGE;
  if (isRedmeshError(err, ErrorCode.CONFIG_NOT_FOUND)) return ExitCode.NOT_FOUND;
  return ExitCode.FAILED;
}
