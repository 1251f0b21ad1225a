import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { assertServiceName, createKeys, isServiceName, ValidationError } from "../../src/index.js";

describe("keys", () => {
  const iid = "0123456789abcdef0123456789abcdef";

  test("namespace hydra gives Hydra 1.9's exact key and channel names", () => {
    const k = createKeys({ namespace: "hydra" });
    assert.equal(k.service("order-svc"), "hydra:service:order-svc:service");
    assert.equal(k.presence("order-svc", iid), `hydra:service:order-svc:${iid}:presence`);
    assert.equal(k.nodes(), "hydra:service:nodes");
    assert.equal(k.health("order-svc", iid), `hydra:service:order-svc:${iid}:health`);
    assert.equal(k.healthLog("order-svc", iid), `hydra:service:order-svc:${iid}:health:log`);
    assert.equal(k.routes("order-svc"), "hydra:service:order-svc:service:routes");
    assert.equal(k.configs("order-svc"), "hydra:service:order-svc:configs");
    assert.equal(k.queuePending("order-svc"), "hydra:service:order-svc:mqrecieved");
    assert.equal(k.serviceChannel("order-svc"), "hydra:service:mc:order-svc");
    assert.equal(k.instanceChannel("order-svc", iid), `hydra:service:mc:order-svc:${iid}`);
  });

  test("the default namespace is redmesh, and Cluster mode hash-tags every per-service key", () => {
    assert.equal(createKeys().presence("a", iid), `redmesh:service:a:${iid}:presence`);
    const k = createKeys({ namespace: "ns", cluster: true });
    const perService = [
      k.service("a"),
      k.presence("a", iid),
      k.health("a", iid),
      k.healthLog("a", iid),
      k.routes("a"),
      k.configs("a"),
      k.queuePending("a"),
      k.instanceIndex("a"),
      k.log("a"),
      k.configActive("a"),
      k.queue("a", "default", "delayed"),
      k.queueConsumer("a", "default", "active", iid),
    ];
    for (const key of perService) assert.match(key, /\{a\}/, key);
  });

  test("service names: valid ones accepted, everything else rejected with ERR_INVALID_NAME", () => {
    for (const ok of ["a", "orders", "order-svc", "v1.api_gw", "0day", "a".repeat(63)]) assertServiceName(ok);
    for (const bad of [
      "",
      "A",
      "Orders",
      "-x",
      ".x",
      "a:b",
      "a b",
      "a{b}",
      "a*",
      "é",
      "a".repeat(64),
      "nodes",
      "mc",
    ]) {
      assert.throws(
        () => assertServiceName(bad),
        (e: unknown) => e instanceof ValidationError && e.code === "ERR_INVALID_NAME",
        bad,
      );
    }
    assert.throws(() => assertServiceName(42), ValidationError);
  });

  test("property: an accepted name never contains a key separator, glob or hash-tag character", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 80, unit: "binary" }), (s) => {
        if (!isServiceName(s)) return true;
        return !/[:*?[\]{}\\\s\0]/.test(s) && s.length <= 63;
      }),
      { numRuns: 10_000 },
    );
  });

  test("property: keys of two different services never collide", () => {
    const k = createKeys({ namespace: "ns" });
    const name = fc.stringMatching(/^[a-z0-9][a-z0-9._-]{0,10}$/).filter(isServiceName);
    fc.assert(
      fc.property(name, name, (a, b) => {
        if (a === b) return true;
        const ka = [
          k.service(a),
          k.routes(a),
          k.configs(a),
          k.presence(a, iid),
          k.instanceIndex(a),
          k.log(a),
        ];
        const kb = new Set([
          k.service(b),
          k.routes(b),
          k.configs(b),
          k.presence(b, iid),
          k.instanceIndex(b),
          k.log(b),
        ]);
        return ka.every((x) => !kb.has(x)) && k.serviceChannel(a) !== k.serviceChannel(b);
      }),
      { numRuns: 5_000 },
    );
  });
});
