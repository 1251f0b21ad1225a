import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createRedisConnection, isRedmeshError } from "../../src/index.js";
import { type FaultProxy, startFaultProxy } from "../helpers/fault-proxy.js";
import { startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

describe("fault proxy between redmesh and Redis", () => {
  let redis: TestRedis;
  let proxy: FaultProxy;
  before(async () => {
    redis = await startRedis();
    proxy = await startFaultProxy(redis.port);
  });
  after(async () => {
    await proxy.close();
    await redis.stop();
  });

  test("latency is added in both directions", async () => {
    const c = createRedisConnection({ redis: proxy.url });
    await c.connect();
    proxy.latency(60);
    const t0 = performance.now();
    assert.equal(await c.command(["PING"]), "PONG");
    assert.ok(performance.now() - t0 >= 110, "≈ 2 × 60 ms");
    proxy.latency(0);
    await c.close();
  });

  test("a black-holed connection turns commands into timeouts; traffic resumes in order after it", async () => {
    const c = createRedisConnection({ redis: proxy.url });
    c.on("error", () => undefined);
    await c.connect();
    proxy.blackhole(true);
    await assert.rejects(c.command(["SET", "bh", "1"], { timeoutMs: 200 }), (e) =>
      isRedmeshError(e, "ERR_TIMEOUT"),
    );
    proxy.blackhole(false);
    assert.equal(await c.command(["ECHO", "next"]), "next", "replies stay matched to their commands");
    assert.equal(await c.command(["GET", "bh"]), "1", "the held command reached Redis late, in order");
    await c.close();
  });

  test("a dead-but-open connection is detected and replaced; subscriptions come back", async () => {
    const c = createRedisConnection({ redis: { url: proxy.url, stallTimeoutMs: 600 } });
    const pub = createRedisConnection({ redis: redis.url });
    c.on("error", () => undefined);
    await Promise.all([c.connect(), pub.connect()]);
    const got: string[] = [];
    await c.subscribe("bh-chan", (m) => got.push(m));
    let downs = 0;
    let reconnects = 0;
    c.on("down", () => downs++);
    c.on("ready", ({ reconnect }) => reconnect && reconnects++);
    try {
      proxy.blackhole(true, "open");
      const t0 = performance.now();
      await assert.rejects(c.command(["SET", "dead", "1"], { timeoutMs: 800 }), (e) =>
        isRedmeshError(e, "ERR_TIMEOUT"),
      );
      await waitFor(() => reconnects > 0, { timeoutMs: 3000, what: "the command socket replaced" });
      assert.equal(downs, 1);
      assert.equal(await c.command(["ECHO", "alive"]), "alive");
      // The subscriber socket is frozen too: its PING probe finds out and it resubscribes on a new one.
      await waitFor(
        async () => {
          await pub.publish("bh-chan", "hello");
          return got.includes("hello");
        },
        { timeoutMs: 4000, intervalMs: 100, what: "a message through the new subscriber" },
      );
      assert.ok(c.recycledConnections >= 2, "both sockets were replaced");
      assert.ok(performance.now() - t0 < 4000);
    } finally {
      proxy.resetAll(); // release the frozen pair
      c.destroy();
      await pub.close();
    }
  });

  test("resetting every connection: the connection reconnects by itself", async () => {
    const c = createRedisConnection({ redis: proxy.url });
    c.on("error", () => undefined);
    await c.connect();
    const before = proxy.accepted;
    proxy.resetAll();
    await waitFor(
      async () => {
        try {
          return (await c.command(["PING"], { timeoutMs: 200 })) === "PONG";
        } catch {
          return false;
        }
      },
      { timeoutMs: 3000 },
    );
    assert.ok(proxy.accepted > before, "a new TCP connection was made");
    await c.close();
  });

  test("cut after N bytes: the command fails typed, the next one works on a new connection", async () => {
    const c = createRedisConnection({ redis: proxy.url });
    c.on("error", () => undefined);
    await c.connect();
    proxy.cutAfter(200);
    await assert.rejects(c.command(["SET", "big", "x".repeat(1000)], { timeoutMs: 1000 }), (e) =>
      isRedmeshError(e),
    );
    proxy.cutAfter(undefined);
    await waitFor(
      async () => {
        try {
          return (await c.command(["PING"], { timeoutMs: 200 })) === "PONG";
        } catch {
          return false;
        }
      },
      { timeoutMs: 3000 },
    );
    await c.close();
  });
});
