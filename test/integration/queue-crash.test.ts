/**
 * Queue fault tests against real Redis: a worker process SIGKILLed mid-run, and Redis itself (AOF,
 * appendfsync always) SIGKILLed and restarted mid-run. Nothing acknowledged may be lost.
 */
import assert from "node:assert/strict";
import { createInterface } from "node:readline";
import { after, afterEach, before, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createQueue, RedisConnection } from "../../src/index.js";
import { type Child, startFixture } from "../helpers/child.js";
import { randomNamespace, waitFor } from "../helpers/redis-server.js";
import { onTopology, standaloneOnly, startTopology, type TestTopology } from "../helpers/topology.js";

interface Hello {
  iid: string;
  pid: number;
}

/** Jobs reported per worker instance id. */
const perWorker = new Map<string, number>();

/** Start a queue-worker fixture and count the job numbers it reports. */
async function startWorker(
  redis: TestTopology,
  ns: string,
  seen: Map<number, number>,
  opts: { concurrency: number; leaseMs: number; delayMs: number },
): Promise<Child<Hello>> {
  const child = await startFixture<Hello>("queue-worker", [
    redis.url,
    ns,
    "crunch",
    "jobs",
    String(opts.concurrency),
    String(opts.leaseMs),
    String(opts.delayMs),
  ]);
  createInterface({ input: child.proc.stdout! }).on("line", (line) => {
    const n = Number(line);
    if (!Number.isInteger(n)) return;
    seen.set(n, (seen.get(n) ?? 0) + 1);
    perWorker.set(child.hello.iid, (perWorker.get(child.hello.iid) ?? 0) + 1);
  });
  child.proc.stdin!.write("go\n");
  return child;
}

/** The file's Redis, of the matrix topology (a standalone one keeps an AOF, fsynced at every write). */
let redis: TestTopology;
before(async () => {
  redis = await startTopology(undefined, {
    standalone: { persistence: true, args: ["--appendfsync", "always"] },
  });
});
afterEach(async () => {
  await redis.checkInvariants();
});
after(async () => {
  await redis?.stop();
});

test(
  onTopology(
    "10,000 jobs, 3 worker processes, one SIGKILLed mid-run: all processed, none lost, duplicates ≤ its in-flight",
  ),
  async (t) => {
    const ns = randomNamespace("qk");
    const conn = await redis.connect();
    const keys = redis.keys(ns);
    const producer = createQueue<{ n: number }>({ redis: conn, keys, service: "crunch", name: "jobs" });
    const N = 10_000;
    const seen = new Map<number, number>();
    const workers: Child<Hello>[] = [];
    try {
      for (let i = 0; i < N; i += 1000) {
        await producer.addBulk(Array.from({ length: 1000 }, (_, j) => ({ body: { n: i + j } })));
      }
      assert.equal((await producer.stats()).pending, N);
      const opts = { concurrency: 20, leaseMs: 1000, delayMs: 1 };
      workers.push(...(await Promise.all([0, 1, 2].map(() => startWorker(redis, ns, seen, opts)))));
      const victim = workers[0]!;
      // The victim must be working when it dies (workers connect at different speeds, on a Cluster more so).
      await waitFor(() => seen.size >= 1500 && (perWorker.get(victim.hello.iid) ?? 0) >= 100, {
        timeoutMs: 20_000,
        what: "1500 jobs processed, 100 of them by the victim",
      });
      await victim.kill();
      const killedAt = seen.size;
      // What the victim held at the moment of death: the most that may run twice.
      const held = Number(
        await redis.cli("LLEN", keys.queueConsumer("crunch", "jobs", "active", victim.hello.iid)),
      );
      assert.ok(seen.size < N, "the kill must happen mid-run");
      await waitFor(() => seen.size === N, { timeoutMs: 20_000, what: "all 10,000 jobs processed" });
      await waitFor(async () => (await producer.stats()).inFlight === 0, {
        timeoutMs: 5000,
        what: "no job in flight",
      });
      const duplicates = [...seen.values()].reduce((s, c) => s + (c - 1), 0);
      const st = await producer.stats();
      assert.equal(st.pending, 0);
      assert.equal(st.dead, 0);
      assert.ok(
        st.requeued >= held,
        `the reaper returned the victim's ${held} jobs (requeued ${st.requeued})`,
      );
      assert.ok(
        duplicates <= held,
        `duplicates (${duplicates}) ≤ jobs in flight in the killed worker (${held})`,
      );
      assert.ok(
        held <= 4 * opts.concurrency + 1,
        `held entries are bounded by 2 × (concurrency + prefetch) + 1 (${held})`,
      );
      for (let n = 0; n < N; n++) assert.ok(seen.has(n), `job ${n} processed`);
      t.diagnostic(
        `killed at ${killedAt} seen; victim held ${held}; requeued ${st.requeued}; duplicates ${duplicates}`,
      );
    } finally {
      await Promise.all(workers.map((w) => w.end()));
      await producer.stop();
      await conn.close();
    }
  },
);

test(
  onTopology(
    "Redis (AOF) SIGKILLed and restarted mid-run: no acknowledged job lost, workers resume by themselves",
  ),
  standaloneOnly("kills and restarts the one server"),
  async (t) => {
    const server = redis.server!;
    const ns = randomNamespace("qr");
    const conn = new RedisConnection({ redis: { url: redis.url, commandTimeoutMs: 1000 } });
    await conn.connect();
    const keys = redis.keys(ns);
    const producer = createQueue<{ n: number }>({ redis: conn, keys, service: "crunch", name: "jobs" });
    const seen = new Map<number, number>();
    const acked = new Set<number>();
    const workers: Child<Hello>[] = [];
    let next = 0;
    let producing = true;
    let addFailures = 0;
    const produce = (async () => {
      while (producing) {
        const batch = Array.from({ length: 50 }, (_, j) => next + j);
        next += 50;
        try {
          await producer.addBulk(batch.map((n) => ({ body: { n } })));
          for (const n of batch) acked.add(n);
        } catch {
          addFailures++; // not acknowledged: the producer knows, nothing is promised for these
          await sleep(20);
        }
        await sleep(5);
      }
    })();
    try {
      const opts = { concurrency: 10, leaseMs: 1000, delayMs: 1 };
      workers.push(...(await Promise.all([0, 1].map(() => startWorker(redis, ns, seen, opts)))));
      await waitFor(() => seen.size >= 500, { timeoutMs: 20_000, what: "500 jobs processed" });
      await server.kill();
      await sleep(300);
      await server.restart();
      const atRestart = seen.size;
      await waitFor(() => seen.size >= atRestart + 500, {
        timeoutMs: 20_000,
        what: "workers resumed after restart",
      });
      producing = false;
      await produce;
      await waitFor(() => [...acked].every((n) => seen.has(n)), {
        timeoutMs: 20_000,
        intervalMs: 50,
        what: "every acknowledged job processed",
      });
      assert.ok(addFailures > 0 || acked.size > 1000, "the producer ran across the outage");
      const missing = [...acked].filter((n) => !seen.has(n));
      t.diagnostic(
        `${acked.size} jobs acknowledged, ${addFailures} add batches failed during the outage, ${seen.size} processed`,
      );
      assert.deepEqual(missing, []);
    } finally {
      producing = false;
      await produce;
      await Promise.all(workers.map((w) => w.end()));
      await producer.stop();
      await conn.close();
    }
  },
);
