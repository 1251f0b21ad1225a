/**
 * Scale benchmark (`npm run bench -- scale [instances=1000] [services=50]`): many registered instances
 * on one Redis, simulated in this process (each with its own registration and 1 s heartbeat, sharing a
 * few connections, as many small processes would), plus one watcher with discovery. Prints the Redis
 * cost per instance, discovery lookup latency, and how fast a watcher sees instances come and go.
 * (Redis Cluster runs are issue 8's next step; see docs/scaling.md.)
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import {
  createDiscovery,
  createKeys,
  createRedisConnection,
  type NodeEntry,
  type RedisHandle,
  Registration,
} from "../src/index.js";
import { startRedis } from "../test/helpers/redis-server.js";

const N = Number(process.argv[2] ?? 1000);
const S = Number(process.argv[3] ?? 50);
const CONNECTIONS = 8;
const ns = "scale";
const keys = createKeys({ namespace: ns });
const redis = await startRedis();
const conns: RedisHandle[] = [];
const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? Number.NaN;
};
const info = async () => {
  const text = await redis.cli("INFO");
  const num = (k: string) => Number(new RegExp(`${k}:([\\d.]+)`).exec(text)?.[1] ?? 0);
  return { cmds: num("total_commands_processed"), cpu: num("used_cpu_user") + num("used_cpu_sys") };
};

const nodeOf = (service: string, id: string): NodeEntry => ({
  serviceName: service,
  serviceDescription: "",
  version: "1.0.0",
  instanceID: id,
  updatedOn: new Date().toISOString(),
  processID: process.pid,
  ip: "",
  port: 0,
  hostName: hostname(),
  rm: { v: 1, status: "ok" },
});
const newInstance = (service: string, conn: RedisHandle) => {
  const id = randomUUID().replace(/-/g, "");
  return new Registration({
    redis: conn,
    keys,
    service,
    instanceId: id,
    node: () => nodeOf(service, id),
    presenceTtlMs: 3000,
    heartbeatMs: 1000,
  });
};

try {
  for (let i = 0; i < CONNECTIONS; i++) {
    const c = createRedisConnection({ redis: redis.url });
    await c.connect();
    conns.push(c);
  }
  const regs: Registration[] = [];
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    const r = newInstance(`svc${i % S}`, conns[i % CONNECTIONS] as RedisHandle);
    regs.push(r);
  }
  for (let i = 0; i < regs.length; i += 100)
    await Promise.all(regs.slice(i, i + 100).map((r) => r.register()));
  const registerMs = performance.now() - t0;
  // Spread the heartbeats over the second, as independent processes would.
  for (const [i, r] of regs.entries()) setTimeout(() => r.startHeartbeat(), (i * 1000) / N).unref();
  await sleep(1500);

  const watcherConn = createRedisConnection({ redis: redis.url });
  await watcherConn.connect();
  const d = createDiscovery({ redis: watcherConn, keys });
  await d.start();
  // Cold lookups (a service not cached yet: one Lua round trip) and cached ones.
  const cold: number[] = [];
  for (let i = 0; i < S; i++) {
    const t = performance.now();
    await d.instances(`svc${i}`);
    cold.push(performance.now() - t);
  }
  const warm: number[] = [];
  for (let i = 0; i < 20_000; i++) {
    const t = performance.now();
    await d.instances(`svc${i % S}`);
    warm.push(performance.now() - t);
  }
  const listed = (await Promise.all(Array.from({ length: S }, (_, i) => d.instances(`svc${i}`)))).flat()
    .length;

  // Steady-state cost: 10 s of heartbeats (and the watcher's reconciliation of S services every second).
  const a = await info();
  await sleep(10_000);
  const b = await info();
  const cmdsPerSec = (b.cmds - a.cmds) / 10;
  const cpuPct = ((b.cpu - a.cpu) / 10) * 100;

  // A new instance appearing, one leaving, one crashing, as the watcher sees them.
  const joins: number[] = [];
  const leaves: number[] = [];
  const crashes: number[] = [];
  for (let k = 0; k < 5; k++) {
    const r = newInstance("svc0", conns[0] as RedisHandle);
    // Nothing else joins or leaves meanwhile: the next join/leave event is this instance's.
    const seen = new Promise<void>((resolve) => d.once("join", () => resolve()));
    let t = performance.now();
    await r.register();
    await seen;
    joins.push(performance.now() - t);
    const gone = new Promise<void>((resolve) => d.once("leave", () => resolve()));
    t = performance.now();
    await r.deregister();
    await gone;
    leaves.push(performance.now() - t);
    const c = newInstance("svc1", conns[1] as RedisHandle);
    await c.register();
    await sleep(50);
    const crashed = new Promise<void>((resolve) => d.once("leave", () => resolve()));
    t = performance.now(); // "crash": it just stops heartbeating, no goodbye
    await crashed;
    crashes.push(performance.now() - t);
  }

  console.log(
    `\nredmesh scale figures: ${N} instances of ${S} services on one throwaway redis-server (this machine)`,
  );
  console.log(`  registration of all ${N}:                 ${registerMs.toFixed(0)} ms`);
  console.log(`  listed by one watcher:                    ${listed}`);
  console.log(
    `  Redis commands/s (all instances + watcher): ${cmdsPerSec.toFixed(0)} → ${(cmdsPerSec / N).toFixed(2)} per instance`,
  );
  console.log(
    `  Redis CPU:                                ${cpuPct.toFixed(1)} % of one core → ${((cpuPct / N) * 1000).toFixed(1)} % per 1000 instances`,
  );
  console.log(
    `  discovery lookup, cold (1 round trip):    p50 ${q(cold, 0.5).toFixed(3)} ms, p99 ${q(cold, 0.99).toFixed(3)} ms`,
  );
  console.log(
    `  discovery lookup, cached:                 p50 ${(q(warm, 0.5) * 1000).toFixed(1)} µs, p99 ${(q(warm, 0.99) * 1000).toFixed(1)} µs`,
  );
  console.log(`  watcher sees a new instance:              median ${q(joins, 0.5).toFixed(2)} ms (5 tries)`);
  console.log(`  watcher sees a stopped instance leave:    median ${q(leaves, 0.5).toFixed(2)} ms`);
  console.log(
    `  watcher drops a crashed instance:         median ${q(crashes, 0.5).toFixed(0)} ms (TTL 3000 ms + reconcile 1000 ms)`,
  );
  for (const r of regs) r.stopHeartbeat();
  await d.stop();
  await watcherConn.close();
} finally {
  for (const c of conns) c.destroy();
  await redis.stop();
}
