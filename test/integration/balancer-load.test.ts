import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  createBalancer,
  createKeys,
  createRedisConnection,
  LoadTracker,
  type Service,
  StateError,
} from "../../src/index.js";
import { randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";
import { useServiceHarness } from "../helpers/services.js";

/** MGET calls the server has seen (only the load tracker sends MGET). */
async function mgets(redis: TestRedis): Promise<number> {
  const info = await redis.cli("INFO", "commandstats");
  return Number(/cmdstat_mget:calls=(\d+)/.exec(info)?.[1] ?? 0);
}

describe("balancer: LoadTracker on real health snapshots", () => {
  const h = useServiceHarness({ defaults: { healthIntervalMs: 100, stopGraceMs: 3000 } });
  const svc = h.svc;
  let redis: TestRedis;
  before(() => {
    redis = h.redis;
  });

  test("reads in-flight and status with one MGET per refresh; least-outstanding avoids the busy and draining ones", async () => {
    const ns = randomNamespace();
    const caller = svc("caller", ns);
    const workers = [svc("worker", ns), svc("worker", ns), svc("worker", ns)];
    await Promise.all([caller, ...workers].map((s) => s.start()));
    const [busy, idle, leaving] = workers as [Service, Service, Service];
    const ends = [busy.beginWork(), busy.beginWork(), busy.beginWork()];
    await busy.writeHealth();

    const tracker = new LoadTracker({ redis: caller.redis, keys: caller.keys, refreshMs: 200 });
    await assert.rejects(tracker.refresh("worker", []), StateError, "not started yet");
    tracker.start();
    const candidates = await waitFor(async () => {
      const list = await caller.registry.instances("worker");
      return list.length === 3 ? list : undefined;
    });
    const m0 = await mgets(redis);
    await tracker.refresh(
      "worker",
      candidates.map((c) => c.id),
    );
    assert.equal((await mgets(redis)) - m0, 1, "one MGET for three instances");
    assert.equal(tracker.get("worker", busy.instanceId)?.inFlight, 3);
    assert.equal(tracker.get("worker", idle.instanceId)?.inFlight, 0);
    assert.equal(tracker.get("worker", idle.instanceId)?.status, "ok");
    assert.ok((tracker.get("worker", idle.instanceId)?.lagMs ?? -1) >= 0);

    const b = createBalancer({ strategy: "least-outstanding", loadTracker: tracker, seed: 4 });
    const unwatch = b.watch(caller.registry.events);
    b.onStart("worker", leaving.instanceId);
    b.onEnd("worker", leaving.instanceId, { ok: true, latencyMs: 1 });
    assert.ok(b.stats().instances[leaving.instanceId]);
    const m1 = await mgets(redis);
    const picked = new Map<string, number>();
    for (let i = 0; i < 3000; i++) {
      const p = b.pick(candidates, { service: "worker" })!;
      picked.set(p.id, (picked.get(p.id) ?? 0) + 1);
    }
    assert.equal(picked.get(busy.instanceId), undefined, "the busy instance loses every pairing");
    assert.ok((picked.get(idle.instanceId) ?? 0) > 1000);
    // 3000 picks in one turn: at most one refresh went out (rate limit + one in flight at a time).
    await sleep(50);
    assert.ok((await mgets(redis)) - m1 <= 1, "picks do not flood Redis with MGETs");

    // The leaving instance drains (its stop() waits for its in-flight work): its snapshot says so and
    // it gets no new work, even though the candidate list we pass still shows it as ok.
    const leaveWork = leaving.beginWork();
    const stopping = leaving.stop();
    await waitFor(async () => {
      await tracker.refresh(
        "worker",
        candidates.map((c) => c.id),
      );
      return tracker.get("worker", leaving.instanceId)?.status === "draining";
    });
    for (let i = 0; i < 500; i++) {
      const p = b.pick(candidates, { service: "worker" })!;
      assert.notEqual(p.id, leaving.instanceId);
    }
    leaveWork();
    await stopping;
    await waitFor(() => b.stats().instances[leaving.instanceId] === undefined, {
      what: "the balancer to forget the instance that left (discovery leave event)",
    });
    unwatch();

    // Refreshing with the live instances forgets the one that left.
    for (const e of ends) e();
    const live = await waitFor(async () => {
      const list = await caller.registry.instances("worker");
      return list.length === 2 ? list : undefined;
    });
    await tracker.refresh(
      "worker",
      live.map((c) => c.id),
    );
    assert.equal(tracker.get("worker", leaving.instanceId), undefined);
    assert.equal(tracker.stats().instances, 2);
    await busy.writeHealth();
    await tracker.refresh(
      "worker",
      live.map((c) => c.id),
    );
    assert.equal(tracker.get("worker", busy.instanceId)?.inFlight, 0, "figures follow the snapshots");

    await tracker.stop();
    assert.equal(tracker.stats().instances, 0);
    const m2 = await mgets(redis);
    for (let i = 0; i < 100; i++) b.pick(live, { service: "worker" });
    await sleep(20);
    assert.equal(await mgets(redis), m2, "a stopped tracker sends nothing");
  });

  test("missing or garbage snapshots give no figures; Redis down keeps the old figures and never rejects", async () => {
    const own = await startRedis();
    const conn = createRedisConnection({ redis: own.url });
    try {
      await conn.connect({ timeoutMs: 2000 });
      const keys = createKeys({ namespace: randomNamespace() });
      const a = "a".repeat(32);
      const b2 = "b".repeat(32);
      const c = "c".repeat(32);
      await conn.command(["SET", keys.health("w", a), JSON.stringify({ inFlight: 7, status: "degraded" })]);
      await conn.command(["SET", keys.health("w", b2), "{not json"]);
      const tracker = new LoadTracker({ redis: conn, keys, refreshMs: 0 });
      tracker.start();
      await tracker.refresh("w", [a, b2, c]);
      assert.deepEqual(
        { ...tracker.get("w", a), readAt: 0 },
        { inFlight: 7, lagMs: 0, status: "degraded", readAt: 0 },
      );
      assert.equal(tracker.get("w", b2), undefined);
      assert.equal(tracker.get("w", c), undefined);
      assert.equal(tracker.stats().missing, 2);
      await own.kill();
      await tracker.refresh("w", [a]);
      assert.equal(tracker.stats().refreshErrors, 1);
      assert.equal(tracker.get("w", a)?.inFlight, 7, "old figures kept while Redis is away");
      await tracker.stop();
    } finally {
      await conn.close();
      await own.stop();
    }
  });
});
