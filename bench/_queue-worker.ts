/**
 * One worker process of the queue benchmark (see bench/queue.ts). Args: <system> <redisUrl> <namespace>
 * <jobs> <concurrency>. Prints "ready" once connected, starts on a line on stdin, and prints one JSON
 * line {ms, processed} once every job is acknowledged (for redmesh, raw and Hydra: removed from the
 * in-progress list; for BullMQ: `completed` fired, i.e. moved to completed and removed).
 */
import { createRequire } from "node:module";
import { setTimeout as sleep } from "node:timers/promises";
import { createKeys, createQueue, RedisConnection } from "../src/index.js";

const [system, url, ns, jobsArg, concArg] = process.argv.slice(2);
if (!system || !url || !ns)
  throw new Error("usage: _queue-worker <system> <redisUrl> <ns> <jobs> <concurrency>");
const N = Number(jobsArg);
const C = Number(concArg);
const cpu0 = { v: process.cpuUsage() };
const cpuUs = () => {
  const c = process.cpuUsage(cpu0.v);
  return c.user + c.system;
};
const out = (o: unknown) => process.stdout.write(`${typeof o === "string" ? o : JSON.stringify(o)}\n`);
const go = () => new Promise<void>((r) => process.stdin.once("data", () => r()));

if (system === "redmesh") {
  const redis = new RedisConnection({ redis: url });
  await redis.connect();
  const keys = createKeys({ namespace: ns });
  const q = createQueue<{ i: number }>({ redis, keys, service: "bench", checkDurability: false });
  let handled = 0;
  out("ready");
  await go();
  const t0 = performance.now();
  cpu0.v = process.cpuUsage();
  q.process(
    async () => {
      handled++;
    },
    { concurrency: C },
  );
  const statsKey = keys.queue("bench", "default", "stats");
  for (;;) {
    if (handled >= N && Number(await redis.command(["HGET", statsKey, "processed"])) >= N) break;
    await sleep(handled >= N ? 1 : 20);
  }
  out({ ms: performance.now() - t0, processed: handled, cpuUs: cpuUs() });
  await q.stop();
  await redis.close();
} else if (system === "raw") {
  // The floor, on ioredis: C LMOVEs in one pipeline, then C LREMs in one pipeline; no leases, no
  // retries, no dead letters, nothing returned if the worker dies.
  const { Redis } = await import("ioredis");
  const u = new URL(url);
  const redis = new Redis({ host: u.hostname, port: Number(u.port) });
  const keys = createKeys({ namespace: ns });
  const pending = keys.queue("bench", "raw", "pending");
  const inprog = keys.queue("bench", "raw", "inprogress");
  let acked = 0;
  out("ready");
  await go();
  const t0 = performance.now();
  cpu0.v = process.cpuUsage();
  for (;;) {
    const claim = redis.pipeline();
    for (let i = 0; i < C; i++) claim.lmove(pending, inprog, "RIGHT", "LEFT");
    const got = ((await claim.exec()) ?? [])
      .map(([, e]) => e)
      .filter((e): e is string => typeof e === "string");
    if (got.length === 0) break;
    const ack = redis.pipeline();
    for (const e of got) {
      JSON.parse(e);
      ack.lrem(inprog, -1, e);
    }
    await ack.exec();
    acked += got.length;
  }
  out({ ms: performance.now() - t0, processed: acked, cpuUs: cpuUs() });
  redis.disconnect();
} else if (system === "hydra") {
  const require = createRequire(import.meta.url);
  const hydra = require("hydra") as {
    init(c: unknown): Promise<unknown>;
    getQueuedMessage(svc: string): Promise<unknown>;
    markQueueMessage(m: unknown, done: boolean, reason?: string): Promise<unknown>;
    shutdown(): Promise<unknown>;
  };
  await hydra.init({
    hydra: { serviceName: "hworker", serviceIP: "127.0.0.1", servicePort: 0, redis: { url } },
  });
  let acked = 0;
  out("ready");
  await go();
  const t0 = performance.now();
  cpu0.v = process.cpuUsage();
  const loop = async () => {
    for (;;) {
      const m = await hydra.getQueuedMessage("hworker");
      if (!m) return;
      await hydra.markQueueMessage(m, true);
      acked++;
    }
  };
  await Promise.all(Array.from({ length: C }, loop));
  out({ ms: performance.now() - t0, processed: acked, cpuUs: cpuUs() });
  await hydra.shutdown();
} else if (system === "bullmq") {
  const { Worker } = await import("bullmq");
  const u = new URL(url);
  const connection = { host: u.hostname, port: Number(u.port) };
  let done = 0;
  let resolveAll: () => void = () => {};
  const all = new Promise<void>((r) => {
    resolveAll = r;
  });
  out("ready");
  await go();
  const t0 = performance.now();
  cpu0.v = process.cpuUsage();
  const worker = new Worker(
    "bench",
    async () => {
      /* no-op job */
    },
    { connection, concurrency: C, prefix: ns, removeOnComplete: { count: 0 } },
  );
  worker.on("completed", () => {
    if (++done >= N) resolveAll();
  });
  await all;
  out({ ms: performance.now() - t0, processed: done, cpuUs: cpuUs() });
  await worker.close();
} else {
  throw new Error(`unknown system ${system}`);
}
process.exit(0);
