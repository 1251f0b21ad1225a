import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createService, type Service } from "../../src/index.js";
import { type HydraPeer, startHydraPeer } from "../helpers/hydra.js";
import { startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

// Hydra's key prefix is hard-wired to "hydra:service", so this suite owns its own Redis.
describe("Hydra interop: registry (namespace hydra)", () => {
  let redis: TestRedis;
  let peer: HydraPeer;
  let svc: Service;

  before(async () => {
    redis = await startRedis();
    peer = await startHydraPeer(redis.url, "hydra-svc");
    svc = createService({ name: "redmesh-svc", namespace: "hydra", redis: redis.url, version: "2.0.0" });
    await svc.start();
  });
  after(async () => {
    await svc?.stop();
    await peer?.stop();
    await redis?.stop();
  });

  test("Hydra sees the redmesh service: getServicePresence, getServices, getServiceNodes", async () => {
    const presence = await peer.call<Array<{ instanceID: string; serviceName: string; version: string }>>(
      "getServicePresence",
      "redmesh-svc",
    );
    assert.equal(presence.length, 1);
    assert.equal(presence[0]?.instanceID, svc.instanceId);
    assert.equal(presence[0]?.version, "2.0.0");
    const services = await peer.call<Array<{ serviceName: string }>>("getServices");
    assert.deepEqual(services.map((s) => s.serviceName).sort(), ["hydra-svc", "redmesh-svc"]);
    const nodes = await peer.call<Array<{ instanceID: string }>>("getServiceNodes");
    assert.ok(nodes.some((n) => n.instanceID === svc.instanceId));
    assert.ok(nodes.some((n) => n.instanceID === peer.iid));
  });

  test("redmesh sees the Hydra service: registry.instances, services, nodes", async () => {
    const inst = await svc.registry.instances("hydra-svc");
    assert.equal(inst.length, 1);
    assert.equal(inst[0]?.id, peer.iid);
    assert.equal(inst[0]?.redmesh, false);
    assert.equal(inst[0]?.node?.serviceName, "hydra-svc");
    assert.deepEqual(await svc.registry.services(), ["hydra-svc", "redmesh-svc"]);
    const nodes = await svc.registry.nodes();
    assert.deepEqual(nodes.map((n) => n.service).sort(), ["hydra-svc", "redmesh-svc"]);
  });

  test("a Hydra instance that stops disappears from redmesh discovery", async () => {
    const second = await startHydraPeer(redis.url, "hydra-svc");
    await waitFor(async () => (await svc.registry.instances("hydra-svc")).length === 2, { timeoutMs: 3000 });
    await second.child.kill();
    // Hydra's presence TTL is 3 s; discovery reconciles every second.
    await waitFor(async () => (await svc.registry.instances("hydra-svc")).length === 1, { timeoutMs: 5000 });
  });

  test("after redmesh stops, Hydra no longer sees it", async () => {
    const other = createService({ name: "short-lived", namespace: "hydra", redis: redis.url });
    await other.start();
    assert.equal((await peer.call<unknown[]>("getServicePresence", "short-lived")).length, 1);
    await other.stop();
    // The presence key is gone at once; Hydra itself caches presence answers for 3 s.
    assert.equal(await redis.cli("EXISTS", `hydra:service:short-lived:${other.instanceId}:presence`), "0");
    await waitFor(
      async () => (await peer.call<unknown[]>("getServicePresence", "short-lived")).length === 0,
      {
        timeoutMs: 4500,
        intervalMs: 100,
      },
    );
  });
});
