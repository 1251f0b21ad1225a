import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createService, isRedmeshError, type Service, ValidationError } from "../../src/index.js";
import { randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

describe("service ↔ balancer wiring", () => {
  let redis: TestRedis;
  const running: Service[] = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await Promise.all(running.map((s) => s.stop()));
    await redis.stop();
  });

  async function mesh(ns: string, callerOptions: Parameters<typeof createService>[0]["balancer"]) {
    const callees = [0, 1, 2].map(() => createService({ name: "worker", namespace: ns, redis: redis.url }));
    for (const c of callees) c.handle("who", () => c.instanceId);
    const caller = createService({
      name: "caller",
      namespace: ns,
      redis: redis.url,
      balancer: callerOptions,
    });
    running.push(...callees, caller);
    await Promise.all([...callees, caller].map((s) => s.start()));
    await waitFor(async () => (await caller.registry.instances("worker")).length === 3);
    return { callees, caller };
  }

  test("round-robin through createService({ balancer }) spreads calls exactly", async () => {
    const { callees, caller } = await mesh(randomNamespace("bal"), "round-robin");
    const counts = new Map<string, number>();
    for (let i = 0; i < 30; i++) {
      const who = (await caller.call("worker", "who", {})) as string;
      counts.set(who, (counts.get(who) ?? 0) + 1);
    }
    assert.deepEqual([...counts.values()], [10, 10, 10]);
    assert.deepEqual(new Set(counts.keys()), new Set(callees.map((c) => c.instanceId)));
    const stats = caller.balancer?.stats();
    assert.equal(stats?.strategy, "round-robin");
    assert.ok((stats?.picks ?? 0) >= 30);
    for (const c of callees)
      assert.equal(stats?.instances[c.instanceId]?.outstanding, 0, "every onStart got its onEnd");
  });

  test("the default is least-outstanding with breakers; a stopped instance is forgotten", async () => {
    const { callees, caller } = await mesh(randomNamespace("bal"), undefined);
    assert.equal(caller.balancer?.stats().strategy, "least-outstanding");
    await Promise.all(Array.from({ length: 60 }, () => caller.call("worker", "who", {})));
    const gone = callees[0] as Service;
    await gone.stop();
    await waitFor(() => caller.balancer?.stats().instances[gone.instanceId] === undefined, {
      what: "the balancer to forget the stopped instance",
    });
    for (let i = 0; i < 20; i++) assert.notEqual(await caller.call("worker", "who", {}), gone.instanceId);
  });

  test("affinity: one key sticks to one instance", async () => {
    const { caller } = await mesh(randomNamespace("bal"), { strategy: "affinity" });
    const first = await caller.call("worker", "who", {}, { key: "order-42" });
    for (let i = 0; i < 10; i++)
      assert.equal(await caller.call("worker", "who", {}, { key: "order-42" }), first);
  });

  test("picker and balancer together are rejected; a bad strategy is a typed error", () => {
    assert.throws(
      () =>
        createService({
          name: "x",
          redis: redis.url,
          balancer: "random",
          picker: { pick: (c) => c[0] },
        }),
      (e) => e instanceof ValidationError && isRedmeshError(e, "ERR_INVALID_OPTIONS"),
    );
    assert.throws(
      // @ts-expect-error: not a strategy
      () => createService({ name: "x", redis: redis.url, balancer: "fastest" }),
      (e) => isRedmeshError(e),
    );
  });
});
