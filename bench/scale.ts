/**
 * Scale benchmark (`npm run bench -- scale [instances=1000] [services=50] [--only=single|cluster]
 * [--no-messaging] [--msg-ms=5000] [--msg-rate=40000] [--senders=2]`): the same figures on one throwaway redis-server and
 * on a local 3-master + 3-replica Redis Cluster, printed side by side.
 *
 * Registry: many registered instances simulated in this process (each with its own registration and
 * 1 s heartbeat, sharing a few connections, as many small processes would), plus one watcher with
 * discovery. Measures Redis commands/s and CPU per instance (summed over the masters, and per master to
 * show the spread over the shards), discovery lookup latency, and how fast the watcher sees instances
 * come and go.
 *
 * Messaging: child processes publish small messages through a redmesh connection, round-robin over
 * the services' channels (sharded pub/sub on the Cluster), one child counts them. Measures messages/s
 * and the Redis CPU each message costs, read from /proc/<pid>/stat of every redis-server, so capacity
 * per core can be extrapolated on a machine where the clients compete with Redis for CPU. Each
 * topology runs once flat out and once at a fixed total rate both can carry (Redis' CPU per command
 * falls as pipelines deepen, so only equal rates compare topologies fairly). On the Cluster the
 * fixed-rate run is repeated over one classic channel (how registry events travel: PUBLISH is
 * broadcast to every node).
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { cpus, hostname, loadavg } from "node:os";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import {
  createDiscovery,
  createKeys,
  createRedisConnection,
  type Keys,
  type NodeEntry,
  type RedisHandle,
  Registration,
} from "../src/index.js";
import { startCluster } from "../test/helpers/redis-cluster.js";
import { startRedis, type TestRedis } from "../test/helpers/redis-server.js";

const positional = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const flag = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const N = Number(positional[0] ?? 1000);
const S = Number(positional[1] ?? 50);
const ONLY = flag("only");
const MESSAGING = !process.argv.includes("--no-messaging");
const MSG_MS = Number(flag("msg-ms") ?? 5000);
const SENDERS = Number(flag("senders") ?? 2);
/** Total messages/s of the fixed-rate runs: below what the Cluster client carries flat out on 2 cores. */
const MSG_RATE = Number(flag("msg-rate") ?? 40_000);
/** Publishes each sender keeps outstanding: enough to keep Redis busy, like many callers at once. */
const INFLIGHT = 128;
/** A small message: a short UMF envelope is ≈ 150 bytes; 64 keeps the payload itself out of the cost. */
const MSG_BYTES = 64;
const CONNECTIONS = 8;
const ns = "scale";
/** Kernel clock ticks per second (the unit of utime/stime in /proc/<pid>/stat). */
const CLK_TCK = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;
const peer = new URL("./_scale-peer.ts", import.meta.url).pathname;

const q = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? Number.NaN;
};

/** One redis-server of a topology under test. */
interface Node {
  label: string;
  role: "master" | "replica";
  server: TestRedis;
}

/** A topology under test. */
interface Target {
  name: string;
  url: string;
  keys: Keys;
  nodes: Node[];
}

/** CPU seconds (user + system) a process has used, from /proc/<pid>/stat. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may contain spaces) start at field 3 (state).
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

interface Sample {
  at: number;
  cmds: number[];
  cpu: number[];
}
async function sample(t: Target): Promise<Sample> {
  const cmds = await Promise.all(
    t.nodes.map(async (n) => {
      const text = await n.server.cli("INFO", "stats");
      return Number(/total_commands_processed:(\d+)/.exec(text)?.[1] ?? 0);
    }),
  );
  return { at: performance.now(), cmds, cpu: t.nodes.map((n) => cpuSeconds(n.server.pid)) };
}
/** Per node: commands/s and CPU (fraction of one core) between two samples. */
function rates(a: Sample, b: Sample) {
  const s = (b.at - a.at) / 1000;
  return a.cmds.map((_, i) => ({
    cmds: ((b.cmds[i] ?? 0) - (a.cmds[i] ?? 0)) / s,
    cpu: ((b.cpu[i] ?? 0) - (a.cpu[i] ?? 0)) / s,
  }));
}
const sum = (xs: number[]) => xs.reduce((x, y) => x + y, 0);

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

interface RegistryResult {
  /** Per node, before anything registered (cluster bus gossip and cron only). */
  idle: Array<{ cmds: number; cpu: number }>;
  registerMs: number;
  listed: number;
  /** Per node (same order as target.nodes). */
  perNode: Array<{ cmds: number; cpu: number }>;
  cold: number[];
  warm: number[];
  joins: number[];
  leaves: number[];
  crashes: number[];
}

async function measureRegistry(t: Target): Promise<RegistryResult> {
  const { keys } = t;
  const conns: RedisHandle[] = [];
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
    const i0 = await sample(t);
    await sleep(3000);
    const idle = rates(i0, await sample(t));
    for (let i = 0; i < CONNECTIONS; i++) {
      const c = createRedisConnection({ redis: t.url });
      await c.connect();
      conns.push(c);
    }
    const regs: Registration[] = [];
    const t0 = performance.now();
    for (let i = 0; i < N; i++) regs.push(newInstance(`svc${i % S}`, conns[i % CONNECTIONS] as RedisHandle));
    for (let i = 0; i < regs.length; i += 100)
      await Promise.all(regs.slice(i, i + 100).map((r) => r.register()));
    const registerMs = performance.now() - t0;
    // Spread the heartbeats over the second, as independent processes would.
    for (const [i, r] of regs.entries()) setTimeout(() => r.startHeartbeat(), (i * 1000) / N).unref();
    await sleep(1500);

    const watcherConn = createRedisConnection({ redis: t.url });
    await watcherConn.connect();
    const d = createDiscovery({ redis: watcherConn, keys });
    await d.start();
    // Cold lookups (a service not cached yet: one Lua round trip + one HMGET), 5 rounds over every
    // service (the first finds no script cached on each node), and cached ones.
    const cold: number[] = [];
    for (let round = 0; round < 5; round++) {
      d.invalidate();
      for (let i = 0; i < S; i++) {
        const t1 = performance.now();
        await d.instances(`svc${i}`);
        cold.push(performance.now() - t1);
      }
    }
    const warm: number[] = [];
    for (let i = 0; i < 20_000; i++) {
      const t1 = performance.now();
      await d.instances(`svc${i % S}`);
      warm.push(performance.now() - t1);
    }
    const listed = (await Promise.all(Array.from({ length: S }, (_, i) => d.instances(`svc${i}`)))).flat()
      .length;

    // Steady-state cost: 10 s of heartbeats (and the watcher's reconciliation of S services every second).
    const a = await sample(t);
    await sleep(10_000);
    const b = await sample(t);
    const perNode = rates(a, b);

    // A new instance appearing, one leaving, one crashing, as the watcher sees them.
    const joins: number[] = [];
    const leaves: number[] = [];
    const crashes: number[] = [];
    for (let k = 0; k < 5; k++) {
      const r = newInstance("svc0", conns[0] as RedisHandle);
      // Nothing else joins or leaves meanwhile: the next join/leave event is this instance's.
      const seen = new Promise<void>((resolve) => d.once("join", () => resolve()));
      let t1 = performance.now();
      await r.register();
      await seen;
      joins.push(performance.now() - t1);
      const gone = new Promise<void>((resolve) => d.once("leave", () => resolve()));
      t1 = performance.now();
      await r.deregister();
      await gone;
      leaves.push(performance.now() - t1);
      const c = newInstance("svc1", conns[1] as RedisHandle);
      await c.register();
      await sleep(50);
      const crashed = new Promise<void>((resolve) => d.once("leave", () => resolve()));
      t1 = performance.now(); // "crash": it just stops heartbeating, no goodbye
      await crashed;
      crashes.push(performance.now() - t1);
    }
    for (const r of regs) r.stopHeartbeat();
    await d.stop();
    await watcherConn.close();
    return { idle, registerMs, listed, perNode, cold, warm, joins, leaves, crashes };
  } finally {
    for (const c of conns) c.destroy();
  }
}

type MessagingMode = "sharded" | "classic";
interface MessagingResult {
  mode: MessagingMode;
  /** Total offered messages/s; 0 = flat out. */
  rate: number;
  sentPerSec: number;
  receivedPerSec: number;
  errors: number;
  perNode: Array<{ cmds: number; cpu: number }>;
}

function child(args: string[]): { proc: ChildProcess; next: () => Promise<Record<string, unknown>> } {
  const proc = spawn(process.execPath, ["--import", "tsx", peer, ...args], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  const queued: string[] = [];
  const waiting: Array<(l: string) => void> = [];
  createInterface({ input: proc.stdout as NodeJS.ReadableStream }).on("line", (l) => {
    const w = waiting.shift();
    if (w) w(l);
    else queued.push(l);
  });
  const exited = new Promise<never>((_, reject) =>
    proc.once("exit", (code) => reject(new Error(`scale peer ${args[0]} exited with ${code}`))),
  );
  exited.catch(() => undefined);
  const next = () =>
    Promise.race([
      new Promise<string>((resolve) => {
        const l = queued.shift();
        if (l !== undefined) resolve(l);
        else waiting.push(resolve);
      }),
      exited,
    ]).then((l) => JSON.parse(l) as Record<string, unknown>);
  return { proc, next };
}

async function measureMessaging(t: Target, mode: MessagingMode, rate: number): Promise<MessagingResult> {
  const common = [t.url, ns, String(S), mode];
  const recv = child(["recv", ...common]);
  const senders = Array.from({ length: SENDERS }, () =>
    child(["send", ...common, String(MSG_MS), String(INFLIGHT), String(MSG_BYTES), String(rate / SENDERS)]),
  );
  try {
    await Promise.all([recv, ...senders].map((c) => c.next()));
    await sleep(200);
    const a = await sample(t);
    for (const s of senders) s.proc.stdin?.write("go\n");
    const results = await Promise.all(senders.map((s) => s.next()));
    const b = await sample(t);
    await sleep(200); // the last messages reach the receiver
    recv.proc.stdin?.write("stop\n");
    const { received } = (await recv.next()) as { received: number };
    const secs = (b.at - a.at) / 1000;
    const sent = sum(results.map((r) => Number(r.sent)));
    return {
      mode,
      rate,
      sentPerSec: sent / secs,
      receivedPerSec: received / secs,
      errors: sum(results.map((r) => Number(r.errors))),
      perNode: rates(a, b).map((r) => ({ cmds: r.cmds, cpu: r.cpu })),
    };
  } finally {
    for (const c of [recv, ...senders]) if (c.proc.exitCode === null) c.proc.kill("SIGKILL");
  }
}

interface Run {
  target: Target;
  registry: RegistryResult;
  messaging: MessagingResult[];
}

async function runOn(t: Target, stop: () => Promise<void>): Promise<Run> {
  try {
    console.error(`[scale] ${t.name}: registry (${N} instances of ${S} services)…`);
    const registry = await measureRegistry(t);
    const messaging: MessagingResult[] = [];
    if (MESSAGING) {
      const cells: Array<[MessagingMode, number]> = [
        ["sharded", 0],
        ["sharded", MSG_RATE],
      ];
      if (t.nodes.length > 1) cells.push(["classic", MSG_RATE]);
      for (const [mode, rate] of cells) {
        console.error(`[scale] ${t.name}: messaging (${mode}, ${rate || "flat out"})…`);
        messaging.push(await measureMessaging(t, mode, rate));
      }
    }
    return { target: t, registry, messaging };
  } finally {
    await stop();
  }
}

const runs: Run[] = [];
if (ONLY !== "cluster") {
  const redis = await startRedis();
  runs.push(
    await runOn(
      {
        name: "one Redis",
        url: redis.url,
        keys: createKeys({ namespace: ns }),
        nodes: [{ label: `:${redis.port}`, role: "master", server: redis }],
      },
      () => redis.stop(),
    ),
  );
}
if (ONLY !== "single") {
  const cluster = await startCluster();
  const masters = await cluster.masters();
  const nodes: Node[] = [
    ...masters.map((m) => ({ label: `:${m.port}`, role: "master" as const, server: m })),
    ...cluster.nodes
      .filter((n) => !masters.includes(n))
      .map((r) => ({ label: `:${r.port}`, role: "replica" as const, server: r })),
  ];
  runs.push(
    await runOn(
      {
        name: `Cluster (${masters.length} masters + ${nodes.length - masters.length} replicas)`,
        url: `redis-cluster://${cluster.nodes.map((n) => `127.0.0.1:${n.port}`).join(",")}`,
        keys: createKeys({ namespace: ns, cluster: true }),
        nodes,
      },
      () => cluster.stop(),
    ),
  );
}

// ---- report ----
const masterSum = (r: Run, per: Array<{ cmds: number; cpu: number }>, k: "cmds" | "cpu") =>
  sum(per.filter((_, i) => r.target.nodes[i]?.role === "master").map((x) => x[k]));
const replicaSum = (r: Run, per: Array<{ cmds: number; cpu: number }>, k: "cmds" | "cpu") =>
  sum(per.filter((_, i) => r.target.nodes[i]?.role === "replica").map((x) => x[k]));
const rows: Array<[string, (r: Run) => string]> = [
  [`register ${N} instances`, (r) => `${r.registry.registerMs.toFixed(0)} ms`],
  ["listed by one watcher", (r) => String(r.registry.listed)],
  [
    "Redis commands/s (masters)",
    (r) => {
      const c = masterSum(r, r.registry.perNode, "cmds");
      return `${c.toFixed(0)} → ${(c / N).toFixed(2)}/instance`;
    },
  ],
  [
    "Redis CPU idle: masters / replicas",
    (r) =>
      r.target.nodes.length > 1
        ? `${(masterSum(r, r.registry.idle, "cpu") * 100).toFixed(1)} % / ${(replicaSum(r, r.registry.idle, "cpu") * 100).toFixed(1)} %`
        : `${(masterSum(r, r.registry.idle, "cpu") * 100).toFixed(1)} %`,
  ],
  [
    "Redis CPU (masters)",
    (r) => {
      const c = masterSum(r, r.registry.perNode, "cpu") * 100;
      return `${c.toFixed(1)} % → ${((c / N) * 1000).toFixed(1)} %/1000 inst.`;
    },
  ],
  [
    "  above idle, per 1000 instances",
    (r) => `${((cpuAboveIdle(r, r.registry.perNode, "master") / N) * 1000 * 100).toFixed(1)} %`,
  ],
  [
    "Redis CPU (replicas)",
    (r) =>
      r.target.nodes.length > 1 ? `${(replicaSum(r, r.registry.perNode, "cpu") * 100).toFixed(1)} %` : "—",
  ],
  [
    "lookup, cold p50 / p99",
    (r) => `${q(r.registry.cold, 0.5).toFixed(2)} / ${q(r.registry.cold, 0.99).toFixed(2)} ms`,
  ],
  [
    "lookup, cached p50 / p99",
    (r) =>
      `${(q(r.registry.warm, 0.5) * 1000).toFixed(1)} / ${(q(r.registry.warm, 0.99) * 1000).toFixed(1)} µs`,
  ],
  ["sees a new instance (median of 5)", (r) => `${q(r.registry.joins, 0.5).toFixed(2)} ms`],
  ["sees a stopped one leave", (r) => `${q(r.registry.leaves, 0.5).toFixed(2)} ms`],
  ["drops a crashed one (TTL 3 s)", (r) => `${q(r.registry.crashes, 0.5).toFixed(0)} ms`],
];
/** CPU (fraction of a core) above the idle baseline, summed over the nodes of `role` (or all). */
const cpuAboveIdle = (r: Run, per: Array<{ cmds: number; cpu: number }>, role?: Node["role"]) =>
  sum(
    per.map((p, i) =>
      role === undefined || r.target.nodes[i]?.role === role
        ? Math.max(0, p.cpu - (r.registry.idle[i]?.cpu ?? 0))
        : 0,
    ),
  );
const cells = [
  ...new Map(runs.flatMap((r) => r.messaging.map((m) => [`${m.mode}@${m.rate}`, m] as const))).values(),
];
for (const { mode, rate } of cells) {
  const m = (r: Run) => r.messaging.find((x) => x.mode === mode && x.rate === rate);
  const label = `${mode === "sharded" ? "service channels" : "one classic channel"}, ${rate ? `${rate / 1000}k/s offered` : "flat out"}`;
  rows.push(
    [
      `msgs/s, ${label}: sent / received`,
      (r) => {
        const x = m(r);
        return x
          ? `${(x.sentPerSec / 1000).toFixed(1)}k / ${(x.receivedPerSec / 1000).toFixed(1)}k${x.errors ? ` (${x.errors} errors)` : ""}`
          : "—";
      },
    ],
    [
      "  Redis CPU: masters / replicas",
      (r) => {
        const x = m(r);
        if (!x) return "—";
        const rep =
          r.target.nodes.length > 1 ? ` / ${(replicaSum(r, x.perNode, "cpu") * 100).toFixed(0)} %` : "";
        return `${(masterSum(r, x.perNode, "cpu") * 100).toFixed(0)} %${rep}`;
      },
    ],
    [
      "  Redis CPU/msg above idle: masters / all",
      (r) => {
        const x = m(r);
        if (!x) return "—";
        const per = (cpu: number) => ((cpu / x.sentPerSec) * 1e6).toFixed(2);
        return `${per(cpuAboveIdle(r, x.perNode, "master"))} / ${per(cpuAboveIdle(r, x.perNode))} µs`;
      },
    ],
  );
}
const w0 = Math.max(...rows.map(([l]) => l.length));
const cols = runs.map((r) => ({ r, cells: rows.map(([, f]) => f(r)) }));
const w = cols.map((c) => Math.max(c.r.target.name.length, ...c.cells.map((x) => x.length)));
const line = (cells: string[]) =>
  `| ${cells.map((c, i) => c.padEnd(i === 0 ? w0 : (w[i - 1] ?? 0))).join(" | ")} |`;
console.log(
  `\nredmesh scale figures: ${N} instances of ${S} services${MESSAGING ? `; ${SENDERS} senders × ${INFLIGHT} in flight, ${MSG_BYTES}-byte messages, ${MSG_MS} ms per cell` : ""}; ${cpus().length} cores, load ${loadavg()[0]?.toFixed(2)} at the end\n`,
);
console.log(line(["measure", ...cols.map((c) => c.r.target.name)]));
console.log(line(["-".repeat(w0), ...w.map((x) => "-".repeat(x))]));
rows.forEach(([label], i) => {
  console.log(line([label, ...cols.map((c) => c.cells[i] ?? "")]));
});
for (const r of runs) {
  if (r.target.nodes.length < 2) continue;
  console.log(`\nper node, ${r.target.name}: commands/s and CPU (% of one core)`);
  const phases: Array<[string, Array<{ cmds: number; cpu: number }>]> = [
    ["idle", r.registry.idle],
    ["registry", r.registry.perNode],
    ...r.messaging.map(
      (m) => [`${m.mode}@${m.rate / 1000}k`, m.perNode] as [string, Array<{ cmds: number; cpu: number }>],
    ),
  ];
  for (const [phase, per] of phases) {
    const cells = r.target.nodes.map(
      (n, i) =>
        `${n.role[0]}${n.label} ${(per[i]?.cmds ?? 0).toFixed(0)}/s ${((per[i]?.cpu ?? 0) * 100).toFixed(1)}%`,
    );
    console.log(`  ${phase.padEnd(12)} ${cells.join("  ")}`);
  }
}
