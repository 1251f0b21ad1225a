/**
 * What the three example services share: settings from the environment, a JSON-lines report on
 * stdout that the demo narrates (a real service would not need it), and a graceful stop on SIGTERM,
 * SIGINT or when stdin closes (the demo's way to say "stop" without a signal race).
 *
 * Environment: REDIS_URL (default redis://127.0.0.1:6379), REDMESH_NAMESPACE (default "redmesh-demo").
 */
import { createService, type Service, type ServiceOptions } from "../../src/index.js";

/** The names of the demo's services, so each one can watch the others come and go. */
export const DEMO_SERVICES = ["orders", "inventory", "billing"] as const;

/** Write one event for the demo narrator (one JSON object per line on stdout). */
export function report(service: string, event: string, data: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, service, ...data })}\n`);
}

/** Create a service from the environment (no I/O yet). */
export function demoService<C>(
  name: string,
  options: Omit<ServiceOptions<C>, "name" | "redis" | "namespace"> = {},
): Service<C> {
  return createService<C>({
    name,
    redis: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
    namespace: process.env.REDMESH_NAMESPACE ?? "redmesh-demo",
    version: "1.0.0",
    // Short RPC deadlines: everything is local, and a demo should fail fast, not hang.
    rpcTimeoutMs: 3000,
    ...options,
  });
}

/**
 * Start `svc`, report "started", follow the other demo services' joins and leaves, and stop
 * gracefully on SIGTERM, SIGINT or end of stdin. Call after the routes and handlers are set up;
 * `afterStart` runs once connected, before the service says it is started.
 */
export async function run<C>(svc: Service<C>, afterStart?: () => Promise<void>): Promise<void> {
  svc.healthCheck("ready", () => true);
  await svc.start();
  await afterStart?.();
  svc.registry.events.on("join", (i) => report(svc.name, "saw-join", { peer: i.service, id: i.id }));
  svc.registry.events.on("leave", (i) => report(svc.name, "saw-leave", { peer: i.service, id: i.id }));
  // Warm the discovery cache for every peer so joins and leaves arrive as events.
  for (const p of DEMO_SERVICES) await svc.registry.instances(p);
  report(svc.name, "started", { id: svc.instanceId, pid: process.pid });
  svc.log.info("started", { pid: process.pid });

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    svc.log.info("stopping");
    await svc.stop();
    report(svc.name, "stopped");
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.stdin.on("end", stop);
  process.stdin.resume();
}
