/**
 * Balancer micro-benchmark (`npm run bench -- balancer [msPerCell]`): picks per second for each
 * strategy over 3, 30 and 300 instances, side by side with Moleculer 0.14's strategies (Moleculer's
 * EndpointList filters the available endpoints, then the strategy's `select` picks: both are timed).
 * A second table times the full cycle one RPC call costs the balancer: `pick` + `onStart` + `onEnd`
 * with the circuit breaker on. The least-outstanding + tracker row reads real health snapshots from a
 * throwaway redis-server (at most one MGET a second). Best of 5 runs per cell.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type Balancer,
  createBalancer,
  createKeys,
  createRedisConnection,
  type Instance,
  LoadTracker,
} from "../src/index.js";
import { startRedis } from "../test/helpers/redis-server.js";

const DURATION_MS = Number(process.argv[2] ?? 100);
const SIZES = [3, 30, 300];
const KEYS = Array.from({ length: 10_000 }, (_, i) => `user-${i}`);

interface MolEndpoint {
  id: string;
  isAvailable: boolean;
}
interface MolStrategy {
  select(list: MolEndpoint[], ctx?: unknown): MolEndpoint | undefined;
}
type MolStrategyClass = new (registry: unknown, broker: unknown, opts?: unknown) => MolStrategy;

const require = createRequire(import.meta.url);
const { Strategies } = require("moleculer") as { Strategies: Record<string, MolStrategyClass> };
const molVersion = (
  JSON.parse(readFileSync(new URL("../node_modules/moleculer/package.json", import.meta.url), "utf8")) as {
    version: string;
  }
).version;
// The strategies only touch the broker's local bus (Shard listens for node changes there).
const fakeBroker = { localBus: { on() {} }, transit: undefined };

const iid = (n: number) => n.toString(16).padStart(32, "0");
const makeInstances = (n: number): Instance[] =>
  Array.from({ length: n }, (_, i) => ({
    service: "svc",
    id: iid(i),
    deadline: Number.MAX_SAFE_INTEGER,
    node: undefined,
    redmesh: true,
    status: "ok",
  }));

/**
 * Ops per second of `fn` over DURATION_MS (after a warm-up run), best of 5: on a shared machine the
 * fastest run is the least disturbed one, and both sides get the same treatment.
 */
function measure(fn: (i: number) => void): number {
  const once = () => {
    let i = 0;
    const t0 = performance.now();
    const end = t0 + DURATION_MS;
    let now = t0;
    while (now < end) {
      for (let k = 0; k < 1000; k++) fn(i++);
      now = performance.now();
    }
    return (i / (now - t0)) * 1000;
  };
  once();
  return Math.max(once(), once(), once(), once(), once());
}

const ctxOf = (keyed: boolean, i: number) =>
  keyed ? { service: "svc", key: KEYS[i % KEYS.length]! } : { service: "svc" };

function pickOnly(b: Balancer, list: Instance[], keyed: boolean) {
  return (i: number) => {
    b.pick(list, ctxOf(keyed, i));
  };
}

function cycle(b: Balancer, list: Instance[], keyed: boolean) {
  return (i: number) => {
    const p = b.pick(list, ctxOf(keyed, i))!;
    b.onStart("svc", p.id);
    b.onEnd("svc", p.id, { ok: true, latencyMs: 1 });
  };
}

function moleculer(cls: string, list: MolEndpoint[], keyed: boolean) {
  const s = new Strategies[cls]!({}, fakeBroker, keyed ? { shardKey: "key" } : undefined);
  const ctxs = keyed ? KEYS.map((key) => ({ params: { key }, meta: {} })) : [];
  return (i: number) => {
    s.select(
      list.filter((ep) => ep.isAvailable),
      keyed ? ctxs[i % ctxs.length] : undefined,
    );
  };
}

interface Row {
  strategy: string;
  peer: string;
  ours: number[];
  theirs: number[];
  cycles: number[];
}

const redis = await startRedis();
const conn = createRedisConnection({ redis: redis.url });
const rows: Row[] = [];
try {
  await conn.connect({ timeoutMs: 5000 });
  const keys = createKeys({ namespace: "benchbal" });
  await conn.pipeline(
    makeInstances(Math.max(...SIZES)).map((inst, k) => [
      "SET",
      keys.health("svc", inst.id),
      JSON.stringify({
        inFlight: k % 4,
        eventLoopLagMs: { mean: 20 + (k % 3), p99: 25, max: 30 },
        status: "ok",
      }),
    ]),
  );
  const tracker = new LoadTracker({ redis: conn, keys, refreshMs: 1000 });
  tracker.start();

  const cells: Array<{ strategy: string; make: () => Balancer; keyed: boolean; peer: string }> = [
    { strategy: "random", make: () => createBalancer({ strategy: "random" }), keyed: false, peer: "Random" },
    {
      strategy: "round-robin",
      make: () => createBalancer({ strategy: "round-robin" }),
      keyed: false,
      peer: "RoundRobin",
    },
    {
      strategy: "least-outstanding",
      make: () => createBalancer({ strategy: "least-outstanding" }),
      keyed: false,
      peer: "Random",
    },
    {
      strategy: "least-outstanding + tracker",
      make: () => createBalancer({ strategy: "least-outstanding", loadTracker: tracker }),
      keyed: false,
      peer: "Random",
    },
    {
      strategy: "affinity (10k keys)",
      make: () => createBalancer({ strategy: "affinity" }),
      keyed: true,
      peer: "Shard",
    },
  ];
  for (const cell of cells) {
    const row: Row = { strategy: cell.strategy, peer: cell.peer, ours: [], theirs: [], cycles: [] };
    for (const n of SIZES) {
      const list = makeInstances(n);
      const eps: MolEndpoint[] = list.map((i) => ({ id: i.id, isAvailable: true }));
      row.ours.push(measure(pickOnly(cell.make(), list, cell.keyed)));
      row.theirs.push(measure(moleculer(cell.peer, eps, cell.keyed)));
      row.cycles.push(measure(cycle(cell.make(), list, cell.keyed)));
      await sleep(0); // let the tracker's MGET replies in
    }
    rows.push(row);
  }
  await tracker.stop();
} finally {
  await conn.close();
  await redis.stop();
}

const fmt = (x: number) => (x >= 1e6 ? `${(x / 1e6).toFixed(2)}M` : `${(x / 1e3).toFixed(0)}k`);
console.log(
  `\nredmesh balancer: picks/s, best of 5 runs of ${DURATION_MS} ms per cell; Node ${process.version}, moleculer ${molVersion}`,
);
console.log(["strategy".padEnd(28), ...SIZES.map((n) => `n=${n}`.padStart(25)), "  Moleculer peer"].join(""));
for (const r of rows) {
  const text = r.ours.map((o, k) => {
    const t = r.theirs[k]!;
    return `${fmt(o)} (${(o / t).toFixed(2)}× ${fmt(t)})`.padStart(25);
  });
  console.log([r.strategy.padEnd(28), ...text, `  ${r.peer}`].join(""));
}
console.log(
  "\nfull cycles/s: pick + onStart + onEnd with the circuit breaker (what one RPC call costs the balancer)",
);
console.log(["strategy".padEnd(28), ...SIZES.map((n) => `n=${n}`.padStart(12))].join(""));
for (const r of rows)
  console.log([r.strategy.padEnd(28), ...r.cycles.map((c) => fmt(c).padStart(12))].join(""));
const c0 = performance.now();
for (let i = 0; i < 1e5; i++) Date.now();
console.log(
  `(Date.now() costs ${(((performance.now() - c0) / 1e5) * 1e6).toFixed(0)} ns here; a cycle reads it once)`,
);
