import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ErrorCode, ValidationError } from "../../src/errors.js";
import { createKeys } from "../../src/keys.js";
import {
  ClusterConnection,
  createRedisConnection,
  isShardedChannel,
  keySlot,
  RedisConnection,
  resolveTopology,
  routingKey,
  SentinelConnection,
} from "../../src/redis/index.js";
import { toTlsConnectionOptions } from "../../src/redis/options.js";

describe("redis topologies: options", () => {
  test("a cluster seed list, with credentials from the first URL", () => {
    const o = resolveTopology({ cluster: ["redis://bob:pw@10.0.0.1:7000", "10.0.0.2:7001"] });
    assert.equal(o.kind, "cluster");
    if (o.kind !== "cluster") return;
    assert.deepEqual(o.nodes, [
      { host: "10.0.0.1", port: 7000 },
      { host: "10.0.0.2", port: 7001 },
    ]);
    assert.equal(o.username, "bob");
    assert.equal(o.password, "pw");
    assert.equal(o.tls, undefined);
    assert.equal(o.display, "redis-cluster://bob@10.0.0.1:7000,10.0.0.2:7001");
    assert.ok(!o.display.includes("pw"));
  });

  test("cluster and sentinel URL strings (what --redis and REDIS_URL take)", () => {
    const c = resolveTopology("rediss-cluster://u:p@h1:7000,h2:7001");
    assert.equal(c.kind, "cluster");
    if (c.kind === "cluster") {
      assert.deepEqual(c.tls, {});
      assert.equal(c.nodes.length, 2);
      assert.equal(c.password, "p");
    }
    const s = resolveTopology("redis-sentinel://app:secret@s1:26379,s2/mymaster");
    assert.equal(s.kind, "sentinel");
    if (s.kind === "sentinel") {
      assert.equal(s.name, "mymaster");
      assert.deepEqual(s.sentinels, [
        { host: "s1", port: 26379 },
        { host: "s2", port: 26379 },
      ]);
      assert.equal(s.username, "app");
      assert.equal(s.password, "secret");
      assert.equal(
        s.sentinelPassword,
        undefined,
        "the URL's credentials are the primary's, not the sentinels'",
      );
      assert.ok(!s.display.includes("secret"));
    }
  });

  test("bad topology options are typed errors that say what is wrong", () => {
    const cases: Array<[unknown, RegExp]> = [
      [{ cluster: [] }, /non-empty array/],
      [{ cluster: ["http://x:1"] }, /scheme/],
      [{ cluster: ["redis://x:99999"] }, /invalid|port/],
      [{ cluster: ["redis://x:1"], db: 2 }, /only database 0/],
      [{ sentinel: { name: "", sentinels: ["s:1"] } }, /sentinel.name/],
      [{ sentinel: { name: "m", sentinels: [] } }, /sentinel.sentinels/],
      ["redis-sentinel://s1:26379", /primary's name/],
      ["redis-cluster://h:1/3", /no path/],
      ["redis-cluster://", /expected redis-cluster/],
    ];
    for (const [input, re] of cases) {
      assert.throws(
        () => resolveTopology(input as never),
        (e: unknown) =>
          e instanceof ValidationError && re.test(e.message) && e.code.startsWith("ERR_INVALID"),
        String(JSON.stringify(input)),
      );
    }
    assert.throws(
      () => resolveTopology({ cluster: [] }),
      (e: ValidationError) => e.code === ErrorCode.INVALID_OPTIONS,
    );
  });

  test("createRedisConnection picks the class by topology, without I/O", () => {
    assert.ok(createRedisConnection({ redis: "redis://127.0.0.1:1" }) instanceof RedisConnection);
    const c = createRedisConnection({ redis: { cluster: ["127.0.0.1:1"] } });
    assert.ok(c instanceof ClusterConnection);
    assert.equal(c.topology, "cluster");
    const s = createRedisConnection({ redis: { sentinel: { name: "m", sentinels: ["127.0.0.1:1"] } } });
    assert.ok(s instanceof SentinelConnection);
    assert.equal(s.topology, "sentinel");
    c.destroy();
    s.destroy();
  });
});

describe("redis topologies: cluster routing", () => {
  test("keySlot is the Cluster spec's HASH_SLOT (CRC16/XMODEM of the hash tag, mod 16384)", () => {
    // CRC16/XMODEM("123456789") = 0x31C3 (the spec's check value).
    assert.equal(keySlot("123456789"), 0x31c3);
    assert.equal(keySlot("foo"), 12182);
    assert.equal(keySlot("{user1000}.following"), keySlot("user1000"));
    assert.equal(keySlot(Buffer.from("x{user1000}y")), keySlot("user1000"));
    // An empty tag is no tag: the whole key is hashed.
    assert.notEqual(keySlot("{}a"), keySlot(""));
    assert.equal(keySlot("a{}{b}"), keySlot(Buffer.from("a{}{b}")));
    for (let i = 0; i < 1000; i++) assert.ok(keySlot(`k${i}`) < 16384);
  });

  test("TLS settings shared by every node name no server: each node is checked against its own host", () => {
    const tls = { ca: "pem", rejectUnauthorized: true };
    assert.equal(toTlsConnectionOptions(undefined, tls).servername, undefined);
    assert.equal(toTlsConnectionOptions("redis-a.internal", tls).servername, "redis-a.internal");
    assert.equal(toTlsConnectionOptions("10.0.0.1", tls).servername, undefined, "SNI is never an IP");
    assert.equal(toTlsConnectionOptions(undefined, { servername: "r.example" }).servername, "r.example");
  });

  test("commands are routed by their key", () => {
    assert.equal(routingKey(["GET", "a"]), "a");
    assert.equal(routingKey(["HSET", "h", "f", "v"]), "h");
    assert.equal(routingKey(["EVALSHA", "abc", 2, "k1", "k2", "x"]), "k1");
    assert.equal(routingKey(["EVAL", "return 1", 0]), undefined);
    assert.equal(routingKey(["XREAD", "COUNT", 5, "BLOCK", 100, "STREAMS", "s1", "0-0"]), "s1");
    assert.equal(routingKey(["PING"]), undefined);
    assert.equal(routingKey(["publish", "ch", "m"]), undefined);
    assert.equal(routingKey(["SPUBLISH", "ch{x}", "m"]), "ch{x}");
    assert.equal(routingKey(["MEMORY", "USAGE", "k"]), "k");
    assert.equal(routingKey(["MEMORY", "STATS"]), undefined);
    assert.equal(routingKey(["CONFIG", "GET", "save"]), undefined);
  });

  test("every per-service channel is sharded in Cluster mode; registry events are not", () => {
    const k = createKeys({ namespace: "ns", cluster: true });
    assert.ok(isShardedChannel(k.serviceChannel("orders")));
    assert.ok(isShardedChannel(k.instanceChannel("orders", "a".repeat(32))));
    assert.ok(isShardedChannel(k.queue("orders", "default", "wake")));
    assert.ok(!isShardedChannel(k.events()));
    const plain = createKeys({ namespace: "ns" });
    assert.ok(!isShardedChannel(plain.serviceChannel("orders")));
    assert.ok(!isShardedChannel("a{}b"), "an empty tag is no tag");
  });
});
