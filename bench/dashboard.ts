/**
 * Dashboard figures (`npm run bench -- dashboard [services] [instancesPerService]`), against a
 * throwaway redis-server. There is no peer to compare with (Hydra ships no dashboard), so it prints
 * absolute figures:
 *  - time to read one snapshot (services → instances → health, routes, config) and its size;
 *  - Redis commands per second the dashboard costs while one page is open, and while none is;
 *  - time from `start()` / `stop()` of an instance to the change arriving on the SSE stream.
 */
import { execFileSync } from "node:child_process";
import { setTimeout as sleep } from "node:timers/promises";
import { createDashboard } from "../src/dashboard/index.js";
import { createService, type Service } from "../src/index.js";
import { openSse } from "../test/helpers/dashboard-sse.js";
import { startRedis } from "../test/helpers/redis-server.js";

const S = Number(process.argv[2] ?? 10);
const I = Number(process.argv[3] ?? 3);
const redis = await startRedis();
const ns = "bench";
const services: Service[] = [];
const count = () =>
  Number(
    /total_commands_processed:(\d+)/.exec(
      execFileSync("redis-cli", ["-p", String(redis.port), "INFO", "stats"]).toString(),
    )?.[1],
  );
const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? 0;
try {
  for (let s = 0; s < S; s++) {
    for (let i = 0; i < I; i++) {
      services.push(createService({ name: `svc${s}`, namespace: ns, redis: redis.url, port: 8000 + i }));
    }
  }
  await Promise.all(services.map((x) => x.start()));
  await Promise.all(
    services
      .filter((_, k) => k % I === 0)
      .map(async (x) => {
        await x.registerRoutes(["[get]/v1/items/:id", "[post]/v1/items"]);
        await x.config.set({ feature: true });
      }),
  );

  const dash = createDashboard({ redis: redis.url, namespace: ns });
  const { url } = await dash.listen({ port: 0 });
  // 1. One snapshot.
  const times: number[] = [];
  let bytes = 0;
  for (let k = 0; k < 30; k++) {
    const t0 = performance.now();
    const snap = await dash.snapshot();
    times.push(performance.now() - t0);
    bytes = JSON.stringify(snap).length;
  }

  // 2. Redis cost: idle (no page) vs one page open (collector at 1 s + log tail).
  const windowMs = 5000;
  let c0 = count();
  await sleep(windowMs);
  const idle = (count() - c0 - 1) / (windowMs / 1000);
  const page = await openSse(`${url}events`);
  await page.snapshot(() => true);
  await sleep(1500);
  c0 = count();
  await sleep(windowMs);
  const open = (count() - c0 - 1) / (windowMs / 1000);
  page.close();
  await dash.stop();

  // Services alone (heartbeats, health, reconciliation) cost this much: subtract it.
  c0 = count();
  await sleep(windowMs);
  const base = (count() - c0 - 1) / (windowMs / 1000);

  // 3. Latency to the page, median of 10, with the collector at 100 ms and at the 1 s default.
  const latency = async (intervalMs: number) => {
    const d = createDashboard({ redis: redis.url, namespace: ns, intervalMs });
    const { url: u } = await d.listen({ port: 0 });
    const sse = await openSse(`${u}events`);
    await sse.snapshot(() => true);
    const ups: number[] = [];
    const downs: number[] = [];
    type Snap = { services: Array<{ instances: Array<{ id: string }> }> };
    const has = (id: string) => (s: Snap) => s.services.some((x) => x.instances.some((y) => y.id === id));
    for (let k = 0; k < 10; k++) {
      const p = createService({ name: "probe", namespace: ns, redis: redis.url });
      let t0 = performance.now();
      await p.start();
      await sse.snapshot<Snap>(has(p.instanceId), { timeoutMs: 10_000 });
      ups.push(performance.now() - t0);
      t0 = performance.now();
      await p.stop();
      await sse.snapshot<Snap>((s) => !has(p.instanceId)(s), { timeoutMs: 10_000 });
      downs.push(performance.now() - t0);
    }
    sse.close();
    await d.stop();
    return { up: med(ups), down: med(downs) };
  };
  const fast = await latency(100);
  const dflt = await latency(1000);

  console.log(
    `\nredmesh dashboard figures (${S} services × ${I} instances, throwaway redis-server, this machine)`,
  );
  console.log(
    `  read one snapshot:                       median ${med(times).toFixed(2)} ms, ${(bytes / 1024).toFixed(1)} KiB of JSON`,
  );
  console.log(
    `  Redis commands/s, no page open:          ${Math.max(0, idle - base).toFixed(1)} (services alone: ${base.toFixed(0)}/s)`,
  );
  console.log(`  Redis commands/s, one page open (1 s):   ${Math.max(0, open - base).toFixed(1)}`);
  console.log(
    `  instance on the page after start():      median ${fast.up.toFixed(0)} ms (intervalMs 100), ${dflt.up.toFixed(0)} ms (1000)`,
  );
  console.log(
    `  instance off the page after stop():      median ${fast.down.toFixed(0)} ms (intervalMs 100), ${dflt.down.toFixed(0)} ms (1000)`,
  );
} finally {
  await Promise.all(services.map((s) => s.stop()));
  await redis.stop();
}
process.exit(0);
