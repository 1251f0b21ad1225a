/**
 * RPC latency at concurrency 1 with the systems interleaved in short bursts (`npm run bench -- rpc-c1
 * [--bursts=30] [--epochs=3] [--burst-ms=500] [--only=a,b]`).
 *
 * `bench/rpc.ts` runs each system for a few seconds in turn, so the speed of a shared VM, which
 * drifts by 15 % and more within minutes, lands in the ratios: its c=1 ratio to the raw floor moved
 * from 0.95× to 1.49× between rounds of one run. Here every system keeps its caller and callee alive
 * (each pair on its own throwaway redis-server, so their channels cannot mix), and they take turns in
 * bursts of half a second, in a rotating order, many times. The same drift then hits every system
 * alike, and each burst gives a paired ratio to the floor measured within seconds. The bursts are
 * spread over a few sets of fresh processes (epochs), because where the scheduler places a pair and
 * its Redis biases that pair for as long as the processes live.
 *
 * Reports per system the p50/p99 over all bursts, and for redmesh the ratio to the fastest raw floor
 * (min of raw-node-redis and raw-ioredis, the target of issue #3: ≤ 1.1×) twice: pooled (p50 over all
 * its latencies / the floor's) and paired (the median of the per-burst ratios, with its quartiles).
 */
import { startRedis, type TestRedis } from "../test/helpers/redis-server.js";
import { spawnPeer } from "./_rpc-spawn.js";

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const bursts = Number(arg("bursts") ?? 30);
const burstMs = Number(arg("burst-ms") ?? 500);
const warmupMs = Number(arg("warmup") ?? 5000);
/** Sets of fresh processes the bursts are spread over. */
const epochs = Math.max(1, Number(arg("epochs") ?? 3));
const SYSTEMS = arg("only")?.split(",") ?? ["redmesh", "raw-node-redis", "raw-ioredis", "raw-envelope"];
const FLOORS = ["raw-node-redis", "raw-ioredis"].filter((s) => SYSTEMS.includes(s));

interface Burst {
  rps: number;
  p50: number;
  p99: number;
  /** Every latency of the burst, ms, sorted. */
  lat: number[];
}

const quantile = (sorted: ArrayLike<number>, q: number) =>
  sorted.length === 0
    ? Number.NaN
    : (sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number);
const sortNum = (xs: number[]) => Float64Array.from(xs).sort();

const got = new Map<string, Burst[]>(SYSTEMS.map((s) => [s, []]));
const allPeers: Array<ReturnType<typeof spawnPeer>> = [];
const allServers: TestRedis[] = [];

/** Start every system's pair, one after another: a caller's warm-up must not compete with another's. */
async function startAll(): Promise<Map<string, ReturnType<typeof spawnPeer>>> {
  const callers = new Map<string, ReturnType<typeof spawnPeer>>();
  for (const sys of SYSTEMS) {
    const redis = await startRedis();
    allServers.push(redis);
    const callee = spawnPeer(["callee", sys, redis.url]);
    allPeers.push(callee);
    await callee.next();
    const plan = { concurrency: [], ms: 0, rate: 0, warmupMs, serve: true };
    const caller = spawnPeer(["caller", sys, redis.url, JSON.stringify(plan)], true);
    allPeers.push(caller);
    await caller.next();
    callers.set(sys, caller);
  }
  return callers;
}

async function stopAll(): Promise<void> {
  for (const p of allPeers.splice(0)) p.proc.kill("SIGKILL");
  for (const r of allServers.splice(0)) await r.stop();
}

try {
  let b = 0;
  for (let epoch = 0; epoch < epochs; epoch++) {
    // Fresh processes per epoch: where the scheduler places a caller, its callee and their Redis
    // (same core or not) shifts a pair's latency for as long as they live.
    const callers = await startAll();
    const until = Math.round((bursts * (epoch + 1)) / epochs);
    for (; b < until; b++) {
      // A rotating order: no system always runs right after the same other one.
      for (let i = 0; i < SYSTEMS.length; i++) {
        const sys = SYSTEMS[(b + i) % SYSTEMS.length] as string;
        const caller = callers.get(sys) as ReturnType<typeof spawnPeer>;
        caller.proc.stdin?.write(`${JSON.stringify({ ms: burstMs })}\n`);
        got.get(sys)?.push((await caller.next()) as unknown as Burst);
      }
    }
    await stopAll();
    process.stderr.write(`epoch ${epoch + 1}/${epochs}: ${b}/${bursts} bursts\n`);
  }
} finally {
  await stopAll();
}

// ------------------------------------------------------------------ report
const pooled = new Map<string, Float64Array>();
for (const [sys, bs] of got) pooled.set(sys, sortNum(bs.flatMap((x) => x.lat)));
const us = (ms: number) => (Number.isFinite(ms) ? (ms * 1000).toFixed(0) : "–");
console.log(
  `\nRPC latency at c=1, systems interleaved (npm run bench -- rpc-c1 --bursts=${bursts} --epochs=${epochs} --burst-ms=${burstMs})\n`,
);
console.log(
  `Node ${process.version}; ${bursts} bursts of ${burstMs} ms per system in rotating order, over ${epochs} set(s) of fresh processes, each caller warmed up for ${warmupMs / 1000} s; every system on its own redis-server.\n`,
);
console.log("| system | calls | p50 µs | p99 µs | burst p50s: min / median / max µs |");
console.log("|---|---:|---:|---:|---:|");
for (const sys of SYSTEMS) {
  const all = pooled.get(sys) ?? new Float64Array();
  const p50s = sortNum((got.get(sys) ?? []).map((x) => x.p50));
  console.log(
    `| ${sys} | ${all.length.toLocaleString("en-US")} | ${us(quantile(all, 0.5))} | ${us(quantile(all, 0.99))} | ${us(p50s[0] ?? Number.NaN)} / ${us(quantile(p50s, 0.5))} / ${us(p50s[p50s.length - 1] ?? Number.NaN)} |`,
  );
}
console.log("");
/** Per burst, the fastest floor's p50 (the floors ran within the same rotation). */
const floorOf = (b: number) =>
  Math.min(...FLOORS.map((f) => got.get(f)?.[b]?.p50 ?? Number.POSITIVE_INFINITY));
for (const sys of SYSTEMS.filter((s) => !FLOORS.includes(s))) {
  if (FLOORS.length === 0) break;
  const floorPooled = Math.min(...FLOORS.map((f) => quantile(pooled.get(f) ?? [], 0.5)));
  const ratio = quantile(pooled.get(sys) ?? [], 0.5) / floorPooled;
  const paired = sortNum((got.get(sys) ?? []).map((x, b) => x.p50 / floorOf(b)));
  console.log(
    `- ${sys} / fastest raw floor, p50: pooled ${ratio.toFixed(2)}×; paired per burst: median ${quantile(paired, 0.5).toFixed(2)}× (quartiles ${quantile(paired, 0.25).toFixed(2)}–${quantile(paired, 0.75).toFixed(2)}×)${sys === "redmesh" ? " (target ≤ 1.1×)" : ""}`,
  );
}
if (SYSTEMS.includes("redmesh") && SYSTEMS.includes("raw-envelope")) {
  // What RPC semantics cost over the least a JSON-envelope RPC on the same client does.
  const env = got.get("raw-envelope") ?? [];
  const pooledEnv =
    quantile(pooled.get("redmesh") ?? [], 0.5) / quantile(pooled.get("raw-envelope") ?? [], 0.5);
  const paired = sortNum((got.get("redmesh") ?? []).map((x, b) => x.p50 / (env[b]?.p50 ?? Number.NaN)));
  console.log(
    `- redmesh / raw-envelope, p50: pooled ${pooledEnv.toFixed(2)}×; paired per burst: median ${quantile(paired, 0.5).toFixed(2)}× (quartiles ${quantile(paired, 0.25).toFixed(2)}–${quantile(paired, 0.75).toFixed(2)}×)`,
  );
}
console.log(
  "- pooled: the p50 over all of a system's calls over the floor's; paired: per burst, the system's p50 over the fastest floor's p50 in the same rotation, then the median of those ratios.",
);
process.exit(0);
