/**
 * Queue adds confirmed by a replica (`replicas`, Redis `WAIT`): what makes an acknowledged add survive
 * a failover (docs/queues.md "Delivery guarantee"). A real primary and replica; the replica is frozen
 * (SIGSTOP) to show an add that no replica confirmed is rejected, typed and retryable.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createService, isRedmeshError, type Service } from "../../src/index.js";
import { randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

describe("queue adds confirmed by replicas", () => {
  let primary: TestRedis;
  let replica: TestRedis;
  const running: Service[] = [];
  before(async () => {
    primary = await startRedis();
    replica = await startRedis();
    await replica.cli("REPLICAOF", "127.0.0.1", String(primary.port));
    await waitFor(async () => (await replica.cli("INFO", "replication")).includes("master_link_status:up"), {
      timeoutMs: 10_000,
      what: "the replica to sync",
    });
  });
  after(async () => {
    replica?.thaw();
    await Promise.all(running.map((s) => s.stop()));
    await replica?.stop();
    await primary?.stop();
  });

  async function service(): Promise<Service> {
    const s = createService({ name: "producer", namespace: randomNamespace("qr"), redis: primary.url });
    running.push(s);
    await s.start();
    return s;
  }

  test("with replicas: 1 an add resolves only once the replica has the job (single and bulk, plain and scripted)", async () => {
    const s = await service();
    const q = s.queue("jobs", { replicas: 1 });
    const key = s.keys.queue("producer", "jobs", "pending");
    for (let i = 0; i < 20; i++) {
      await q.add({ i });
      // WAIT returned: the replica has applied the write, so it answers with the job at once.
      assert.equal(await replica.cli("LLEN", key), String(i + 1));
    }
    await q.addBulk(Array.from({ length: 30 }, (_, i) => ({ body: { i: 100 + i } })));
    assert.equal(await replica.cli("LLEN", key), "50");
    // Scripted adds (delay, jobId) go through EVAL right before the WAIT.
    const r = await q.add({ i: 200 }, { jobId: "unique-1" });
    assert.deepEqual(r, { id: "unique-1", added: true });
    assert.equal(await replica.cli("LLEN", key), "51");
    await q.add({ i: 201 }, { delay: 60_000 });
    assert.equal(await replica.cli("ZCARD", s.keys.queue("producer", "jobs", "delayed")), "1");
  });

  test("no replica confirms in time → ERR_NOT_REPLICATED (retryable, typed), and a later add succeeds again", async () => {
    const s = await service();
    const q = s.queue("jobs", { replicas: 1, replicaTimeoutMs: 200 });
    await q.add({ warm: true });
    replica.freeze();
    let err: unknown;
    const t0 = performance.now();
    const adding = q.add({ lost: "maybe" }).catch((e: unknown) => {
      err = e;
    });
    // The WAIT blocks the queue's own producer connection, not the service's: commands go on.
    const p0 = performance.now();
    await s.redis.command(["PING"]);
    const pingMs = performance.now() - p0;
    await adding;
    const took = performance.now() - t0;
    replica.thaw();
    assert.ok(
      pingMs < 150,
      `PING on the service's connection took ${pingMs.toFixed(0)} ms while the add waited`,
    );
    assert.ok(isRedmeshError(err, "ERR_NOT_REPLICATED"), `got ${String(err)}`);
    assert.equal(err.retryable, true);
    assert.deepEqual(
      { replicas: err.data?.replicas, confirmed: err.data?.confirmed },
      { replicas: 1, confirmed: 0 },
    );
    assert.ok(took >= 150 && took < 3000, `rejected after ${took.toFixed(0)} ms (replicaTimeoutMs 200)`);
    await waitFor(async () => (await replica.cli("INFO", "replication")).includes("master_link_status:up"), {
      timeoutMs: 10_000,
      what: "the replica to be back",
    });
    await q.add({ again: true });
  });

  test("stop() closes the producer connection; an add after it is ERR_NOT_RUNNING", async () => {
    const s = await service();
    const q = s.queue("stopping", { replicas: 1 });
    await q.add({ a: 1 });
    const producers = async () =>
      (await primary.cli("CLIENT", "LIST")).split("\n").filter((l) => l.includes("name=redmesh:qp:stopping"))
        .length;
    assert.equal(await producers(), 1);
    await q.stop();
    await waitFor(async () => (await producers()) === 0, {
      timeoutMs: 3000,
      what: "the producer connection to close",
    });
    await assert.rejects(q.add({ a: 2 }), (e: unknown) => isRedmeshError(e, "ERR_NOT_RUNNING"));
  });

  test("the default on one server is replicas: 0 (no WAIT); more replicas than exist fail typed", async () => {
    const s = await service();
    const before = Number(
      (await primary.cli("INFO", "commandstats")).match(/cmdstat_wait:calls=(\d+)/)?.[1] ?? 0,
    );
    await s.queue("plain").add({ a: 1 });
    const after = Number(
      (await primary.cli("INFO", "commandstats")).match(/cmdstat_wait:calls=(\d+)/)?.[1] ?? 0,
    );
    assert.equal(after, before, "no WAIT sent by default on a standalone connection");
    await assert.rejects(s.queue("two", { replicas: 2, replicaTimeoutMs: 100 }).add({ a: 1 }), (e: unknown) =>
      isRedmeshError(e, "ERR_NOT_REPLICATED"),
    );
  });

  test("invalid replicas / replicaTimeoutMs are rejected with ERR_INVALID_OPTIONS", async () => {
    const s = await service();
    for (const o of [{ replicas: -1 }, { replicas: 1.5 }, { replicas: 17 }, { replicaTimeoutMs: 0 }]) {
      assert.throws(
        () => s.queue("bad", o),
        (e: unknown) => isRedmeshError(e, "ERR_INVALID_OPTIONS"),
        JSON.stringify(o),
      );
    }
  });
});
