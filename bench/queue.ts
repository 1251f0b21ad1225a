/**
 * Queue throughput (`npm run bench -- queue [jobs] [concurrency] [rounds]`), side by side in one run
 * against one throwaway redis-server: enqueue N small jobs from this process, then drain them with one
 * worker process (concurrency C), for
 *  - redmesh (batched Lua claim + ack, leases, retries, dead letters: the guarantees of docs/queues.md),
 *  - BullMQ 6.7 (ioredis), removeOnComplete,
 *  - Hydra 1.9 queueMessage / getQueuedMessage / markQueueMessage (no leases, no retries, no reaper),
 *  - a raw floor: LPUSH to enqueue, LMOVE + LREM per job (auto-pipelined), no framework.
 * Each system runs once per round (order rotated); the median of the rounds is reported.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { Queue as BullQueue } from "bullmq";
import { createKeys, createQueue, RedisConnection } from "../src/index.js";
import { startRedis } from "../test/helpers/redis-server.js";

const N = Number(process.argv[2] ?? 20_000);
const C = Number(process.argv[3] ?? 50);
const ROUNDS = Number(process.argv[4] ?? 5);
const SYSTEMS = ["redmesh", "bullmq", "hydra", "raw"] as const;
type System = (typeof SYSTEMS)[number];

const redis = await startRedis();
const conn = new RedisConnection({ redis: redis.url });
await conn.connect();
const require = createRequire(import.meta.url);
const hydra = require("hydra") as {
  init(c: unknown): Promise<unknown>;
  queueMessage(m: unknown): Promise<unknown>;
  shutdown(): Promise<unknown>;
};
await hydra.init({
  hydra: { serviceName: "hproducer", serviceIP: "127.0.0.1", servicePort: 0, redis: { url: redis.url } },
});

async function startWorker(
  system: System,
  ns: string,
): Promise<{ proc: ChildProcess; result: Promise<{ ms: number; cpuUs: number }> }> {
  const proc = spawn(
    process.execPath,
    [
      "--import",
      "tsx",
      new URL("./_queue-worker.ts", import.meta.url).pathname,
      system,
      redis.url,
      ns,
      String(N),
      String(C),
    ],
    { stdio: ["pipe", "pipe", "inherit"] },
  );
  const rl = createInterface({ input: proc.stdout! });
  let ready: () => void = () => {};
  const readyP = new Promise<void>((r) => {
    ready = r;
  });
  const result = new Promise<{ ms: number; cpuUs: number }>((resolve, reject) => {
    rl.on("line", (line) => {
      if (line === "ready") ready();
      else if (line.startsWith("{")) resolve(JSON.parse(line) as { ms: number; cpuUs: number });
    });
    proc.once("exit", (code) => reject(new Error(`${system} worker exited with ${code}`)));
  });
  result.catch(() => undefined);
  await readyP;
  return { proc, result };
}

async function enqueue(system: System, ns: string): Promise<number> {
  const t0 = performance.now();
  const CH = 1000;
  if (system === "redmesh") {
    const q = createQueue<{ i: number }>({
      redis: conn,
      keys: createKeys({ namespace: ns }),
      service: "bench",
    });
    for (let i = 0; i < N; i += CH) {
      await q.addBulk(Array.from({ length: Math.min(CH, N - i) }, (_, j) => ({ body: { i: i + j } })));
    }
  } else if (system === "raw") {
    const pending = createKeys({ namespace: ns }).queue("bench", "raw", "pending");
    for (let i = 0; i < N; i += CH) {
      const batch = Array.from({ length: Math.min(CH, N - i) }, (_, j) => JSON.stringify({ i: i + j }));
      await conn.command(["LPUSH", pending, ...batch]);
    }
  } else if (system === "hydra") {
    // Hydra has no bulk add: CH queueMessage calls in flight at a time.
    for (let i = 0; i < N; i += CH) {
      await Promise.all(
        Array.from({ length: Math.min(CH, N - i) }, (_, j) =>
          hydra.queueMessage({ to: "hworker:/", from: "hproducer:/", body: { i: i + j } }),
        ),
      );
    }
  } else {
    const u = new URL(redis.url);
    const q = new BullQueue("bench", { connection: { host: u.hostname, port: Number(u.port) }, prefix: ns });
    for (let i = 0; i < N; i += CH) {
      await q.addBulk(
        Array.from({ length: Math.min(CH, N - i) }, (_, j) => ({
          name: "job",
          data: { i: i + j },
          opts: { removeOnComplete: true },
        })),
      );
    }
    await q.close();
  }
  return performance.now() - t0;
}

interface Sample {
  enq: number[];
  drain: number[];
  workerCpu: number[];
  redisCpu: number[];
}
const results: Record<System, Sample> = {
  redmesh: { enq: [], drain: [], workerCpu: [], redisCpu: [] },
  bullmq: { enq: [], drain: [], workerCpu: [], redisCpu: [] },
  hydra: { enq: [], drain: [], workerCpu: [], redisCpu: [] },
  raw: { enq: [], drain: [], workerCpu: [], redisCpu: [] },
};
/** Per-round ratios redmesh ÷ system (paired: the same round, minutes apart at most). */
const ratios: Record<System, number[]> = { redmesh: [], bullmq: [], hydra: [], raw: [] };
/** Redis' own CPU time (user + sys, µs), from INFO cpu. */
async function redisCpuUs(): Promise<number> {
  const info = String(await conn.command(["INFO", "cpu"]));
  const get = (k: string) => Number(new RegExp(`${k}:([0-9.]+)`).exec(info)?.[1] ?? 0);
  return (get("used_cpu_user") + get("used_cpu_sys")) * 1e6;
}
try {
  for (let round = 0; round < ROUNDS; round++) {
    const roundDrain: Partial<Record<System, number>> = {};
    const order = SYSTEMS.map((_, i) => SYSTEMS[(i + round) % SYSTEMS.length]!);
    for (const system of order) {
      await conn.command(["FLUSHALL"]);
      const ns = `b${round}${system}`;
      const enqMs = await enqueue(system, ns);
      const w = await startWorker(system, ns);
      const r0 = await redisCpuUs();
      w.proc.stdin!.write("go\n");
      const { ms, cpuUs } = await w.result;
      results[system].redisCpu.push(((await redisCpuUs()) - r0) / N);
      results[system].workerCpu.push(cpuUs / N);
      await new Promise((r) => w.proc.once("exit", r));
      results[system].enq.push(N / (enqMs / 1000));
      results[system].drain.push(N / (ms / 1000));
      roundDrain[system] = N / (ms / 1000);
      console.error(
        `round ${round + 1} ${system}: enqueue ${(N / (enqMs / 1000)).toFixed(0)}/s, drain ${(N / (ms / 1000)).toFixed(0)}/s`,
      );
    }
    for (const sys of SYSTEMS) ratios[sys].push((roundDrain.redmesh ?? 0) / (roundDrain[sys] ?? 1));
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? 0;
  console.log(
    `\nQueue throughput: ${N} small jobs enqueued, then drained by one worker process (concurrency ${C}); median of ${ROUNDS} rounds`,
  );
  console.log(
    "system    enqueue jobs/s   processed jobs/s   redmesh ÷ system (paired)   worker CPU µs/job   Redis CPU µs/job",
  );
  for (const s of SYSTEMS) {
    const r = results[s];
    console.log(
      `${s.padEnd(9)} ${med(r.enq).toFixed(0).padStart(14)}   ${med(r.drain).toFixed(0).padStart(16)}   ${med(ratios[s]).toFixed(2).padStart(25)}   ${med(r.workerCpu).toFixed(1).padStart(17)}   ${med(r.redisCpu).toFixed(1).padStart(16)}`,
    );
  }
} finally {
  await hydra.shutdown().catch(() => undefined);
  await conn.close();
  await redis.stop();
}
process.exit(0);
