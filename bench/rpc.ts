/**
 * RPC benchmark (`npm run bench -- rpc [--quick]`): redmesh side by side with Moleculer (Redis
 * transporter), Hydra (sendMessage + sendReplyMessage matched by rmid) and two raw PUBLISH/SUBSCRIBE
 * ping-pong floors (node-redis with `commandOptions.timeout: 0`, ioredis), plus `raw-envelope` (the
 * node-redis ping-pong with a JSON request parsed and a JSON reply built: the least any RPC with a
 * JSON envelope does), on one throwaway redis-server. Caller and callee are separate processes.
 * Closed loop at concurrency 1, 64 and 256, then a fixed arrival rate; rounds interleave the systems and every cell reports its median round.
 * Also the RSS of an idle service process of each framework. Prints a table with ratios and writes
 * it to docs/benchmarks.md (section "RPC").
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { startRedis } from "../test/helpers/redis-server.js";
import { spawnPeer } from "./_rpc-spawn.js";

const quick = process.argv.includes("--quick");
const only = process.argv
  .find((a) => a.startsWith("--only="))
  ?.slice(7)
  .split(",");
const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
/** Rounds (fresh processes each, the systems taking turns); every cell reports its median round. */
const rounds = Number(arg("rounds") ?? (quick ? 1 : 3));
const plan = {
  concurrency: (arg("concurrency") ?? "1,64,256").split(",").map(Number),
  ms: Number(arg("ms") ?? (quick ? 2000 : 3000)),
  rate: Number(arg("rate") ?? 20_000),
  // Every system's caller first runs this long at c=1 and then at c=64, unmeasured: both ends' JIT
  // settles before the first cell (redmesh at c=1 needed ≈ 4 s to reach its steady state).
  warmupMs: Number(arg("warmup") ?? (quick ? 2000 : 5000)),
};
const SYSTEMS = ["redmesh", "moleculer", "hydra", "raw-node-redis", "raw-ioredis", "raw-envelope"].filter(
  (s) => !only || only.includes(s),
);

interface Cell {
  rps: number;
  callerCpuUs?: number;
  calleeCpuUs?: number;
  redisCpuUs?: number;
  p50: number;
  p99: number;
  offered?: number;
}
type Result = Record<string, Cell>;

const redis = await startRedis();
const results: Record<string, Result> = {};
/** Every round's cells per system. */
const perRound: Record<string, Result[]> = {};
const rss: Record<string, number> = {};
try {
  // Rounds interleave the systems, so drift of a shared machine (15 % and more within minutes) hits
  // all of them; per cell the median round is reported.
  for (let round = 1; round <= rounds; round++) {
    for (const sys of SYSTEMS) {
      await redis.cli("FLUSHALL");
      const callee = spawnPeer(["callee", sys, redis.url]);
      const hello = await callee.next();
      const caller = spawnPeer([
        "caller",
        sys,
        redis.url,
        JSON.stringify({ ...plan, calleePid: hello.pid, redisPid: redis.pid }),
      ]);
      let r: Result;
      try {
        r = (await caller.next()) as unknown as Result;
      } finally {
        callee.proc.kill("SIGKILL");
        caller.proc.kill("SIGKILL");
      }
      perRound[sys] = [...(perRound[sys] ?? []), r];
      process.stderr.write(`round ${round} ${sys}: ${JSON.stringify(r)}\n`);
    }
  }

  // Each cell reports the round with the median req/s (the lower middle one of an even count), so
  // its latencies and CPU figures come from one coherent measurement.
  for (const [sys, runs] of Object.entries(perRound)) {
    const out: Result = {};
    for (const cell of new Set(runs.flatMap((r) => Object.keys(r)))) {
      const vs = runs
        .map((r) => r[cell])
        .filter((v): v is Cell => v !== undefined)
        .sort((x, y) => x.rps - y.rps);
      out[cell] = vs[Math.floor((vs.length - 1) / 2)] as Cell;
    }
    results[sys] = out;
  }

  // Idle RSS of one service process per framework, plain node (compiled redmesh, as users run it).
  // Built every time (≈ 1 s): a dist/ left from an older checkout would measure old code.
  execFileSync("npm", ["run", "build"], { stdio: "ignore" });
  const idle: Record<string, string> = {
    redmesh: `const { createService } = await import("./dist/index.js");
      const s = createService({ name: "idle", namespace: "bench", redis: URL_ }); await s.start();
      s.handle("echo", (b) => b);`,
    moleculer: `const { ServiceBroker } = require("moleculer");
      const b = new ServiceBroker({ nodeID: "idle", transporter: URL_, logger: false });
      b.createService({ name: "idle", actions: { echo: (ctx) => ctx.params } }); await b.start();`,
    hydra: `const hydra = require("hydra");
      await hydra.init({ hydra: { serviceName: "idle", serviceIP: "127.0.0.1", servicePort: 0, redis: { url: URL_ } } });
      await hydra.registerService(); hydra.on("message", () => {});`,
  };
  for (const [sys, code] of Object.entries(idle)) {
    const src = `import { createRequire } from "node:module"; const require = createRequire(process.cwd() + "/x.js");
      const URL_ = ${JSON.stringify(redis.url)}; ${code}
      setTimeout(() => { process.stdout.write(String(process.memoryUsage().rss) + "\\n"); process.exit(0); }, 3000);`;
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", src]).toString().trim();
    rss[sys] = Number(out.split("\n").pop()) / 1048576;
  }
} finally {
  await redis.stop();
}

// ------------------------------------------------------------------ report
const f0 = (n: number) => (Number.isFinite(n) ? Math.round(n).toLocaleString("en-US") : "–");
const f1 = (n: number | undefined) => (n !== undefined && Number.isFinite(n) ? n.toFixed(1) : "–");
const f2 = (n: number) => (Number.isFinite(n) ? n.toFixed(3) : "–");
const rm = results.redmesh;
/** The fastest of the raw floors that were measured (NaN when none was). */
const fastest = (field: "rps" | "p50", cells: Array<Cell | undefined>) => {
  const vs = cells.map((c) => c?.[field]).filter((v): v is number => v !== undefined && Number.isFinite(v));
  if (vs.length === 0) return Number.NaN;
  return field === "rps" ? Math.max(...vs) : Math.min(...vs);
};
const rawBest = (key: string, field: "rps" | "p50") =>
  fastest(field, [results["raw-node-redis"]?.[key], results["raw-ioredis"]?.[key]]);
/** A ratio in every round (the systems of one round ran within a minute or two of each other). */
const byRound = (f: (sys: (name: string) => Result | undefined) => number) =>
  (perRound.redmesh ?? []).map((_, i) => f((name) => perRound[name]?.[i]));
const rows: string[] = [];
rows.push(
  `| system | c=1 req/s | c=1 p50 / p99 ms | c=64 req/s | c=64 p50 / p99 ms | c=256 req/s | c=256 p50 / p99 ms | ${plan.rate > 0 ? `fixed ${plan.rate / 1000}k/s` : "fixed (--rate=0: off)"}: done req/s | fixed p50 / p99 ms | c=64 CPU µs/call caller + callee + Redis | idle RSS MiB |`,
);
rows.push("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
for (const sys of SYSTEMS) {
  const r = results[sys];
  if (!r) continue;
  const c = (k: string) => r[k] ?? { rps: Number.NaN, p50: Number.NaN, p99: Number.NaN };
  rows.push(
    `| ${sys} | ${f0(c("c1").rps)} | ${f2(c("c1").p50)} / ${f2(c("c1").p99)} | ${f0(c("c64").rps)} | ${f2(c("c64").p50)} / ${f2(c("c64").p99)} | ${f0(c("c256").rps)} | ${f2(c("c256").p50)} / ${f2(c("c256").p99)} | ${f0(c("fixed").rps)} | ${f2(c("fixed").p50)} / ${f2(c("fixed").p99)} | ${f1(c("c64").callerCpuUs)} + ${f1(c("c64").calleeCpuUs)} + ${f1(c("c64").redisCpuUs)} | ${rss[sys] === undefined ? "–" : rss[sys].toFixed(1)} |`,
  );
}
const ratios: string[] = [];
if (rm) {
  for (const peerName of ["moleculer", "hydra"]) {
    const p = results[peerName];
    if (!p) continue;
    // Only the cells both measured (`--concurrency=1` leaves out c=64 and c=256).
    const rps = ["c1", "c64", "c256"]
      .filter((k) => rm[k] && p[k])
      .map((k) => `${k.replace("c", "c=")} ${((rm[k] as Cell).rps / (p[k] as Cell).rps).toFixed(2)}×`);
    const p50 = rm.c1 && p.c1 ? `; p50 at c=1 ${(rm.c1.p50 / p.c1.p50).toFixed(2)}×` : "";
    ratios.push(`- redmesh / ${peerName} req/s: ${rps.join(", ")}${p50}`);
  }
  // Only the ratios whose two sides were measured (`--only=redmesh,moleculer` has no raw floor).
  const vsRaw = [
    [(rm.c1?.p50 ?? Number.NaN) / rawBest("c1", "p50"), "p50 at c=1 %× (target ≤ 1.1×)"],
    [(rm.c64?.rps ?? Number.NaN) / rawBest("c64", "rps"), "req/s at c=64 %×"],
  ] as const;
  const vsRawShown = vsRaw.filter(([x]) => Number.isFinite(x)).map(([x, t]) => t.replace("%", x.toFixed(2)));
  if (vsRawShown.length > 0) ratios.push(`- redmesh / fastest raw floor: ${vsRawShown.join(", ")}`);
  const env = results["raw-envelope"]?.c1;
  if (env && rm.c1)
    ratios.push(
      `- at c=1, p50: raw-envelope / fastest raw floor ${(env.p50 / rawBest("c1", "p50")).toFixed(2)}×; redmesh / raw-envelope ${(rm.c1.p50 / env.p50).toFixed(2)}×`,
    );
  const peers = ["moleculer", "hydra"].filter((k) => rss[k] !== undefined);
  if (rss.redmesh !== undefined)
    ratios.push(
      `- idle RSS: redmesh ${rss.redmesh.toFixed(1)} MiB vs ${peers.map((k) => `${k} ${(rss[k] as number).toFixed(1)} MiB`).join(", ")}`,
    );
  const mol = results.moleculer?.c64?.rps;
  if (mol) ratios.push(`- target ≥ 4× Moleculer at c=64: ${((rm.c64?.rps ?? 0) / mol).toFixed(2)}×`);
  // The same ratios in every round, those that were measured.
  const roundRatios = [
    [
      "p50 at c=1 over the fastest raw floor",
      byRound(
        (r) =>
          (r("redmesh")?.c1?.p50 ?? Number.NaN) /
          fastest("p50", [r("raw-node-redis")?.c1, r("raw-ioredis")?.c1]),
      ),
    ],
    [
      "p50 at c=1 over raw-envelope",
      byRound((r) => (r("redmesh")?.c1?.p50 ?? Number.NaN) / (r("raw-envelope")?.c1?.p50 ?? Number.NaN)),
    ],
    [
      "req/s at c=64 over Moleculer",
      byRound((r) => (r("redmesh")?.c64?.rps ?? Number.NaN) / (r("moleculer")?.c64?.rps ?? Number.NaN)),
    ],
  ] as const;
  const shown = roundRatios
    .filter(([, xs]) => xs.length > 1 && xs.some(Number.isFinite))
    .map(
      ([what, xs]) => `${what} ${xs.map((x) => (Number.isFinite(x) ? `${x.toFixed(2)}×` : "–")).join(", ")}`,
    );
  if (shown.length > 0) ratios.push(`- the same ratios round by round: ${shown.join("; ")}`);
}
const version = (name: string) => {
  try {
    return JSON.parse(readFileSync(`node_modules/${name}/package.json`, "utf8")).version as string;
  } catch {
    return "?";
  }
};
const redisVersion =
  execFileSync("redis-server", ["--version"])
    .toString()
    .match(/v=(\S+)/)?.[1] ?? "?";
const header = `${quick ? "Quick run. " : ""}Machine: ${cpus().length} × ${cpus()[0]?.model ?? "?"}, Node ${process.version}, redis-server ${redisVersion}; moleculer ${version("moleculer")}, hydra ${version("hydra")}, @redis/client ${version("@redis/client")}, ioredis ${version("ioredis")}. ${plan.warmupMs / 1000} s of unmeasured calls per process, then ${plan.ms / 1000} s per cell after a short warm-up; median of ${rounds} interleaved round(s) per cell (fresh processes every round); echo of \`{"a":1,"s":"hello"}\`; caller and callee in separate processes, one redis-server.`;
const notes = [
  "How to read it:",
  "- c=N: closed loop, N requests in flight; req/s and latency percentiles over the cell after a warm-up.",
  `- warm-up: each caller first makes ${plan.warmupMs / 1000} s of unmeasured calls (¾ at c=1, ¼ at c=64), the same for every system, so the cells measure services that have run a while; redmesh's first seconds at c=1 are up to 2–3× slower while V8 optimises its hot path.`,
  `- fixed: open loop, ${plan.rate.toLocaleString("en-US")} arrivals/s spread evenly (latency counted from the scheduled time), where batches are small; a system that cannot keep up shows it in p50/p99.`,
  "- CPU µs/call: user + system CPU of the caller, the callee and redis-server during the c=64 cell, divided by the calls completed (from /proc; robust to noisy neighbours, unlike req/s).",
  "- idle RSS: one service process per framework (plain node, compiled redmesh from dist/), 3 s after start, registered and listening.",
  "- raw-node-redis, raw-ioredis: two processes ping-ponging over PUBLISH/SUBSCRIBE with no framework (node-redis with commandOptions.timeout 0, and ioredis); the callee sends back what it got without parsing it. The fastest of the two is the raw floor of the targets.",
  "- raw-envelope: the same ping-pong over node-redis, but with the least any RPC with a JSON envelope does: the callee parses the request (`to`, `frm`, `mid`, `dl`, `bdy`) and answers with a new JSON reply matched by `rmid`. Not a floor of the targets; it tells the cost of a JSON envelope from the cost of redmesh's own work.",
  "- rounds: every round starts fresh processes for each system in turn; each cell shows its round with the median req/s (as the targets were set: medians of 3). The machine's speed drifts by 15 % and more within minutes, so the two target ratios (and redmesh over raw-envelope) are also given round by round.",
  "- c=1 on a shared VM: single rounds of one run have put redmesh anywhere from 0.95× to 1.49× the raw floor; `npm run bench -- rpc-c1` measures c=1 with the systems interleaved in short bursts, so the drift hits them all alike.",
].join("\n");
const table = `${header}\n\n${rows.join("\n")}\n\n${ratios.join("\n")}\n\n${notes}\n`;
console.log(`\nRPC benchmark (npm run bench -- rpc${quick ? " --quick" : ""})\n\n${table}`);

if (!only) {
  const file = "docs/benchmarks.md";
  const section = `## RPC\n\nCommand: \`npm run bench -- rpc${quick ? " --quick" : ""}\` (${new Date().toISOString().slice(0, 10)}).\n\n${table}`;
  let text = existsSync(file) ? readFileSync(file, "utf8") : "# Benchmarks\n";
  const re = /## RPC\n[\s\S]*?(?=\n## |$)/;
  text = re.test(text) ? text.replace(re, section) : `${text.trimEnd()}\n\n${section}`;
  writeFileSync(file, text);
}
process.exit(0);
