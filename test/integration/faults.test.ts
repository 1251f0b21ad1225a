import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { isRedmeshError, readHealth } from "../../src/index.js";
import { startFixture } from "../helpers/child.js";
import { randomNamespace, type TestRedis, waitFor } from "../helpers/redis-server.js";
import { useServiceHarness } from "../helpers/services.js";

describe("fault scenarios with pass criteria (docs/reliability.md)", () => {
  const h = useServiceHarness();
  const svc = h.svc;
  let redis: TestRedis;
  before(() => {
    redis = h.redis;
  });

  test("Redis paused 2 s: the instance reports degraded, and nobody sees it as gone", async () => {
    const ns = randomNamespace();
    const worker = svc("worker", ns, { healthIntervalMs: 300 });
    const watcher = svc("watcher", ns);
    await Promise.all([worker.start(), watcher.start()]);
    await waitFor(async () => (await watcher.registry.instances("worker")).length === 1);
    let left = 0;
    watcher.registry.events.on("leave", () => left++);
    const seen: number[] = [];
    const poll = setInterval(() => {
      watcher.registry.instances("worker").then(
        (l) => seen.push(l.length),
        () => undefined,
      );
    }, 50);
    try {
      await redis.pause(2000);
      await sleep(2600);
    } finally {
      clearInterval(poll);
    }
    assert.equal(left, 0, "no leave event");
    assert.ok(seen.length > 20 && seen.every((n) => n === 1), `instances seen: ${seen.join(",")}`);
    const h = await waitFor(
      async () => {
        const snap = await readHealth(watcher.redis, watcher.keys, "worker", worker.instanceId);
        return snap?.status === "degraded" ? snap : undefined;
      },
      { what: "a degraded health snapshot after the pause" },
    );
    assert.equal(h.checks.redis?.ok, false);
    // And healthy again afterwards.
    await waitFor(
      async () =>
        (await readHealth(watcher.redis, watcher.keys, "worker", worker.instanceId))?.status === "ok",
      {
        what: "ok again",
      },
    );
  });

  test("connection killed every 2 s under RPC load: no call hangs, traffic back within 1 s each time", async (t) => {
    const ns = randomNamespace();
    const callee = svc("callee", ns);
    const caller = svc("caller", ns);
    callee.handle("echo", (x: unknown) => x);
    await Promise.all([callee.start(), caller.start()]);
    await waitFor(async () => (await caller.registry.instances("callee")).length === 1);
    let stop = false;
    let ok = 0;
    let failed = 0;
    let lastOk = performance.now();
    let worstGap = 0;
    const untyped: unknown[] = [];
    const loop = async () => {
      while (!stop) {
        const t0 = performance.now();
        try {
          await caller.call("callee", "echo", 1, { timeout: 1000 });
          const now = performance.now();
          worstGap = Math.max(worstGap, now - lastOk);
          lastOk = now;
          ok++;
        } catch (e) {
          failed++;
          if (!isRedmeshError(e)) untyped.push(e);
          assert.ok(performance.now() - t0 < 1500, "no call outlives its timeout");
          await sleep(20);
        }
      }
    };
    const loops = Array.from({ length: 8 }, loop);
    const kills: number[] = [];
    for (let i = 0; i < 3; i++) {
      await sleep(2000);
      kills.push(
        Number(await redis.cli("CLIENT", "KILL", "TYPE", "normal")) +
          Number(await redis.cli("CLIENT", "KILL", "TYPE", "pubsub")),
      );
    }
    await sleep(1000);
    stop = true;
    await Promise.all(loops);
    assert.ok(
      kills.every((k) => k >= 2),
      `connections killed each time: ${kills.join(",")}`,
    );
    assert.deepEqual(untyped, [], "every failure is a typed error");
    assert.ok(ok > 500, `calls completed: ${ok} (failed ${failed})`);
    t.diagnostic(
      `calls ok ${ok}, failed (typed) ${failed}, longest gap without a success ${worstGap.toFixed(0)} ms`,
    );
    assert.ok(worstGap < 1000, `longest time without a successful call: ${worstGap.toFixed(0)} ms`);
  });

  test("Redis restarted without persistence: services re-register within 2 s, the lost queue data is reported", async (t) => {
    const ns = randomNamespace();
    const logged: string[] = [];
    const logger = {
      level: "info",
      error: (_o: unknown, msg?: string) => logged.push(`error ${msg ?? ""}`),
      warn: (_o: unknown, msg?: string) => logged.push(`warn ${msg ?? ""}`),
      info: () => undefined,
      debug: () => undefined,
      trace: () => undefined,
      fatal: () => undefined,
      child() {
        return this;
      },
    };
    const a = svc("alpha", ns, { logger });
    const b = svc("beta", ns);
    await Promise.all([a.start(), b.start()]);
    const q = a.queue("work");
    const warnings: string[] = [];
    q.on("warning", (w) => warnings.push(w.code));
    await q.add({ n: 1 }, { delay: 60_000 }); // a job that would still be waiting
    await redis.kill();
    await redis.restart();
    const t0 = performance.now();
    await waitFor(
      async () =>
        (await b.registry.instances("alpha")).length === 1 &&
        (await a.registry.instances("beta")).length === 1,
      {
        what: "both services registered again",
        intervalMs: 20,
      },
    );
    const took = performance.now() - t0;
    await waitFor(() => warnings.includes("QUEUE_DATA_LOST"), { what: "the data loss reported" });
    assert.ok(
      logged.some((l) => /^error .*no longer holds queue "alpha\/work"/.test(l)),
      logged.join("\n"),
    );
    t.diagnostic(`re-registered ${took.toFixed(0)} ms after Redis answered again; QUEUE_DATA_LOST reported`);
    assert.ok(took < 2000, `re-registered after ${took.toFixed(0)} ms`);
  });

  test("SIGTERM to a service process: in-flight call answered, presence gone at once", async (t) => {
    const ns = randomNamespace();
    const caller = svc("caller", ns);
    await caller.start();
    const child = await startFixture<{ iid: string }>("service-child", [
      redis.url,
      ns,
      "slowpoke",
      "--sigterm",
    ]);
    try {
      await waitFor(async () => (await caller.registry.instances("slowpoke")).length === 1);
      const pending = caller.call("slowpoke", "slow", 300, { timeout: 3000 });
      await sleep(50);
      const t0 = performance.now();
      child.proc.kill("SIGTERM");
      assert.equal(await pending, "done after 300 ms", "the in-flight call was drained, not dropped");
      await waitFor(async () => (await caller.registry.instances("slowpoke")).length === 0, {
        what: "presence removed",
        timeoutMs: 2000,
      });
      t.diagnostic(
        `presence gone ${(performance.now() - t0).toFixed(0)} ms after SIGTERM (call in flight: 300 ms)`,
      );
      assert.ok(performance.now() - t0 < 1500, "gone well before the presence TTL");
    } finally {
      await child.kill();
    }
  });
});
