import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  createConfigClient,
  createKeys,
  createRedisConnection,
  type LogEntry,
  type RedisHandle,
} from "../../src/index.js";
import { tailLogs } from "../../src/log/index.js";
import { type LogConfigChild, startLogConfigChild } from "../helpers/logconfig-child.js";
import { randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

// Three instances of two services, each in its own process, as in production.
describe("log and config across processes", () => {
  let redis: TestRedis;
  let conn: RedisHandle;
  const ns = randomNamespace();
  let kids: LogConfigChild[] = [];

  before(async () => {
    redis = await startRedis();
    conn = createRedisConnection({ redis: redis.url });
    await conn.connect();
    kids = await Promise.all([
      startLogConfigChild(redis.url, ns, "orders"),
      startLogConfigChild(redis.url, ns, "orders"),
      startLogConfigChild(redis.url, ns, "billing"),
    ]);
  });
  after(async () => {
    await Promise.all(kids.map((k) => k.stop()));
    await conn?.close();
    await redis?.stop();
  });

  test("entries of 3 processes (2 services) are tailed in the order they were written", async () => {
    const keys = createKeys({ namespace: ns });
    const ac = new AbortController();
    const it = tailLogs(conn, keys, { services: ["orders", "billing"], follow: true, signal: ac.signal });
    const firstP = it.next();
    await new Promise((r) => setTimeout(r, 100));
    for (let i = 0; i < 24; i++)
      await (kids[i % 3] as LogConfigChild).log(`step ${i}`, i % 4 === 0 ? "warn" : "info");
    const got: LogEntry[] = [(await firstP).value as LogEntry];
    for await (const e of it) {
      got.push(e);
      if (got.length === 24) break;
    }
    ac.abort();
    assert.deepEqual(
      got.map((e) => e.msg),
      Array.from({ length: 24 }, (_, i) => `step ${i}`),
    );
    assert.deepEqual(
      got.map((e) => e.instance),
      Array.from({ length: 24 }, (_, i) => (kids[i % 3] as LogConfigChild).iid),
    );
    // Level filter on the merged history.
    const warns: LogEntry[] = [];
    for await (const e of tailLogs(conn, keys, { services: ["orders", "billing"], level: "warn" }))
      warns.push(e);
    assert.deepEqual(
      warns.map((e) => e.msg),
      ["step 0", "step 4", "step 8", "step 12", "step 16", "step 20"],
    );
  });

  test("config set → each of the processes sees change within 100 ms", async () => {
    const keys = createKeys({ namespace: ns });
    const orders = createConfigClient({ redis: conn, keys, service: "orders" });
    const billing = createConfigClient({ redis: conn, keys, service: "billing" });
    for (let round = 1; round <= 3; round++) {
      const t0 = performance.timeOrigin + performance.now();
      const { version } = await orders.set({ v: round });
      await waitFor(() => kids.slice(0, 2).every((k) => k.changes.some((c) => c.version === version)), {
        timeoutMs: 2000,
        what: "orders instances changed",
      });
      for (const k of kids.slice(0, 2)) {
        const c = k.changes.find((x) => x.version === version);
        assert.deepEqual(c?.value, { v: round });
        assert.ok((c?.at ?? Infinity) - t0 < 100, `change seen after ${((c?.at ?? 0) - t0).toFixed(1)} ms`);
      }
    }
    // The other service's instance is not disturbed; its own config is separate.
    assert.equal(kids[2]?.changes.length, 0);
    const t0 = performance.timeOrigin + performance.now();
    await billing.set({ v: 42 });
    await waitFor(() => kids[2]?.changes.length === 1, { timeoutMs: 2000, what: "billing instance changed" });
    assert.ok((kids[2]?.changes[0]?.at ?? Infinity) - t0 < 100);
    assert.equal(kids[0]?.changes.length, 3);
  });
});
