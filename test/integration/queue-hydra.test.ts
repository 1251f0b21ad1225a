/**
 * Queue interop with a real Hydra 1.9 peer (npm `hydra`, in its own process): a Hydra
 * `queueMessage` is consumed by a redmesh worker like any other job, and a job added by redmesh is
 * read by Hydra's `getQueuedMessage` and completed with `markQueueMessage`.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createService, type Service } from "../../src/index.js";
import { type HydraPeer, startHydraPeer } from "../helpers/hydra.js";
import { startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

// Hydra's key prefix is hard-wired to "hydra:service", so this suite owns its own Redis.
describe("Hydra interop: queues (namespace hydra)", () => {
  let redis: TestRedis;
  let peer: HydraPeer;
  let svc: Service;

  before(async () => {
    redis = await startRedis();
    peer = await startHydraPeer(redis.url, "hydra-producer");
    svc = createService({ name: "rm-worker", namespace: "hydra", redis: redis.url });
    await svc.start();
  });
  after(async () => {
    await svc?.stop();
    await peer?.stop();
    await redis?.stop();
  });

  test("a Hydra queueMessage is processed by a redmesh worker", async () => {
    const got: Array<{ body: unknown; id: string; from: unknown }> = [];
    svc.queue().process((body, job) => {
      got.push({ body, id: job.id, from: job.message.frm });
    });
    const msg = await peer.call<{ mid?: string }>("createUMFMessage", {
      to: "rm-worker:/",
      from: "hydra-producer:/",
      body: { order: 42 },
    });
    await peer.call("queueMessage", msg);
    await waitFor(() => got.length === 1, { what: "the Hydra message processed" });
    assert.deepEqual(got[0]?.body, { order: 42 });
    assert.equal(got[0]?.id, msg.mid);
    assert.equal(got[0]?.from, "hydra-producer:/");
    await waitFor(async () => (await svc.queue().stats()).processed === 1);
    assert.equal(await redis.cli("LLEN", "hydra:service:rm-worker:mqrecieved"), "0");
  });

  test("a job added by redmesh is read and completed by Hydra", async () => {
    const producer = svc.queue("default", { service: "hydra-producer" });
    const { id } = await producer.add({ invoice: 7 });
    const m = await peer.call<{ mid: string; bdy: unknown; to: string } | null>(
      "getQueuedMessage",
      "hydra-producer",
    );
    assert.ok(m, "Hydra dequeued the job");
    assert.equal(m.mid, id);
    assert.equal(m.to, "hydra-producer:/");
    assert.deepEqual(m.bdy, { invoice: 7 });
    await peer.call("markQueueMessage", m, true);
    assert.equal(await redis.cli("LLEN", "hydra:service:hydra-producer:mqinprogress"), "0");
  });
});
