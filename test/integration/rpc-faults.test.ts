import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { ConnectionError, ErrorCode, type InstancePicker, isRedmeshError } from "../../src/index.js";
import { type Child, startFixture } from "../helpers/child.js";
import { randomNamespace, waitFor } from "../helpers/redis-server.js";
import { useServiceHarness } from "../helpers/services.js";
import { onTopology, standaloneOnly, type TestTopology } from "../helpers/topology.js";

describe(onTopology("RPC under faults: callee killed, Redis restarted"), () => {
  const children: Child<unknown>[] = [];
  const h = useServiceHarness({
    matrix: true,
    defaults: { reconcileMs: 200 },
    cleanup: () => Promise.all(children.splice(0).map((c) => c.kill())),
  });
  const svc = h.svc;
  let redis: TestTopology;
  before(() => {
    redis = h.topo;
  });
  const callee = async (ns: string) => {
    const c = await startFixture<{ iid: string; pid: number }>("rpc-callee", [redis.url, ns, "worker"]);
    children.push(c as Child<unknown>);
    return c;
  };
  /** Prefers the child instance while it is not excluded (so the first attempt goes to it). */
  const prefer = (iid: string): InstancePicker => ({
    pick: (cands, ctx) =>
      cands.find((c) => c.id === iid && !ctx.exclude?.has(c.id)) ??
      cands.find((c) => !ctx.exclude?.has(c.id)),
  });

  test("callee SIGKILLed mid-call: typed error within the timeout; idempotent call retried elsewhere", async () => {
    const ns = randomNamespace();
    const child = await callee(ns);
    const a = svc("front", ns, { picker: prefer(child.hello.iid) });
    const local = svc("worker", ns);
    local.handle("slow", async () => ({ pid: -1 }));
    await a.start();
    await local.start();
    await waitFor(async () => (await a.registry.instances("worker")).length === 2, { what: "two workers" });

    // Not idempotent: the caller learns of the loss (presence expiry) before its 4 s timeout.
    const t0 = Date.now();
    const p1 = a.call("worker", "slow", { ms: 10_000 }, { timeout: 4000 });
    const p2 = a.call("worker", "slow", { ms: 10_000 }, { timeout: 4000, idempotent: true });
    await sleep(150);
    await child.kill();
    await assert.rejects(p1, (e: unknown) => {
      assert.ok(
        isRedmeshError(e, ErrorCode.INSTANCE_LOST) || isRedmeshError(e, ErrorCode.TIMEOUT),
        String(e),
      );
      return true;
    });
    assert.ok(Date.now() - t0 < 4300, `settled within the timeout (${Date.now() - t0} ms)`);
    // Idempotent: retried on the surviving instance.
    assert.deepEqual(await p2, { pid: -1 });
    assert.ok(a.stats().rpc.retries >= 1);
    assert.equal(a.stats().rpc.pending, 0);
    // Sends right after the crash: PUBLISH-0 evicts the dead instance; nothing is lost.
    for (let i = 0; i < 5; i++) assert.deepEqual(await a.call("worker", "slow", { ms: 0 }), { pid: -1 });
  });

  test(
    "Redis restarted during traffic: calls fail fast with a typed error, then succeed by themselves",
    standaloneOnly("kills and restarts the one server"),
    async () => {
      const server = h.redis;
      const ns = randomNamespace();
      const a = svc("front", ns);
      const b = svc("back", ns);
      b.handle("echo", (x) => x);
      await a.start();
      await b.start();
      assert.equal(await a.call("back", "echo", 1), 1);
      // Traffic in flight while Redis dies.
      const inflight = Array.from({ length: 50 }, (_, i) =>
        a.call("back", "echo", i, { timeout: 5000 }).catch((e) => e),
      );
      await server.kill();
      const t0 = Date.now();
      const errs: unknown[] = [];
      for (let i = 0; i < 5; i++) {
        const s = Date.now();
        errs.push(await a.call("back", "echo", i, { timeout: 5000 }).catch((e) => e));
        assert.ok(Date.now() - s < 1000, "failed fast, not at the timeout");
        await sleep(20);
      }
      for (const e of errs)
        assert.ok(e instanceof ConnectionError, `typed connection error, got ${String(e)}`);
      for (const r of await Promise.all(inflight)) {
        assert.ok(typeof r === "number" || isRedmeshError(r), `in-flight call ended typed: ${String(r)}`);
      }
      assert.ok(Date.now() - t0 < 3000);
      await server.restart();
      await waitFor(async () => (await a.call("back", "echo", "again", { timeout: 500 })) === "again", {
        timeoutMs: 10_000,
        intervalMs: 100,
        what: "calls to succeed again after the restart",
      });
      assert.equal(a.stats().rpc.pending, 0);
    },
  );
});
