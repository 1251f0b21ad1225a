/**
 * The redmesh demo (`npm run demo`): three services in separate processes find each other through
 * one Redis, then one crashes and the others notice. Every step is narrated with what was measured.
 *
 * Environment: REDIS_URL (default redis://127.0.0.1:6379; a throwaway redis-server is started when
 * nothing answers there), REDMESH_NAMESPACE (default "redmesh-demo").
 */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import {
  createDiscovery,
  createKeys,
  createRedisConnection,
  type Instance,
  type RedisConnection,
  readHealth,
} from "../../src/index.js";
import { findOrStartRedis } from "./redis.js";

const SERVICES = ["orders", "inventory", "billing"] as const;
const namespace = process.env.REDMESH_NAMESPACE ?? "redmesh-demo";
const isTTY = process.stdout.isTTY;
const bold = (s: string) => (isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const dim = (s: string) => (isTTY ? `\x1b[2m${s}\x1b[0m` : s);
const say = (s: string) => console.log(s);
const step = (n: number, s: string) => console.log(`\n${bold(`${n}.`)} ${bold(s)}`);

interface Proc {
  name: string;
  child: ChildProcess;
  id: string;
  pid: number;
  events: Array<{ event: string; peer?: string; at: number }>;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r, j) => `  ${r.map((c, i) => c.padEnd(widths[i] ?? 0)).join("  ")}${j === 0 ? "" : ""}`)
    .join("\n");
}

async function startServiceProcess(name: string, url: string): Promise<Proc> {
  const file = fileURLToPath(new URL("../services/service.ts", import.meta.url));
  const child = spawn(process.execPath, ["--import", "tsx", file, name, url, namespace], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const proc: Proc = { name, child, id: "", pid: child.pid ?? 0, events: [] };
  const rl = createInterface({ input: child.stdout! });
  const started = new Promise<void>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`${name} exited with code ${code} before starting`)));
    rl.on("line", (line) => {
      try {
        const ev = JSON.parse(line) as { event: string; id?: string; pid?: number; peer?: string };
        proc.events.push({ event: ev.event, peer: ev.peer, at: performance.now() });
        if (ev.event === "started") {
          proc.id = ev.id ?? "";
          resolve();
        }
      } catch {
        /* not ours */
      }
    });
  });
  await started;
  return proc;
}

async function waitUntil(fn: () => Promise<boolean> | boolean, timeoutMs: number): Promise<number> {
  const t0 = performance.now();
  while (!(await fn())) {
    if (performance.now() - t0 > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms`);
    await sleep(2);
  }
  return performance.now() - t0;
}

async function main(): Promise<void> {
  console.log(bold("redmesh demo: services discovering each other through one Redis"));
  step(1, "Find Redis");
  const redis = await findOrStartRedis(say);
  const procs: Proc[] = [];
  let conn: RedisConnection | undefined;
  let discovery: ReturnType<typeof createDiscovery> | undefined;
  try {
    conn = createRedisConnection({ redis: redis.url, clientName: "redmesh:demo" });
    await conn.connect();
    const keys = createKeys({ namespace });
    discovery = createDiscovery({ redis: conn, keys });
    await discovery.start();
    for (const s of SERVICES) await discovery.instances(s);
    say(`Namespace "${namespace}": keys look like ${dim(keys.presence("orders", "<instance id>"))}`);

    step(2, `Start ${SERVICES.length} services as separate processes`);
    const t0 = performance.now();
    for (const name of SERVICES) {
      const p = await startServiceProcess(name, redis.url);
      procs.push(p);
      say(`  ${name.padEnd(10)} pid ${String(p.pid).padEnd(7)} instance ${p.id}`);
    }
    const d = discovery;
    const allSeen = await waitUntil(async () => {
      const counts = await Promise.all(SERVICES.map((s) => d.instances(s)));
      return counts.every((c) => c.length === 1);
    }, 5000);
    say(
      `All ${SERVICES.length} visible to an observer ${(performance.now() - t0).toFixed(0)} ms after the first spawn (${allSeen.toFixed(1)} ms after the last one started).`,
    );
    const peersSeen = await waitUntil(
      () =>
        procs.every((p) =>
          SERVICES.filter((s) => s !== p.name).every((s) =>
            p.events.some((e) => e.event === "saw-join" && e.peer === s),
          ),
        ),
      5000,
    );
    say(
      `Each service has seen the other two join (${peersSeen.toFixed(1)} ms later), by registry events, without polling.`,
    );

    step(3, "What the registry holds (no KEYS, no SCAN)");
    const nodes: Instance[] = await d.nodes();
    const routes = await d.routes();
    const rows = [["service", "instance", "pid", "version", "status", "routes"]];
    for (const n of nodes) {
      rows.push([
        n.service,
        `${n.id.slice(0, 8)}…`,
        String(n.node?.processID ?? ""),
        n.node?.version ?? "",
        n.status,
        (routes[n.service] ?? []).join(" "),
      ]);
    }
    say(table(rows));
    await sleep(100);
    const health = await Promise.all(nodes.map((n) => readHealth(conn!, keys, n.service, n.id)));
    say(
      `Health snapshots: ${health
        .map((h, i) =>
          h
            ? `${nodes[i]?.service} rss ${(h.memory.rss / 1048576).toFixed(0)} MiB, lag p99 ${h.eventLoopLagMs.p99} ms`
            : "",
        )
        .filter(Boolean)
        .join("; ")}.`,
    );

    step(4, "Crash billing with SIGKILL: no goodbye, its presence key simply expires");
    const billing = procs.find((p) => p.name === "billing")!;
    billing.child.kill("SIGKILL");
    const crashT0 = performance.now();
    await once(billing.child, "exit");
    const orders = procs.find((p) => p.name === "orders")!;
    const goneForObserver = await waitUntil(async () => (await d.instances("billing")).length === 0, 8000);
    const ordersNoticed = await waitUntil(
      () => orders.events.some((e) => e.event === "saw-leave" && e.peer === "billing"),
      8000,
    );
    say(
      `billing gone for the observer after ${goneForObserver.toFixed(0)} ms and for orders after ${(
        performance.now() - crashT0
      ).toFixed(
        0,
      )} ms (presence TTL 3000 ms + reconciliation ≤ 1000 ms; ${ordersNoticed >= 0 ? "orders got a leave event" : ""}).`,
    );

    step(5, "Stop orders and inventory gracefully: they deregister at once");
    const stopT0 = performance.now();
    for (const p of procs.filter((x) => x !== billing)) p.child.stdin?.end();
    await Promise.all(
      procs
        .filter((x) => x !== billing)
        .map((p) => (p.child.exitCode === null ? once(p.child, "exit") : null)),
    );
    const left = await d.instances("orders");
    say(
      `Both exited after ${(performance.now() - stopT0).toFixed(0)} ms (process start-up and teardown included); ${left.length} instance(s) of orders left in the registry.`,
    );
    say(`\n${bold("Done.")} Run ${bold("npm test")} for the full suite, or read docs/ for the API.`);
  } finally {
    for (const p of procs)
      if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
    await discovery?.stop();
    await conn?.close();
    await redis.stop();
  }
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
});
