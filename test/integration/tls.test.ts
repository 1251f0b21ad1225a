import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createRedisConnection, createService, isRedmeshError } from "../../src/index.js";
import { startCluster, type TestCluster } from "../helpers/redis-cluster.js";
import { randomNamespace, startRedis, type TestRedis } from "../helpers/redis-server.js";
import { makeTestCerts, type TestCerts } from "../helpers/tls.js";

describe("TLS (rediss://) against a TLS-only redis-server with a self-signed CA", () => {
  let certs: TestCerts;
  let redis: TestRedis;
  before(async () => {
    certs = makeTestCerts();
    redis = await startRedis({ tls: certs });
  });
  after(async () => {
    await redis.stop();
    certs.remove();
  });

  test("a service works end to end when it trusts the CA", async () => {
    assert.match(redis.url, /^rediss:\/\//);
    const ns = randomNamespace("tls");
    const a = createService({
      name: "alpha",
      namespace: ns,
      redis: { url: redis.url, tls: { ca: certs.ca } },
    });
    const b = createService({
      name: "beta",
      namespace: ns,
      redis: { url: redis.url, tls: { ca: certs.ca } },
    });
    try {
      await a.start();
      await b.start();
      assert.deepEqual(
        (await b.registry.instances("alpha")).map((i) => i.id),
        [a.instanceId],
      );
      const clients = await redis.cli("CLIENT", "LIST");
      assert.ok(clients.split("\n").length >= 2, "the services are connected over TLS");
    } finally {
      await a.stop();
      await b.stop();
    }
  });

  test("an untrusted certificate is refused with a typed error, never retried in plaintext", async () => {
    for (const tls of [{}, { ca: certs.otherCa }]) {
      const c = createRedisConnection({ redis: { url: redis.url, tls } });
      c.on("error", () => undefined);
      await assert.rejects(c.connect({ timeoutMs: 2000, failFast: true }), (e) => {
        assert.ok(isRedmeshError(e, "ERR_REDIS_UNAVAILABLE"), String(e));
        assert.match(String((e as Error).message), /self[- ]signed|unable to verify|certificate/i);
        return true;
      });
      c.destroy();
    }
  });

  test("a plaintext client cannot talk to the TLS port (no silent downgrade)", async () => {
    const plain = createRedisConnection({ redis: redis.url.replace("rediss://", "redis://") });
    plain.on("error", () => undefined);
    await assert.rejects(plain.connect({ timeoutMs: 1500 }), (e) => isRedmeshError(e));
    plain.destroy();
  });
});

describe("TLS on a Redis Cluster (clients, cluster bus and replication over TLS)", () => {
  let certs: TestCerts;
  let cluster: TestCluster;
  before(async () => {
    certs = makeTestCerts();
    cluster = await startCluster({ tls: certs });
  });
  after(async () => {
    await cluster.stop();
    certs.remove();
  });

  test("services on every shard register, call each other and subscribe over TLS", async () => {
    assert.ok(cluster.urls.every((u) => u.startsWith("rediss://")));
    const ns = randomNamespace("tlsc");
    // Seeds and nodes discovered from CLUSTER SLOTS share the settings: each is checked against its
    // own address (the certificate lists 127.0.0.1).
    const redis = { cluster: cluster.urls, tls: { ca: certs.ca } };
    const names = ["alpha", "beta", "gamma", "delta"];
    const services = names.map((name) => createService({ name, namespace: ns, redis }));
    try {
      for (const s of services) s.handle("who", () => s.name);
      await Promise.all(services.map((s) => s.start()));
      const [first] = services;
      assert.ok(first);
      for (const name of names) assert.equal(await first.call(name, "who", {}), name);
      const masters = await cluster.masters();
      assert.equal(masters.length, 3);
      // The services' keys landed on more than one shard: discovered nodes were reached over TLS too.
      const used = await Promise.all(masters.map(async (m) => Number(await m.cli("DBSIZE")) > 0));
      assert.ok(used.filter(Boolean).length >= 2, `keys on ${used.filter(Boolean).length} shard(s)`);
    } finally {
      await Promise.all(services.map((s) => s.stop()));
    }
  });

  test("a Cluster whose CA is not trusted is refused with a typed error", async () => {
    const c = createRedisConnection({ redis: { cluster: cluster.urls, tls: { ca: certs.otherCa } } });
    c.on("error", () => undefined);
    await assert.rejects(c.connect({ timeoutMs: 1500, failFast: true }), (e: unknown) =>
      isRedmeshError(e, "ERR_REDIS_UNAVAILABLE"),
    );
    c.destroy();
  });
});
