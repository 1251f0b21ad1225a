import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { z } from "zod";
import { createService, type Service } from "../../src/index.js";
import { type HydraPeer, startHydraPeer } from "../helpers/hydra.js";
import { startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

const schema = z.object({ db: z.string(), pool: z.number().int().positive() });
type Cfg = z.infer<typeof schema>;

// Hydra's key prefix is hard-wired to "hydra:service", so this suite owns its own Redis.
describe("Hydra interop: config and health log (namespace hydra)", () => {
  let redis: TestRedis;
  let peer: HydraPeer;
  let svc: Service<Cfg>;

  before(async () => {
    redis = await startRedis();
    peer = await startHydraPeer(redis.url, "hydra-cfg-peer");
  });
  after(async () => {
    await svc?.stop();
    await peer?.stop();
    await redis?.stop();
  });

  test("a config pushed by Hydra (putConfig) is what a redmesh instance starts with", async () => {
    await peer.call("putConfig", "inventory:1.0.0", { db: "pg://a", pool: 5 });
    await peer.call("putConfig", "inventory:1.0.2", { db: "pg://b", pool: 8 });
    svc = createService({ name: "inventory", namespace: "hydra", redis: redis.url, config: { schema } });
    await svc.start();
    // No active pointer (Hydra has none): the highest version is the active one.
    assert.equal(svc.config.version, "1.0.2");
    assert.deepEqual(await svc.config.get(), { db: "pg://b", pool: 8 });
    assert.deepEqual(
      (await svc.config.history()).map((h) => [h.version, h.active]),
      [
        ["1.0.0", false],
        ["1.0.2", true],
      ],
    );
  });

  test("a config set by redmesh is read by Hydra's getConfig and listed by listConfig", async () => {
    const { version } = await svc.config.set({ db: "pg://c", pool: 12 });
    assert.equal(version, "1.0.3");
    assert.deepEqual(await peer.call("getConfig", "inventory:1.0.3"), { db: "pg://c", pool: 12 });
    assert.deepEqual(await peer.call("listConfig", "inventory"), [
      "inventory:1.0.0",
      "inventory:1.0.2",
      "inventory:1.0.3",
    ]);
    // Rollback moves only redmesh's pointer: Hydra still reads any version by label.
    await svc.config.rollback("1.0.0");
    assert.deepEqual(await svc.config.get(), { db: "pg://a", pool: 5 });
    assert.deepEqual(await peer.call("getConfig", "inventory:1.0.3"), { db: "pg://c", pool: 12 });
  });

  test("redmesh warnings and errors show in Hydra's health log", async () => {
    svc.log.info("not in the health log");
    svc.log.error("disk full", { disk: "/var" });
    await svc.log.flush();
    const all = await waitFor(async () => {
      const r =
        await peer.call<Array<{ log: Array<{ msg: string; type: string; serviceName: string }> }>>(
          "getServiceHealthAll",
        );
      return r.find((x) => x.log?.some((l) => l.msg === "disk full"));
    });
    const entry = all.log.find((l) => l.msg === "disk full");
    assert.equal(entry?.type, "error");
    assert.equal(entry?.serviceName, "inventory");
    assert.ok(!all.log.some((l) => l.msg === "not in the health log"));
  });
});
