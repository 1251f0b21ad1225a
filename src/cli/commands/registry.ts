/**
 * Registry listings: `services`, `instances`, `health`, `routes`.
 * @module
 */
import type { Command } from "commander";
import { readHealth } from "../../health/index.js";
import type { Instance } from "../../registry/index.js";
import type { CliContext, Session } from "../context.js";
import { ago, type Paint, table } from "../output.js";

async function selectInstances(s: Session, service: string | undefined): Promise<Instance[]> {
  const list = service === undefined ? await s.discovery.nodes() : await s.discovery.instances(service);
  return list.sort((a, b) => a.service.localeCompare(b.service) || a.id.localeCompare(b.id));
}

const statusPaint = (p: Paint, status: string) =>
  status === "ok" ? p.green(status) : status === "degraded" ? p.yellow(status) : p.red(status);

/** Add `services`, `instances`, `health` and `routes` to `program`. */
export function addRegistryCommands(program: Command, ctx: CliContext): void {
  const { paint, withSession } = ctx;
  program
    .command("services")
    .description("list registered services with their live instance count and versions")
    .action(() =>
      withSession(async (s) => {
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
      withSession(async (s) => {
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
      withSession(async (s) => {
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
      withSession(async (s) => {
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
}
