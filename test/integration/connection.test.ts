import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ConnectionError, isRedmeshError, RedisReplyError, ValidationError } from "../../src/errors.js";
import { LifeState } from "../../src/lifecycle.js";
import {
  createRedisConnection,
  defineScript,
  type RedisConnection,
  resolveRedisOptions,
} from "../../src/redis/index.js";
import { startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

describe("redis connection layer", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  test("parses URLs, ACL users, db and rediss://", () => {
    const o = resolveRedisOptions("rediss://alice:s%40cret@example.com:6380/3");
    assert.equal(o.host, "example.com");
    assert.equal(o.port, 6380);
    assert.equal(o.username, "alice");
    assert.equal(o.password, "s@cret");
    assert.equal(o.db, 3);
    assert.deepEqual(o.tls, {});
    assert.equal(o.display, "rediss://alice@example.com:6380/3");
    assert.throws(() => resolveRedisOptions("http://x"), ValidationError);
    assert.throws(() => resolveRedisOptions("redis://x/abc"), /invalid database/);
    assert.throws(() => resolveRedisOptions({ cluster: ["redis://a"] }), /createRedisConnection/);
  });

  test("duplicate() keeps every setting (the blocking connection of a queue gets the same watchdog)", () => {
    const c = createRedisConnection({
      redis: {
        url: "redis://u:p@127.0.0.1:1/2",
        connectTimeoutMs: 123,
        maxReconnectDelayMs: 77,
        commandTimeoutMs: 456,
        stallTimeoutMs: 600,
      },
    }) as RedisConnection;
    const d = c.duplicate("blocking");
    const { display: _a, clientName: _b, ...want } = c.options;
    const { display: _c, clientName: _d, ...got } = d.options;
    assert.deepEqual(got, want);
    c.destroy();
    d.destroy();
  });

  test("commands, pipeline, multi, scripts and pub/sub", async () => {
    const c = createRedisConnection({ redis: redis.url, clientName: "t" });
    await c.connect();
    assert.equal(await c.command(["SET", "k", "v"]), "OK");
    assert.equal(await c.command(["GET", "k"]), "v");
    const p = await c.pipeline([
      ["INCR", "n"],
      ["INCR", "n"],
      ["HSET", "k", "f", 1],
    ]);
    assert.equal(p[0], 1);
    assert.equal(p[1], 2);
    assert.ok(p[2] instanceof RedisReplyError, "WRONGTYPE comes back as a typed error in its slot");
    assert.deepEqual(
      await c.multi([
        ["INCR", "m"],
        ["INCR", "m"],
      ]),
      [1, 2],
    );
    const s = defineScript("t", "return redis.call('INCRBY', KEYS[1], ARGV[1])");
    await c.command(["SCRIPT", "FLUSH"]);
    assert.equal(await c.script(s, ["x"], [5]), 5, "NOSCRIPT falls back to EVAL");
    assert.equal(await c.script(s, ["x"], [5]), 10);
    const got: string[] = [];
    await c.subscribe("ch", (m) => got.push(m));
    assert.equal(await c.publish("ch", "hello"), 1);
    await waitFor(() => got.length === 1);
    assert.deepEqual(got, ["hello"]);
    await c.close();
    await c.close();
  });

  test("fails fast with a typed error when Redis is down, and recovers by itself", async () => {
    const c = createRedisConnection({ redis: redis.url });
    const downs: unknown[] = [];
    c.on("down", (e) => downs.push(e));
    await c.connect();
    await redis.kill();
    await waitFor(() => c.status !== "ready");
    await assert.rejects(c.command(["PING"]), (e) => isRedmeshError(e) && e instanceof ConnectionError);
    await redis.restart();
    await waitFor(() => c.isReady, { timeoutMs: 3000 });
    assert.equal(await c.command(["PING"]), "PONG");
    assert.ok(downs.length >= 1);
    await c.close();
  });

  test("the subscriber's socket lost: down until it has subscribed again, PUBLISH fails fast meanwhile", async () => {
    const c = createRedisConnection({ redis: redis.url });
    const events: string[] = [];
    c.on("down", () => events.push("down"));
    c.on("ready", () => events.push("ready"));
    await c.connect();
    const got: string[] = [];
    await c.subscribe("sub-lost", (m) => got.push(m));
    events.length = 0;
    // The command socket stays; the subscriber cannot come back while Redis takes no more clients.
    await c.command(["CONFIG", "SET", "maxclients", "1"]);
    try {
      await c.command(["CLIENT", "KILL", "TYPE", "pubsub"]);
      await waitFor(() => c.status !== "ready");
      assert.deepEqual(events, ["down"]);
      // A request published now could not get its reply: typed and immediate, not a timeout later.
      await assert.rejects(c.publish("sub-lost", "lost"), (e) => e instanceof ConnectionError);
      assert.equal(await c.command(["PING"]), "PONG", "other commands still work");
    } finally {
      await c.command(["CONFIG", "SET", "maxclients", "10000"]);
    }
    await waitFor(() => c.isReady, { timeoutMs: 3000 });
    assert.deepEqual(events, ["down", "ready"]);
    assert.equal(await c.publish("sub-lost", "back"), 1, "subscribed again before ready");
    await waitFor(() => got.length === 1);
    assert.deepEqual(got, ["back"]);
    await c.close();
  });

  test("a command sent to a frozen Redis still meets its deadline, and the connection recovers", async () => {
    const c = createRedisConnection({ redis: redis.url });
    c.on("error", () => undefined);
    await c.connect();
    redis.freeze();
    try {
      await new Promise((r) => setTimeout(r, 50));
      const t0 = performance.now();
      await assert.rejects(c.command(["PING"], { timeoutMs: 200 }), (e) => isRedmeshError(e, "ERR_TIMEOUT"));
      const took = performance.now() - t0;
      assert.ok(took >= 190 && took < 600, `deadline fired after ${took.toFixed(0)} ms`);
      const piped = await c.pipeline([["PING"], ["PING"]], { timeoutMs: 150 });
      assert.ok(piped.every((r) => isRedmeshError(r, "ERR_TIMEOUT")));
      await assert.rejects(c.multi([["PING"]], { timeoutMs: 150 }), (e) => isRedmeshError(e, "ERR_TIMEOUT"));
    } finally {
      redis.thaw();
    }
    // The late replies are discarded; the next command gets its own answer.
    assert.equal(await c.command(["ECHO", "after"]), "after");
    await c.close();
  });

  test("stop() is close(): one memoised end with close() and destroy(), replies in flight arrive, closed() resolves after", async () => {
    const c = createRedisConnection({ redis: redis.url, clientName: "stop-graceful" });
    assert.equal(c.state, LifeState.IDLE);
    let closedEarly = false;
    const closed = c.closed().then((reason) => {
      closedEarly = c.state !== LifeState.STOPPED;
      return reason;
    });
    const connecting = c.connect();
    assert.equal(c.state, LifeState.STARTING);
    await connecting;
    assert.equal(c.state, LifeState.RUNNING);
    const inFlight = c.command(["ECHO", "late"]);
    const stopping = c.stop();
    assert.equal(c.status, "closed");
    assert.equal(c.state, LifeState.STOPPING);
    assert.equal(c.close(), stopping);
    assert.equal(c.stop({ timeoutMs: 1 }), stopping);
    assert.equal(c[Symbol.asyncDispose](), stopping);
    assert.equal(await inFlight, "late", "a graceful stop waits for the replies in flight");
    await stopping;
    assert.equal(c.state, LifeState.STOPPED);
    assert.equal(await closed, undefined, "asked to stop: no reason");
    assert.equal(closedEarly, false, "closed() resolves only once stopped");
    c.destroy();
    assert.equal(c.stop({ force: true }), stopping, "after the end, force changes nothing");
    await assert.rejects(c.command(["PING"]), (e) => isRedmeshError(e, "ERR_NOT_RUNNING"));
    await assert.rejects(c.connect(), (e) => isRedmeshError(e, "ERR_NOT_RUNNING"));
    await waitFor(async () => !(await redis.cli("CLIENT", "LIST")).includes("name=stop-graceful"), {
      what: "the server to see the socket gone",
    });
  });

  test("stop({ force: true }) rejects the commands pending on a frozen Redis at once, typed", {
    timeout: 10_000,
  }, async () => {
    const c = createRedisConnection({ redis: redis.url });
    c.on("error", () => undefined);
    await c.connect();
    redis.freeze();
    try {
      const failures = [
        c.command(["PING"], { timeoutMs: 0 }).then(
          () => assert.fail("answered by a frozen server"),
          (e) => e,
        ),
        c.command(["PING"], { timeoutMs: 10_000 }).then(
          () => assert.fail("answered by a frozen server"),
          (e) => e,
        ),
        c.pipeline([["PING"]], { timeoutMs: 0 }).then(([r]) => r),
      ];
      await new Promise((r) => setTimeout(r, 50));
      const t0 = performance.now();
      const stopped = c.stop({ force: true });
      assert.equal(c.close(), stopped, "close() after a forced stop shares its outcome");
      const errors = await Promise.all(failures);
      const took = performance.now() - t0;
      assert.ok(took < 100, `pending commands were rejected after ${took.toFixed(0)} ms`);
      for (const e of errors)
        assert.ok(
          e instanceof ConnectionError && isRedmeshError(e, "ERR_REDIS_UNAVAILABLE"),
          `typed: ${String(e)}`,
        );
      await stopped;
      assert.ok(performance.now() - t0 < 200, "the stop did not wait for the frozen server");
      assert.equal(await c.closed(), undefined);
      assert.equal(c.state, LifeState.STOPPED);
    } finally {
      redis.thaw();
    }
  });

  test("a graceful stop on a frozen Redis ends at its timeoutMs; a forced stop cuts one short", {
    timeout: 10_000,
  }, async () => {
    const graceful = createRedisConnection({ redis: redis.url });
    const escalated = createRedisConnection({ redis: redis.url });
    for (const c of [graceful, escalated]) {
      c.on("error", () => undefined);
      await c.connect();
    }
    redis.freeze();
    try {
      // No deadline of their own: only the stop can end them (the sockets destroyed, not just closed).
      const pendingA = graceful.command(["PING"], { timeoutMs: 0 }).catch((e: unknown) => e);
      const pendingB = escalated.command(["PING"], { timeoutMs: 0 }).catch((e: unknown) => e);
      await new Promise((r) => setTimeout(r, 50));
      const t0 = performance.now();
      const stopA = graceful.stop({ timeoutMs: 200 });
      const stopB = escalated.stop({ timeoutMs: 10_000 });
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(escalated.state, LifeState.STOPPING);
      const tForce = performance.now();
      assert.equal(escalated.stop({ force: true }), stopB, "the forced stop returns the stop under way");
      const errB = await pendingB;
      await stopB;
      const forcedTook = performance.now() - tForce;
      assert.ok(forcedTook < 100, `the forced stop took ${forcedTook.toFixed(0)} ms`);
      assert.ok(errB instanceof ConnectionError, `typed: ${String(errB)}`);
      const errA = await pendingA;
      await stopA;
      const gracefulTook = performance.now() - t0;
      assert.ok(errA instanceof ConnectionError, `typed: ${String(errA)}`);
      assert.ok(
        gracefulTook >= 190 && gracefulTook < 1000,
        `the graceful stop took ${gracefulTook.toFixed(0)} ms`,
      );
      assert.equal(await graceful.closed(), undefined);
      assert.equal(await escalated.closed(), undefined);
    } finally {
      redis.thaw();
    }
  });

  test("connect() to nothing rejects with a typed error within its timeout", async () => {
    const c = createRedisConnection({ redis: { port: 1, connectTimeoutMs: 300 } });
    const t0 = Date.now();
    await assert.rejects(c.connect(), ConnectionError);
    assert.ok(Date.now() - t0 < 2000);
    await c.close();
  });
});
