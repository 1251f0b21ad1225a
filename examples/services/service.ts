/**
 * One example service process for the demo: `tsx examples/services/service.ts <name> <redisUrl> <namespace>`.
 * It registers its HTTP routes, watches the other demo services come and go, and reports what it sees
 * as JSON lines on stdout (the demo narrates them). It stops gracefully when stdin closes or on SIGTERM.
 */
import { createService } from "../../src/index.js";

const ROUTES: Record<string, string[]> = {
  orders: ["[post]/v1/orders", "[get]/v1/orders/:id"],
  inventory: ["[get]/v1/stock/:sku", "[post]/v1/stock/reserve"],
  billing: ["[post]/v1/invoices", "[get]/v1/invoices/:id"],
};
const PEERS = Object.keys(ROUTES);

const [name, redisUrl, namespace] = process.argv.slice(2);
if (!name || !redisUrl || !namespace) throw new Error("usage: service.ts <name> <redisUrl> <namespace>");
const report = (event: string, data: Record<string, unknown> = {}) =>
  process.stdout.write(`${JSON.stringify({ event, service: name, ...data })}\n`);

const svc = createService({
  name,
  redis: redisUrl,
  namespace,
  version: "1.0.0",
  description: `demo ${name} service`,
});
svc.healthCheck("ready", () => true);
await svc.start();
await svc.registerRoutes(ROUTES[name] ?? []);
svc.registry.events.on("join", (i) => report("saw-join", { peer: i.service, id: i.id }));
svc.registry.events.on("leave", (i) => report("saw-leave", { peer: i.service, id: i.id }));
// Warm the discovery cache for every peer so joins and leaves arrive as events.
for (const p of PEERS) await svc.registry.instances(p);
report("started", { id: svc.instanceId, pid: process.pid });

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await svc.stop();
  report("stopped");
  process.exit(0);
};
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
process.stdin.on("end", stop);
process.stdin.resume();
