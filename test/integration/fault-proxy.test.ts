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
