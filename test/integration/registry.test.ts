import assert from "node:assert/strict";
import { before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  ConnectionError,
  createDiscovery,
  createKeys,
  createRedisConnection,
  createService,
  readHealth,
  readHealthLog,
  type ServiceOptions,
  ValidationError,
} from "../../src/index.js";
import { startFixture } from "../helpers/child.js";
import { randomNamespace, waitFor } from "../helpers/redis-server.js";
import { useServiceHarness } from "../helpers/services.js";
import { clusterOnly, onTopology, standaloneOnly, type TestTopology } from "../helpers/topology.js";

describe(onTopology("registry: registration, presence, discovery, routes, health"), () => {
  const h = useServiceHarness({ matrix: true });
  const svc = h.svc;
  let redis: TestTopology;
  before(() => {
    redis = h.topo;
  });

  test("writes the Hydra-compatible keys and the redmesh indexes", async () => {
    const ns = randomNamespace();
    const k = redis.keys(ns);
    const a = svc("orders", ns, { version: "1.2.3", ip: "10.0.0.1", port: 8080, description: "orders api" });
    await a.start();
    const iid = a.instanceId;
    assert.match(iid, /^[0-9a-f]{32}$/);
    const serviceKey = JSON.parse(await redis.cli("GET", k.service("orders")));
    assert.equal(serviceKey.serviceName, "orders");
    assert.ok(serviceKey.registeredOn);
    assert.equal(await redis.cli("GET", k.presence("orders", iid)), iid);
    const pttl = Number(await redis.cli("PTTL", k.presence("orders", iid)));
    assert.ok(pttl > 1000 && pttl <= 3000, `presence TTL ${pttl}`);
    const node = JSON.parse(await redis.cli("HGET", k.nodes(), iid));
    assert.equal(node.serviceName, "orders");
    assert.equal(node.version, "1.2.3");
    assert.equal(node.ip, "10.0.0.1");
    assert.equal(node.port, 8080);
    assert.equal(node.processID, process.pid);
    assert.equal(node.instanceID, iid);
    assert.ok(node.hostName);
    assert.equal(await redis.cli("SISMEMBER", k.serviceIndex(), "orders"), "1");
    assert.notEqual(await redis.cli("ZSCORE", k.instanceIndex("orders"), iid), "");
  });

  test("an instance is discoverable within 100 ms of start() and gone within 50 ms of stop()", async () => {
    const ns = randomNamespace();
    const k = redis.keys(ns);
    const watcher = svc("watcher", ns);
    await watcher.start();
    assert.deepEqual(await watcher.registry.instances("inventory"), []);
    const inv = svc("inventory", ns);
    await inv.start();
    const t0 = performance.now();
    await waitFor(
      async () => (await watcher.registry.instances("inventory")).some((i) => i.id === inv.instanceId),
      {
        timeoutMs: 1000,
        intervalMs: 1,
      },
    );
    const joinMs = performance.now() - t0;
    assert.ok(joinMs <= 100, `discovered after ${joinMs.toFixed(1)} ms`);

    // A cold reader (nothing cached) sees it at once too.
    const cold = svc("cold", ns);
    await cold.start();
    assert.equal((await cold.registry.instances("inventory")).length, 1);

    await inv.stop();
    const t1 = performance.now();
    await waitFor(async () => (await watcher.registry.instances("inventory")).length === 0, {
      timeoutMs: 1000,
      intervalMs: 1,
    });
    const leaveMs = performance.now() - t1;
    assert.ok(leaveMs <= 50, `gone after ${leaveMs.toFixed(1)} ms`);
    assert.equal(await redis.cli("EXISTS", k.presence("inventory", inv.instanceId)), "0");
    assert.equal(await redis.cli("HEXISTS", k.nodes(), inv.instanceId), "0");
  });

  test("an instance killed with SIGKILL disappears within presence TTL + 1 s", async () => {
    const ns = randomNamespace();
    const k = redis.keys(ns);
    const watcher = svc("watcher", ns);
    await watcher.start();
    const child = await startFixture<{ iid: string }>("service-child", [redis.url, ns, "victim"]);
    try {
      await waitFor(async () =>
        (await watcher.registry.instances("victim")).some((i) => i.id === child.hello.iid),
      );
      await child.kill();
      const t0 = performance.now();
      await waitFor(async () => (await watcher.registry.instances("victim")).length === 0, {
        timeoutMs: 6000,
        intervalMs: 20,
      });
      const goneMs = performance.now() - t0;
      assert.ok(goneMs <= 3000 + 1000, `gone after ${goneMs.toFixed(0)} ms`);
      // nodes() prunes the dead instance's entry once its presence key has expired.
      await waitFor(async () => (await redis.cli("EXISTS", k.presence("victim", child.hello.iid))) === "0", {
        timeoutMs: 2000,
      });
      const nodes = await watcher.registry.nodes();
      assert.ok(!nodes.some((n) => n.id === child.hello.iid));
      assert.equal(await redis.cli("HEXISTS", k.nodes(), child.hello.iid), "0");
    } finally {
      await child.kill();
    }
  });

  test(
    "Redis restarted under a running service: present again within 2 s, nothing thrown",
    standaloneOnly("kills and restarts the one server"),
    async () => {
      const server = h.redis;
      const ns = randomNamespace();
      const k = redis.keys(ns);
      const a = svc("survivor", ns);
      const downs: unknown[] = [];
      a.on("redis:down", (e) => downs.push(e));
      await a.start();
      await server.kill();
      await waitFor(() => downs.length > 0, { timeoutMs: 2000 });
      await assert.rejects(a.healthLog("warn", "x"), ConnectionError);
      await sleep(300);
      await server.restart();
      const t0 = performance.now();
      await waitFor(
        async () => (await redis.cli("GET", k.presence("survivor", a.instanceId))) === a.instanceId,
        {
          timeoutMs: 3000,
          intervalMs: 10,
        },
      );
      const backMs = performance.now() - t0;
      assert.ok(backMs <= 2000, `present again after ${backMs.toFixed(0)} ms`);
      assert.ok(await redis.cli("HGET", k.nodes(), a.instanceId));
      assert.equal(await redis.cli("SISMEMBER", k.serviceIndex(), "survivor"), "1");
      assert.equal((await a.registry.instances("survivor")).length, 1);
      assert.ok(a.stats().reregistrations >= 1);
    },
  );

  test("forged presence (a raw SET of a presence key, even with a node entry) is never routed to", async () => {
    const ns = randomNamespace();
    const k = redis.keys(ns);
    const real = svc("orders", ns);
    const caller = svc("caller", ns);
    await Promise.all([real.start(), caller.start()]);
    const fake = "f".repeat(32);
    await redis.cli("SET", k.presence("orders", fake), fake, "PX", "60000");
    await redis.cli(
      "HSET",
      k.nodes(),
      fake,
      JSON.stringify({ serviceName: "orders", instanceID: fake, version: "6.6.6", ip: "", port: 0 }),
    );
    caller.registry.events.invalidate();
    await caller.registry.events.reconcile();
    assert.deepEqual(
      (await caller.registry.instances("orders")).map((i) => i.id),
      [real.instanceId],
      "only instances registered through the registration script (the instance index) are discovered",
    );
  });

  test("routes from registerRoutes() and route(), before and after start(), are all registered", async () => {
    const ns = randomNamespace();
    const a = svc("shop", ns);
    await a.registerRoutes(["[get]/v1/http-served"]);
    await a.route("[get]/v1/rpc-served", () => ({ body: 1 }));
    await a.start();
    await a.route("[post]/v1/later", () => ({ body: 2 }));
    assert.deepEqual((await a.registry.routes("shop")).shop?.sort(), [
      "[get]/v1/http-served",
      "[get]/v1/rpc-served",
      "[post]/v1/later",
    ]);
    // Replacing the HTTP-served routes keeps those answered through route().
    await a.registerRoutes(["[get]/v1/other"]);
    assert.deepEqual((await a.registry.routes("shop")).shop?.sort(), [
      "[get]/v1/other",
      "[get]/v1/rpc-served",
      "[post]/v1/later",
    ]);
  });

  test("services(), nodes() and routes()", async () => {
    const ns = randomNamespace();
    const k = redis.keys(ns);
    const a = svc("orders", ns);
    const b = svc("billing", ns);
    const b2 = svc("billing", ns);
    await Promise.all([a.start(), b.start(), b2.start()]);
    assert.deepEqual(await a.registry.services(), ["billing", "orders"]);
    const nodes = await a.registry.nodes();
    assert.deepEqual(nodes.map((n) => n.service).sort(), ["billing", "billing", "orders"]);
    assert.ok(nodes.every((n) => n.node?.serviceName === n.service && n.redmesh));

    const stored = await b.registerRoutes(["[GET]/v1/bills/:id", "[post]/v1/bills", "[get]/v1/bills/:id"]);
    assert.deepEqual(stored, ["[get]/v1/bills/:id", "[post]/v1/bills"]);
    assert.deepEqual((await redis.cli("SMEMBERS", k.routes("billing"))).split("\n").sort(), stored);
    assert.deepEqual(await a.registry.routes("billing"), { billing: stored });
    assert.deepEqual(await a.registry.routes(), { billing: stored });
    await assert.rejects(b.registerRoutes(["no-slash"]), ValidationError);
    await assert.rejects(b.registerRoutes(["/a b"]), ValidationError);
  });

  test("health: snapshot outlives its interval, custom checks set the status, the log is capped at 64", async () => {
    const ns = randomNamespace();
    const k = redis.keys(ns);
    const a = svc("healthy", ns, { healthIntervalMs: 200 });
    let ok = true;
    a.healthCheck("db", () => ok);
    a.healthCheck("slow", () => new Promise((r) => setTimeout(() => r(true), 5)));
    await a.start();
    const h = await waitFor(() => readHealth(a.redis, a.keys, "healthy", a.instanceId));
    assert.equal(h.status, "ok");
    assert.equal(h.instanceID, a.instanceId);
    assert.ok(h.memory.rss > 0);
    assert.ok(typeof h.cpuPercent === "number");
    assert.ok(typeof h.eventLoopLagMs.p99 === "number");
    assert.equal(h.inFlight, 0);
    const pttl = Number(await redis.cli("PTTL", k.health("healthy", a.instanceId)));
    assert.ok(pttl > 200, `health key TTL ${pttl} ms outlives the 200 ms interval`);
    ok = false;
    const end = a.beginWork();
    await waitFor(
      async () => (await readHealth(a.redis, a.keys, "healthy", a.instanceId))?.status === "degraded",
    );
    const h2 = await readHealth(a.redis, a.keys, "healthy", a.instanceId);
    assert.equal(h2?.checks.db?.ok, false);
    assert.equal(h2?.inFlight, 1);
    end();
    for (let i = 0; i < 70; i++) await a.healthLog(i % 2 ? "warn" : "error", `problem ${i}`);
    const log = await readHealthLog(a.redis, a.keys, "healthy", a.instanceId);
    assert.equal(log.length, 64);
    assert.equal(log[0]?.msg, "problem 69");
    assert.equal(log[0]?.serviceName, "healthy");
    const ttl = Number(await redis.cli("TTL", k.healthLog("healthy", a.instanceId)));
    assert.ok(ttl > 600_000, "health log kept a week");
  });

  test("stop() drains in-flight work, announces draining, and is idempotent", async () => {
    const ns = randomNamespace();
    const watcher = svc("watcher", ns);
    const a = svc("worker", ns);
    await Promise.all([watcher.start(), a.start()]);
    await watcher.registry.instances("worker");
    const end = a.beginWork();
    const stopping = a.stop();
    await waitFor(async () => (await watcher.registry.instances("worker"))[0]?.status === "draining", {
      timeoutMs: 1000,
    });
    assert.equal(a.state, "stopping");
    await sleep(50);
    assert.equal(a.state, "stopping", "waits for in-flight work");
    end();
    await stopping;
    await a.stop();
    assert.equal(a.state, "stopped");
    assert.deepEqual(await watcher.registry.instances("worker"), []);
  });

  test("a reconciliation read sent before an instance left does not bring it back", async () => {
    const ns = randomNamespace();
    const worker = svc("worker", ns);
    await worker.start();
    const conn = createRedisConnection({ redis: redis.url });
    await conn.connect();
    // The real Redis answers at once; the test holds the answer of one read until the leave was seen.
    let hold: Promise<void> | undefined;
    let readDone!: () => void;
    const read = new Promise<void>((r) => (readDone = r));
    const held = new Proxy(conn, {
      get(target, key) {
        const v = Reflect.get(target, key);
        if (key !== "script") return typeof v === "function" ? v.bind(target) : v;
        return async (...args: Parameters<typeof conn.script>) => {
          const reply = await target.script(...args);
          const gate = hold;
          if (gate) {
            hold = undefined;
            readDone();
            await gate;
          }
          return reply;
        };
      },
    });
    const d = createDiscovery({
      redis: held,
      keys: createKeys({ namespace: ns, cluster: conn.topology === "cluster" }),
      reconcileMs: 60_000,
    });
    try {
      await d.start();
      assert.equal((await d.instances("worker")).length, 1);
      let release!: () => void;
      hold = new Promise<void>((r) => (release = r));
      const reconciling = d.reconcile();
      await read; // Redis answered the read, listing the worker; its answer is held
      const left = new Promise<void>((r) => d.once("leave", () => r()));
      await worker.stop();
      await left;
      release();
      await reconciling;
      assert.deepEqual(d.cachedInstances("worker"), [], "the stale read did not resurrect the worker");
      // A read sent after the leave is the truth again.
      await d.reconcile();
      assert.deepEqual(await d.instances("worker"), []);
    } finally {
      await d.stop();
      await conn.close();
    }
  });

  test("start() against no Redis rejects with a typed error and leaves nothing running", async () => {
    const a = createService({ name: "lonely", redis: { port: 1 }, connectTimeoutMs: 200 });
    await assert.rejects(a.start(), ConnectionError);
    assert.equal(a.state, "stopped");
    await a.stop();
  });

  test("invalid options and names are typed errors with clear messages", () => {
    assert.throws(
      () => createService({ name: "Bad Name" }),
      (e: unknown) => e instanceof ValidationError && e.code === "ERR_INVALID_NAME",
    );
    assert.throws(() => createService({ name: "nodes" }), /reserved/);
    assert.throws(() => createService({ name: "ok", namespace: "a:b" }), /invalid namespace/);
    assert.throws(() => createService({ name: "ok", instanceId: "xyz" }), /instance id/);
    assert.throws(() => createService({ name: "ok", presenceTtlMs: 1000, heartbeatMs: 1000 }), /twice/);
    assert.throws(
      () => createService({ name: "ok", heartbeatMs: -5 } as ServiceOptions),
      (e: unknown) =>
        e instanceof ValidationError && e.code === "ERR_INVALID_OPTIONS" && /heartbeatMs/.test(e.message),
    );
    assert.throws(() => createService({ name: "ok", bogus: 1 } as unknown as ServiceOptions), /bogus/);
  });

  test("garbage on the registry events channel is counted and ignored", async () => {
    const ns = randomNamespace();
    const k = redis.keys(ns);
    const a = svc("sturdy", ns);
    await a.start();
    await a.registry.instances("sturdy");
    for (const junk of [
      "{",
      "null",
      "[]",
      '{"t":"join","svc":"../x"}',
      '{"t":"join","svc":"ok","iid":"nope"}',
      "x".repeat(10000),
    ]) {
      await redis.cli("PUBLISH", k.events(), junk);
    }
    await waitFor(() => a.stats().badRegistryEvents >= 6, { timeoutMs: 2000 });
    assert.equal((await a.registry.instances("sturdy")).length, 1);
  });
  test("discovery across services sends no SCAN and no KEYS to any node", async () => {
    const ns = randomNamespace();
    const a = svc("orders", ns);
    const b = svc("billing", ns);
    const c = svc("shipping", ns);
    await redis.cliAll("CONFIG", "RESETSTAT");
    await Promise.all([a.start(), b.start(), c.start()]);
    await b.registerRoutes(["[get]/v1/bills"]);
    await waitFor(async () => (await a.registry.instances("billing")).length === 1);
    const cold = svc("cold", ns);
    await cold.start();
    assert.deepEqual(await cold.registry.services(), ["billing", "cold", "orders", "shipping"]);
    assert.equal((await cold.registry.instances("shipping"))[0]?.id, c.instanceId);
    assert.equal((await cold.registry.nodes()).length, 4);
    assert.deepEqual(await cold.registry.routes("billing"), { billing: ["[get]/v1/bills"] });
    const stats = (await redis.cliAll("INFO", "commandstats")).join("\n");
    assert.match(stats, /cmdstat_(evalsha|eval|zrangebyscore|zrange|hmget|hget|smembers)/, "discovery ran");
    assert.doesNotMatch(stats, /cmdstat_(scan|keys):/, "no SCAN/KEYS");
  });

  test(
    "every key a service writes carries its {svc} tag: one slot, one master",
    clusterOnly("hash slots"),
    async () => {
      const ns = randomNamespace();
      const k = redis.keys(ns);
      // Health written every second with a 3 s TTL: still there when the keys are listed on a busy machine.
      const a = svc("orders", ns, { healthIntervalMs: 1000 });
      const other = svc("billing", ns);
      await Promise.all([a.start(), other.start()]);
      await a.registerRoutes(["[get]/v1/orders"]);
      await a.healthLog("warn", "tagged");
      a.log.info("tagged");
      await a.log.flush();
      await a.config.set({ port: 1 });
      await a.queue().add({ n: 1 });
      await a.queue("emails").add({ n: 2 }, { delay: 60_000 });
      await waitFor(async () => (await redis.cli("EXISTS", k.health("orders", a.instanceId))) === "1");
      const perNode = await redis.cliAll("KEYS", `${ns}:service:{orders}:*`);
      const keys = perNode.flatMap((x) => x.split("\n")).filter(Boolean);
      for (const key of [
        k.service("orders"),
        k.presence("orders", a.instanceId),
        k.instanceIndex("orders"),
        k.routes("orders"),
        k.health("orders", a.instanceId),
        k.healthLog("orders", a.instanceId),
        k.log("orders"),
        k.configs("orders"),
        k.configActive("orders"),
        k.queuePending("orders"),
      ])
        assert.ok(keys.includes(key), `${key} written (got ${keys.join(", ")})`);
      assert.equal(perNode.filter((x) => x !== "").length, 1, "all on one master");
      const slots = new Set(await Promise.all(keys.map((key) => redis.cli("CLUSTER", "KEYSLOT", key))));
      assert.equal(slots.size, 1, `one slot for ${keys.length} keys`);
      const owner = await redis.nodeFor(k.service("orders"));
      assert.ok((await owner.cli("KEYS", `${ns}:service:{orders}:*`)).split("\n").length === keys.length);
    },
  );
  test(
    "the harness's Cluster checks can fail: an untagged key and a CROSSSLOT reply are caught",
    clusterOnly("hash slots"),
    async () => {
      const ns = randomNamespace();
      const stray = `${ns}:service:orders:untagged`;
      await redis.cli("SET", stray, "1");
      await assert.rejects(redis.checkInvariants(), /carries its \{service\} tag/);
      await redis.cli("DEL", stray);
      // Two keys in different slots in one command.
      await assert.rejects(
        redis.cli("MSET", `${ns}:a`, "1", `${ns}:b`, "2").then((out) => {
          if (out.includes("CROSSSLOT")) throw new Error(out);
        }),
      );
      await assert.rejects(redis.checkInvariants(), /CROSSSLOT/);
      await redis.checkInvariants(); // reset: only the offending test fails
    },
  );
});
