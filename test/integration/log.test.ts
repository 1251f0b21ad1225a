import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import pino from "pino";
import { createService, readHealthLog, runWithContext, type Service } from "../../src/index.js";
import { type LogEntry, pinoDestination } from "../../src/log/index.js";
import { randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";
import { onTopology, standaloneOnly, startTopology, type TestTopology } from "../helpers/topology.js";

async function collect(it: AsyncIterable<LogEntry>, n: number, timeoutMs = 5000): Promise<LogEntry[]> {
  const out: LogEntry[] = [];
  const t0 = Date.now();
  for await (const e of it) {
    out.push(e);
    if (out.length >= n) break;
    if (Date.now() - t0 > timeoutMs) break;
  }
  return out;
}

describe(onTopology("distributed log"), () => {
  let redis: TestTopology;
  const started: Service[] = [];
  const make = async (name: string, ns: string, extra: Parameters<typeof createService>[0]["log"] = {}) => {
    const s = createService({ name, namespace: ns, redis: redis.url, log: extra });
    await s.start();
    started.push(s);
    return s;
  };

  before(async () => {
    redis = await startTopology();
  });
  afterEach(async () => {
    await redis.checkInvariants();
  });
  after(async () => {
    await Promise.all(started.map((s) => s.stop()));
    await redis?.stop();
  });

  test("logs from three instances of two services are tailed in time order", async () => {
    const ns = randomNamespace();
    const a1 = await make("orders", ns);
    const a2 = await make("orders", ns);
    const b1 = await make("billing", ns);
    const ac = new AbortController();
    const follow = a1.log.tail({
      services: ["orders", "billing"],
      follow: true,
      signal: ac.signal,
      count: 3,
    });
    // Prime the iterator so the tail has resolved its start position before anything is written.
    const firstP = follow.next();
    await sleep(100);
    const t0 = Date.now();
    const writers = [a1, a2, b1];
    for (let i = 0; i < 30; i++) {
      const w = writers[i % 3] as Service;
      w.log.info(`m${i}`, { i });
      await w.log.flush();
    }
    const first = await firstP;
    assert.equal(first.done, false);
    const rest = await collect(follow, 29);
    ac.abort();
    const all = [first.value as LogEntry, ...rest];
    assert.deepEqual(
      all.map((e) => e.msg),
      Array.from({ length: 30 }, (_, i) => `m${i}`),
    );
    assert.deepEqual(
      all.map((e) => e.instance),
      Array.from({ length: 30 }, (_, i) => (writers[i % 3] as Service).instanceId),
    );
    assert.deepEqual(all[2]?.service, "billing");
    assert.deepEqual(all[4]?.fields, { i: 4 });
    // Read back without following (merging with a small COUNT exercises the watermark): same order.
    const back = await collect(a2.log.tail({ services: ["billing", "orders"], since: t0, count: 2 }), 100);
    assert.deepEqual(
      back.map((e) => e.msg),
      all.map((e) => e.msg),
    );
    // Every registered service when none are named.
    const any = await collect(b1.log.tail({ since: t0 }), 100);
    assert.equal(any.length, 30);
    // The follow iterator ended on abort.
    assert.equal((await follow.next()).done, true);
  });

  test("level threshold per service and level filter on read", async () => {
    const ns = randomNamespace();
    const quiet = await make("quiet", ns, { level: "warn" });
    quiet.log.debug("d");
    quiet.log.info("i");
    quiet.log.warn("w", { disk: 91 });
    quiet.log.error("e");
    await quiet.log.flush();
    assert.equal(await redis.cli("XLEN", quiet.keys.log("quiet")), "2");
    quiet.log.level = "debug";
    quiet.log.debug("d2");
    await quiet.log.flush();
    const errors = await collect(quiet.log.tail({ services: ["quiet"], level: "error" }), 10);
    assert.deepEqual(
      errors.map((e) => e.msg),
      ["e"],
    );
    const warns = await quiet.log.query({ level: "warn" });
    assert.deepEqual(
      warns.map((e) => [e.level, e.msg]),
      [
        ["warn", "w"],
        ["error", "e"],
      ],
    );
    // Warnings and errors also reach the instance's Hydra health log (newest first).
    const hl = await readHealthLog(quiet.redis, quiet.keys, "quiet", quiet.instanceId);
    assert.deepEqual(
      hl.map((h) => [h.type, h.msg]),
      [
        ["error", "e"],
        ["warn", "w"],
      ],
    );
    assert.throws(() => {
      quiet.log.level = "loud" as "info";
    }, /invalid log level/);
  });

  test("query: text, time range, limit; correlation id from the work context", async () => {
    const ns = randomNamespace();
    const s = await make("search", ns, { level: "debug" });
    for (let i = 0; i < 50; i++) s.log.info(`order ${i} ${i % 10 === 0 ? "FAILED" : "ok"}`, { n: i });
    await s.log.flush();
    const mid = Date.now();
    await sleep(5);
    runWithContext(
      { correlationId: "c0ffee", traceparent: "00-abcdef0123456789abcdef0123456789-0123456789abcdef-01" },
      () => s.log.error("late failed", { why: "boom" }),
    );
    await s.log.flush();
    const failed = await s.log.query({ text: "failed" });
    assert.deepEqual(
      failed.map((e) => e.msg),
      [
        "order 0 FAILED",
        "order 10 FAILED",
        "order 20 FAILED",
        "order 30 FAILED",
        "order 40 FAILED",
        "late failed",
      ],
    );
    const last2 = await s.log.query({ text: "failed", limit: 2 });
    assert.deepEqual(
      last2.map((e) => e.msg),
      ["order 40 FAILED", "late failed"],
    );
    const late = await s.log.query({ from: mid + 1 });
    assert.equal(late.length, 1);
    assert.equal(late[0]?.cid, "c0ffee");
    assert.equal(late[0]?.trace, "abcdef0123456789abcdef0123456789");
    const early = await s.log.query({ to: mid, limit: 1000 });
    assert.equal(early.length, 50);
    const byField = await s.log.query({ text: '"n":7' });
    assert.deepEqual(
      byField.map((e) => e.msg),
      ["order 7 ok"],
    );
    await assert.rejects(s.log.query({ limit: 0 }), /positive integers/);
    await assert.rejects(s.log.query({ service: "Bad Name" }), { code: "ERR_INVALID_NAME" });
  });

  test("pino destination: a pino app logs to the mesh unchanged", async () => {
    const ns = randomNamespace();
    const s = await make("pinoapp", ns, { level: "debug" });
    const logger = pino({ level: "debug" }, pinoDestination(s.log));
    logger.info({ sku: "A1", qty: 2 }, "reserved");
    logger.debug("details");
    logger.error(new Error("kaput"), "failed");
    logger.child({ module: "db" }).warn("slow query");
    logger.trace("invisible: below pino's level");
    await waitFor(
      async () => {
        await s.log.flush();
        return s.log.stats.written === 4;
      },
      { what: "4 entries" },
    );
    const got = await s.log.query({});
    assert.deepEqual(
      got.map((e) => [e.level, e.msg]),
      [
        ["info", "reserved"],
        ["debug", "details"],
        ["error", "failed"],
        ["warn", "slow query"],
      ],
    );
    assert.deepEqual(got[0]?.fields, { sku: "A1", qty: 2 });
    assert.equal((got[2]?.fields?.err as { message?: string } | undefined)?.message, "kaput");
    assert.deepEqual(got[3]?.fields, { module: "db" });
    assert.ok(Math.abs((got[0]?.ts ?? 0) - Date.now()) < 5000);
  });

  test("echo writes one JSON line per entry locally", async () => {
    const ns = randomNamespace();
    const lines: string[] = [];
    const s = await make("echoer", ns, { echo: (l) => lines.push(l) });
    s.log.info("hello", { a: 1 });
    s.log.debug("dropped by level");
    assert.equal(lines.length, 1);
    const rec = JSON.parse(lines[0] as string);
    assert.equal(rec.msg, "hello");
    assert.equal(rec.service, "echoer");
    assert.deepEqual(rec.fields, { a: 1 });
  });

  test("stop() flushes what is buffered before closing the connection", async () => {
    const ns = randomNamespace();
    const s = createService({ name: "flusher", namespace: ns, redis: redis.url });
    await s.start();
    for (let i = 0; i < 300; i++) s.log.info(`e${i}`);
    await s.stop();
    assert.equal(await redis.cli("XLEN", s.keys.log("flusher")), "300");
    assert.equal(s.log.stats.dropped, 0);
    s.log.info("after stop");
    assert.equal(s.log.stats.dropped, 1);
  });

  test("entries logged before start() are written once the service is connected", async () => {
    const ns = randomNamespace();
    const s = createService({ name: "early", namespace: ns, redis: redis.url, log: { retryMs: 20 } });
    s.log.info("before start");
    assert.equal(s.log.stats.buffered, 1);
    await s.start();
    started.push(s);
    await waitFor(() => s.log.stats.written === 1, { what: "early entry written" });
    assert.equal((await s.log.query({}))[0]?.msg, "before start");
  });

  test("the stream is capped (MAXLEN ~)", async () => {
    const ns = randomNamespace();
    const s = await make("capped", ns, { maxLen: 100 });
    for (let i = 0; i < 2000; i++) s.log.info(`e${i}`);
    await s.log.flush();
    const len = Number(await redis.cli("XLEN", s.keys.log("capped")));
    // "~" trims whole macro nodes (100 entries by default), so the length stays near the cap.
    assert.ok(len >= 100 && len <= 300, `XLEN ${len}`);
    assert.equal(s.log.stats.written, 2000);
  });

  test("bad options are rejected with typed errors", () => {
    assert.throws(() => createService({ name: "x", log: { level: "loud" as "info" } }), {
      code: "ERR_INVALID_OPTIONS",
    });
    assert.throws(() => createService({ name: "x", log: { bufferLimit: 0 } }), {
      code: "ERR_INVALID_OPTIONS",
    });
  });
});

describe(onTopology("distributed log under Redis faults"), () => {
  // Per test (not on the describe), so the skipped tests are counted in the final line.
  const only = standaloneOnly("pauses, kills and restarts the one server");
  let redis: TestRedis;
  let svc: Service;

  before(async () => {
    if (only.skip) return;
    redis = await startRedis();
    svc = createService({
      name: "faulty",
      namespace: randomNamespace(),
      redis: redis.url,
      log: { bufferLimit: 100, batchSize: 50, retryMs: 20 },
    });
    await svc.start();
  });
  after(async () => {
    await svc?.stop();
    await redis?.stop();
  });

  test(
    "Redis paused: logging never blocks, the buffer stays bounded, drops are counted, then it resumes",
    only,
    async () => {
      const key = svc.keys.log("faulty");
      const before0 = svc.log.stats;
      await redis.pause(1000, "ALL");
      const pausedAt = performance.now();
      const t0 = performance.now();
      for (let i = 0; i < 2000; i++) {
        svc.log.info(`p${i}`, { i });
        if (i % 100 === 0) await sleep(1); // let flushes start (and hang on the paused server)
      }
      const spent = performance.now() - t0;
      // 2000 calls with 20 yields of ~1 ms all finished while Redis was still paused: nothing waited for it.
      assert.ok(performance.now() - pausedAt < 900, `logging took ${spent} ms while Redis was paused`);
      assert.equal(svc.log.stats.written, before0.written);
      const during = svc.log.stats;
      assert.ok(during.buffered <= 100, `buffered ${during.buffered}`);
      assert.ok(during.dropped - before0.dropped >= 1800, `dropped ${during.dropped}`);
      // The service is still responsive: its timers fire on time.
      const lagT = performance.now();
      await sleep(10);
      assert.ok(performance.now() - lagT < 200);
      await waitFor(() => svc.log.stats.buffered === 0, { timeoutMs: 5000, what: "buffer drained" });
      await svc.log.flush();
      const s = svc.log.stats;
      assert.equal(Number(await redis.cli("XLEN", key)), s.written);
      // Every entry is accounted for: written or dropped.
      assert.equal(s.written + s.dropped - (before0.written + before0.dropped), 2000);
      svc.log.info("after pause");
      await svc.log.flush();
      const last = await svc.log.query({ limit: 1 });
      assert.equal(last[0]?.msg, "after pause");
      const health = await svc.health();
      assert.equal(health.counters.logDropped, svc.log.stats.dropped);
      assert.ok((health.counters.logDropped ?? 0) > 0);
    },
  );

  test(
    "Redis stopped: the service keeps working, memory stays bounded, logging resumes after restart",
    only,
    async () => {
      const dropped0 = svc.log.stats.dropped;
      await redis.kill();
      await waitFor(() => svc.redis.status !== "ready", { what: "connection down" });
      for (let i = 0; i < 50_000; i++) svc.log.warn(`down ${i}`, { pad: "x".repeat(200) });
      assert.ok(svc.log.stats.buffered <= 100);
      assert.equal(svc.log.stats.dropped - dropped0, 50_000 - svc.log.stats.buffered);
      await sleep(100);
      await redis.restart();
      await waitFor(() => svc.redis.status === "ready", { timeoutMs: 8000, what: "reconnected" });
      // The 100 buffered entries (the newest) are written once Redis is back.
      await waitFor(() => svc.log.stats.buffered === 0, { timeoutMs: 5000, what: "buffer drained" });
      svc.log.info("back");
      await svc.log.flush();
      const entries = await svc.log.query({ limit: 1000 });
      assert.equal(entries.length, 101);
      assert.equal(entries[0]?.msg, "down 49900");
      assert.equal(entries[100]?.msg, "back");
    },
  );

  test("a following tail survives a Redis restart", only, async () => {
    const ac = new AbortController();
    const it = svc.log.tail({ services: ["faulty"], follow: true, signal: ac.signal, blockMs: 200 });
    const first = it.next();
    await sleep(50);
    svc.log.info("before restart");
    assert.equal((await first).value?.msg, "before restart");
    const second = it.next();
    await redis.kill();
    await sleep(300);
    await redis.restart();
    await waitFor(() => svc.redis.status === "ready", { timeoutMs: 8000, what: "reconnected" });
    svc.log.info("after restart");
    const got = await Promise.race([second, sleep(5000).then(() => undefined)]);
    assert.equal(got?.value?.msg, "after restart");
    ac.abort();
    assert.equal((await it.next()).done, true);
  });
});
