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
const ROUNDS = Number(process.argv[4] ?? 3);
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
): Promise<{ proc: ChildProcess; result: Promise<{ ms: number }> }> {
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
  const result = new Promise<{ ms: number }>((resolve, reject) => {
    rl.on("line", (line) => {
      if (line === "ready") ready();
      else if (line.startsWith("{")) resolve(JSON.parse(line) as { ms: number });
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

const results: Record<System, { enq: number[]; drain: number[] }> = {
  redmesh: { enq: [], drain: [] },
  bullmq: { enq: [], drain: [] },
  hydra: { enq: [], drain: [] },
  raw: { enq: [], drain: [] },
};
try {
  for (let round = 0; round < ROUNDS; round++) {
    const order = SYSTEMS.map((_, i) => SYSTEMS[(i + round) % SYSTEMS.length]!);
    for (const system of order) {
      await conn.command(["FLUSHALL"]);
      const ns = `b${round}${system}`;
      const enqMs = await enqueue(system, ns);
      const w = await startWorker(system, ns);
      w.proc.stdin!.write("go\n");
      const { ms } = await w.result;
      await new Promise((r) => w.proc.once("exit", r));
      results[system].enq.push(N / (enqMs / 1000));
      results[system].drain.push(N / (ms / 1000));
      console.error(
        `round ${round + 1} ${system}: enqueue ${(N / (enqMs / 1000)).toFixed(0)}/s, drain ${(N / (ms / 1000)).toFixed(0)}/s`,
      );
    }
  }
  const med = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)] ?? 0;
  const base = med(results.redmesh.drain);
  console.log(
    `\nQueue throughput: ${N} small jobs, one worker process, concurrency ${C}, median of ${ROUNDS} rounds`,
  );
  console.log("system    enqueue jobs/s   processed jobs/s   redmesh ÷ system");
  for (const s of SYSTEMS) {
    const d = med(results[s].drain);
    console.log(
      `${s.padEnd(9)} ${med(results[s].enq).toFixed(0).padStart(14)}   ${d.toFixed(0).padStart(16)}   ${(base / d).toFixed(2).padStart(16)}`,
    );
  }
} finally {
  await hydra.shutdown().catch(() => undefined);
  await conn.close();
  await redis.stop();
}
process.exit(0);
