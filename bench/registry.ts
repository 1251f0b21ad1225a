/**
 * Registry figures (`npm run bench -- registry [instances]`), against a throwaway redis-server:
 *  - time for a watcher to discover a new instance, and to see a stopped one leave;
 *  - Redis commands per second spent per idle instance (heartbeats, health, reconciliation);
 *  - RSS of an idle service process (compiled JavaScript, as users run it).
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { createService, type Service } from "../src/index.js";
import { startRedis } from "../test/helpers/redis-server.js";

const N = Number(process.argv[2] ?? 50);
const redis = await startRedis();
const ns = "bench";
const services: Service[] = [];
try {
  // 1. Discovery latency (median of 20).
  const watcher = createService({ name: "watcher", namespace: ns, redis: redis.url });
  await watcher.start();
  await watcher.registry.instances("probe");
  const joins: number[] = [];
  const leaves: number[] = [];
  for (let i = 0; i < 20; i++) {
    const p = createService({ name: "probe", namespace: ns, redis: redis.url });
    await p.start();
    let t0 = performance.now();
    while (!(await watcher.registry.instances("probe")).some((x) => x.id === p.instanceId)) await sleep(0);
    joins.push(performance.now() - t0);
    await p.stop();
    t0 = performance.now();
    while ((await watcher.registry.instances("probe")).length > 0) await sleep(0);
    leaves.push(performance.now() - t0);
  }
  const med = (a: number[]) => a.sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? 0;
  const max = (a: number[]) => Math.max(...a);

  // 2. Steady-state Redis cost per instance: N idle instances of 5 services, each watching 2 services.
  for (let i = 0; i < N; i++) {
    const s = createService({ name: `svc${i % 5}`, namespace: ns, redis: redis.url });
    services.push(s);
  }
  await Promise.all(services.map((s) => s.start()));
  await Promise.all(
    services.map((s) => Promise.all([s.registry.instances("svc0"), s.registry.instances("svc1")])),
  );
  await sleep(1500);
  const count = () =>
    Number(
      /total_commands_processed:(\d+)/.exec(
        execFileSync("redis-cli", ["-p", String(redis.port), "INFO", "stats"]).toString(),
      )?.[1],
    );
  const c0 = count();
  const windowMs = 10_000;
  await sleep(windowMs);
  const perInstance = (count() - c0 - 1) / (windowMs / 1000) / N;

  // 3. Idle RSS of a service process running the compiled library.
  if (!existsSync("dist/index.js")) execFileSync("npm", ["run", "build"], { stdio: "ignore" });
  const child = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { createService } from "./dist/index.js";
       const s = createService({ name: "idle", namespace: "${ns}", redis: "${redis.url}" });
       await s.start(); setTimeout(() => { process.stdout.write(String(process.memoryUsage().rss)); s.stop(); }, 3000);`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  let out = "";
  child.stdout.on("data", (d) => {
    out += String(d);
  });
  await new Promise((r) => child.once("exit", r));
  const rssMiB = Number(out) / 1048576;

  console.log("\nredmesh registry figures (throwaway redis-server, this machine)");
  console.log(
    `  discover a new instance (event-driven):  median ${med(joins).toFixed(2)} ms, max ${max(joins).toFixed(2)} ms`,
  );
  console.log(
    `  see a stopped instance leave:            median ${med(leaves).toFixed(2)} ms, max ${max(leaves).toFixed(2)} ms`,
  );
  console.log(
    `  Redis commands/s per idle instance:      ${perInstance.toFixed(2)} (N=${N}, heartbeat 1 s, health 5 s, reconcile 1 s × 2 watched services)`,
  );
  console.log(`  idle service RSS (compiled JS):          ${rssMiB.toFixed(1)} MiB`);
} finally {
  await Promise.all(services.map((s) => s.stop()));
  await redis.stop();
}
process.exit(0);
