import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  AbortError,
  abortableSleep,
  BulkheadFullError,
  CircuitOpenError,
  createBulkhead,
  createRetryPolicy,
  isRetrySafe,
  MessageError,
  NoInstanceError,
  RedmeshError,
  RemoteError,
  seededRandom,
  TimeoutError,
  ValidationError,
} from "../../src/index.js";

/** Live timers of this process (a wait that was cancelled must not leave its timer behind). */
const timers = () => process.getActiveResourcesInfo().filter((r) => r === "Timeout").length;

describe("bulkhead", () => {
  test("limits concurrency, queues up to maxQueued, rejects beyond with BulkheadFullError", async () => {
    const bh = createBulkhead({ maxConcurrent: 2, maxQueued: 1, name: "reserve" });
    const r1 = await bh.acquire();
    const r2 = await bh.acquire();
    assert.equal(bh.tryAcquire(), undefined);
    const order: string[] = [];
    const queued = bh.acquire().then((r) => {
      order.push("queued");
      return r;
    });
    assert.equal(bh.queued, 1);
    await assert.rejects(
      bh.acquire(),
      (e: unknown) =>
        e instanceof BulkheadFullError &&
        e.code === "ERR_BULKHEAD_FULL" &&
        e.retryable &&
        e.data?.name === "reserve" &&
        e.data?.maxConcurrent === 2,
    );
    r1();
    r1(); // idempotent: must not free a second slot
    const r3 = await queued;
    assert.deepEqual(order, ["queued"]);
    assert.equal(bh.active, 2);
    assert.equal(bh.tryAcquire(), undefined);
    r2();
    r3();
    assert.equal(bh.active, 0);
    assert.deepEqual(
      { acquired: bh.stats().acquired, rejected: bh.stats().rejected },
      {
        acquired: 3,
        rejected: 1,
      },
    );
  });

  test("waiters are served FIFO; abort and timeout give their place back", async () => {
    const t0 = timers();
    const bh = createBulkhead({ maxConcurrent: 1, maxQueued: 10 });
    const hold = await bh.acquire();
    const ac = new AbortController();
    const served: number[] = [];
    const w1 = bh.acquire().then((r) => {
      served.push(1);
      return r;
    });
    const w2 = bh.acquire({ signal: ac.signal });
    const w3 = bh.acquire({ timeoutMs: 20 });
    const w4 = bh.acquire().then((r) => {
      served.push(4);
      return r;
    });
    ac.abort(new Error("caller gone"));
    await assert.rejects(w2, AbortError);
    await assert.rejects(w3, TimeoutError);
    assert.equal(bh.queued, 2);
    hold();
    (await w1)();
    (await w4)();
    assert.deepEqual(served, [1, 4]);
    assert.equal(bh.active, 0);
    assert.equal(bh.queued, 0);
    assert.equal(timers(), t0, "no timer left behind");
  });

  test("run() releases the slot however fn ends; maxQueued 0 rejects at once", async () => {
    const bh = createBulkhead({ maxConcurrent: 1 });
    await assert.rejects(
      bh.run(() => {
        throw new Error("boom");
      }),
      /boom/,
    );
    assert.equal(bh.active, 0);
    let release!: () => void;
    const running = bh.run(() => new Promise<void>((r) => (release = r)));
    await assert.rejects(
      bh.run(() => 1),
      BulkheadFullError,
    );
    release();
    await running;
    assert.equal(await bh.run(() => 42), 42);
    assert.throws(() => createBulkhead({ maxConcurrent: 0 }), ValidationError);
    assert.throws(() => createBulkhead({ maxConcurrent: 1, maxQueued: -1 }), ValidationError);
  });

  test("property: active never exceeds maxConcurrent and every granted slot comes back", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 5 }),
        fc.array(fc.nat(5), { maxLength: 40 }),
        async (max, delays) => {
          const bh = createBulkhead({ maxConcurrent: max, maxQueued: 1000 });
          let peak = 0;
          await Promise.all(
            delays.map((d) =>
              bh.run(async () => {
                peak = Math.max(peak, bh.active);
                for (let i = 0; i < d; i++) await Promise.resolve();
              }),
            ),
          );
          assert.ok(peak <= max);
          assert.equal(bh.active, 0);
          assert.equal(bh.queued, 0);
        },
      ),
      { numRuns: 100 },
    );
  });
});

describe("retry policy", () => {
  test("retries not-delivered errors always, other retryable errors only when idempotent", () => {
    const p = createRetryPolicy({ maxAttempts: 3 });
    const noInstance = new NoInstanceError("orders");
    const timeout = new TimeoutError("late");
    const notDelivered = new RedmeshError("ERR_NO_RECEIVER", "publish had no receiver", {
      data: { delivered: false },
    });
    assert.ok(p.shouldRetry(noInstance, { idempotent: false, attempt: 1 }));
    assert.ok(p.shouldRetry(notDelivered, { idempotent: false }));
    assert.ok(p.shouldRetry(new CircuitOpenError("open"), { idempotent: false }));
    assert.ok(!p.shouldRetry(timeout, { idempotent: false }));
    assert.ok(p.shouldRetry(timeout, { idempotent: true }));
    assert.ok(!p.shouldRetry(timeout, { idempotent: true, attempt: 3 }), "out of attempts");
    assert.ok(!p.shouldRetry(new RemoteError("ERR_NOT_FOUND", "nope"), { idempotent: true }));
    assert.ok(!p.shouldRetry(new AbortError(), { idempotent: true }));
    assert.ok(!p.shouldRetry(new MessageError("ERR_INVALID_MESSAGE", "bad"), { idempotent: true }));
    assert.ok(!p.shouldRetry(new Error("plain"), { idempotent: true }), "unknown errors: not safe");
    assert.ok(!isRetrySafe("a string", true));
  });

  test("full jitter: delays lie in [0, min(max, base·2^(n-1))) and use the whole range", () => {
    const p = createRetryPolicy({ baseDelayMs: 100, maxDelayMs: 1000, random: seededRandom(11) });
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6].map((n) => p.ceiling(n)),
      [100, 200, 400, 800, 1000, 1000],
    );
    for (let n = 1; n <= 6; n++) {
      const ds = Array.from({ length: 500 }, () => p.delay(n));
      assert.ok(ds.every((d) => d >= 0 && d < p.ceiling(n)));
      assert.ok(
        Math.min(...ds) < p.ceiling(n) * 0.05 && Math.max(...ds) > p.ceiling(n) * 0.95,
        `attempt ${n}`,
      );
    }
    assert.throws(() => createRetryPolicy({ maxAttempts: 0 }), ValidationError);
    assert.throws(() => createRetryPolicy({ baseDelayMs: 10, maxDelayMs: 5 }), ValidationError);
  });

  test("run(): retries until success, stops at maxAttempts, never retries unsafe errors", async () => {
    const p = createRetryPolicy({ maxAttempts: 4, baseDelayMs: 1, maxDelayMs: 2 });
    let n = 0;
    const got = await p.run(async (attempt) => {
      n = attempt;
      if (attempt < 3) throw new NoInstanceError("orders");
      return "done";
    });
    assert.equal(got, "done");
    assert.equal(n, 3);
    let calls = 0;
    await assert.rejects(
      p.run(async () => {
        calls++;
        throw new NoInstanceError("orders");
      }),
      NoInstanceError,
    );
    assert.equal(calls, 4);
    calls = 0;
    await assert.rejects(
      p.run(async () => {
        calls++;
        throw new TimeoutError("late");
      }),
      TimeoutError,
    );
    assert.equal(calls, 1, "a timeout may have run: no retry unless idempotent");
    calls = 0;
    await assert.rejects(
      p.run(
        async () => {
          calls++;
          throw new TimeoutError("late");
        },
        { idempotent: true },
      ),
      TimeoutError,
    );
    assert.equal(calls, 4);
  });

  test("run(): abort during the backoff rejects at once with AbortError; a deadline stops retries", async () => {
    const p = createRetryPolicy({ maxAttempts: 10, baseDelayMs: 5000, maxDelayMs: 5000, random: () => 0.99 });
    const ac = new AbortController();
    const t0 = performance.now();
    const run = p.run(
      async () => {
        throw new NoInstanceError("orders");
      },
      { signal: ac.signal, onRetry: () => setImmediate(() => ac.abort()) },
    );
    await assert.rejects(run, AbortError);
    assert.ok(performance.now() - t0 < 1000, "did not sleep 5 s");
    let calls = 0;
    await assert.rejects(
      p.run(
        async () => {
          calls++;
          throw new NoInstanceError("orders");
        },
        { deadline: Date.now() + 1000 },
      ),
      NoInstanceError,
    );
    assert.equal(calls, 1, "the next attempt would start after the deadline");
  });

  test("abortableSleep resolves after the delay, rejects on abort, leaves nothing behind", async () => {
    const t0 = performance.now();
    await abortableSleep(15);
    assert.ok(performance.now() - t0 >= 14);
    const ac = new AbortController();
    ac.abort();
    await assert.rejects(abortableSleep(10, ac.signal), AbortError);
    const before = timers();
    const ac2 = new AbortController();
    const s = abortableSleep(10_000, ac2.signal);
    assert.equal(timers(), before + 1);
    ac2.abort(new Error("stop"));
    await assert.rejects(s, (e: unknown) => e instanceof AbortError && (e.cause as Error).message === "stop");
    assert.equal(timers(), before, "the aborted sleep's timer is cleared");
  });
});
