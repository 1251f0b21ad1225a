/**
 * The tools on a real 3-master + 3-replica Redis Cluster (and on Sentinel): the CLI (`--redis redis-cluster://…`), least-
 * privilege ACL users applied to every node, services running under those users, the gateway and the
 * dashboard. Nothing here may see a CROSSSLOT error.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { ExitCode } from "../../src/cli/program.js";
import { createDashboard } from "../../src/dashboard/index.js";
import { createGateway, type Gateway } from "../../src/gateway/index.js";
import {
  type ClusterConnection,
  createRedisConnection,
  createService,
  type Service,
} from "../../src/index.js";
import { cli } from "../helpers/cli.js";
import { createTestClient } from "../helpers/gateway-client.js";
import {
  startCluster,
  startSentinel,
  type TestCluster,
  type TestSentinel,
} from "../helpers/redis-cluster.js";
import { randomNamespace, waitFor } from "../helpers/redis-server.js";

const PASSWORD = "cluster-horse-battery-staple";

describe("tools on a Redis Cluster: CLI, ACL users on every node, gateway, dashboard", () => {
  let cluster: TestCluster;
  const ns = randomNamespace("tc");
  let url: string;
  const services: Service[] = [];
  const problems: string[] = [];
  const client = createTestClient();
  let gw: Gateway | undefined;
  const g = () => ["--redis", url, "--namespace", ns];

  before(async () => {
    cluster = await startCluster();
    url = `redis-cluster://${cluster.urls.map((u) => u.replace("redis://", "")).join(",")}`;
  });
  after(async () => {
    await client.close();
    await gw?.stop();
    await Promise.all(services.map((s) => s.stop()));
    await cluster.stop();
  });

  test("redmesh acl --apply sets the user on every node, and three services run fully under them", async () => {
    const env = { REDMESH_ACL_PASSWORD: PASSWORD };
    for (const [svc, flags] of [
      ["orders", ["--talks-to", "inventory", "--produce-to", "billing"]],
      // Answering a caller means publishing on its channels: the CLI and the gateway call inventory.
      ["inventory", ["--talks-to", "orders", "redmesh-cli", "gateway"]],
      ["billing", []],
    ] as const) {
      const r = await cli([...g(), "acl", svc, ...flags, "--apply"], env);
      assert.equal(r.code, ExitCode.OK, r.err);
    }
    for (const node of cluster.nodes) {
      const users = await node.cli("ACL", "USERS");
      for (const u of ["redmesh-orders", "redmesh-inventory", "redmesh-billing"])
        assert.ok(users.includes(u), `${u} on node ${node.port}`);
    }
    for (const name of ["orders", "inventory", "billing"]) {
      const svc = createService({
        name,
        namespace: ns,
        redis: { cluster: cluster.urls, username: `redmesh-${name}`, password: PASSWORD },
        healthIntervalMs: 200,
      });
      svc.on("error", (e) => problems.push(`${name}: ${e.message}`));
      services.push(svc);
    }
    const [orders, inventory, billing] = services as [Service, Service, Service];
    inventory.handle("reserve", (p: { sku: string }) => ({ reserved: p.sku }));
    await inventory.route("[get]/v1/stock/:sku", (req) => ({
      body: { sku: req.params.sku, by: "inventory" },
    }));
    const invoices: unknown[] = [];
    billing.queue().process((body) => {
      invoices.push(body);
    });
    await Promise.all(services.map((s) => s.start()));
    assert.deepEqual(await orders.call("inventory", "reserve", { sku: "A1" }), { reserved: "A1" });
    await orders.queue("default", { service: "billing" }).add({ order: 1 });
    await waitFor(() => invoices.length === 1, { what: "the invoice job" });
    await orders.config.set({ limit: 5 } as never);
    orders.log.warn("cluster says hi");
    await orders.log.flush();
    assert.deepEqual(problems, []);
  });

  test("the CLI lists, calls, queues, configures and reads logs through --redis redis-cluster://", async () => {
    const list = await cli([...g(), "--json", "services"]);
    assert.equal(list.code, ExitCode.OK, list.err);
    const names = (JSON.parse(list.out) as Array<{ service: string }>).map((s) => s.service).sort();
    assert.deepEqual(names, ["billing", "inventory", "orders"]);
    const inst = await cli([...g(), "--json", "instances", "inventory"]);
    assert.equal(inst.code, ExitCode.OK, inst.err);
    assert.equal((JSON.parse(inst.out) as unknown[]).length, 1);
    const call = await cli([...g(), "--json", "call", "inventory", "reserve", '{"sku":"B2"}']);
    assert.equal(call.code, ExitCode.OK, call.err);
    assert.deepEqual(JSON.parse(call.out), { reserved: "B2" });
    const add = await cli([...g(), "queue", "add", "billing", '{"order":2}']);
    assert.equal(add.code, ExitCode.OK, add.err);
    const stats = await cli([...g(), "--json", "queue", "stats", "billing"]);
    assert.equal(stats.code, ExitCode.OK, stats.err);
    const cfg = await cli([...g(), "--json", "config", "get", "orders"]);
    assert.equal(cfg.code, ExitCode.OK, cfg.err);
    assert.match(cfg.out, /"limit": 5/);
    const logs = await cli([...g(), "--json", "logs"]);
    assert.equal(logs.code, ExitCode.OK, logs.err);
    assert.match(logs.out, /cluster says hi/);
  });

  test("the gateway routes by the registry on the cluster, and the dashboard reads it", async () => {
    gw = createGateway({ redis: { cluster: cluster.urls }, namespace: ns, port: 0 });
    await gw.start();
    await waitFor(() => gw?.routes().some((r) => r.path.includes("/v1/stock")) ?? false, {
      what: "the route table",
    });
    const res = await client.req(`${gw.url}/v1/stock/C3`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.json(), { sku: "C3", by: "inventory" });

    const dash = createDashboard({ redis: url, namespace: ns });
    try {
      await dash.start();
      const snap = await dash.snapshot();
      assert.deepEqual(snap.errors, []);
      const listed = snap.services.map((s) => s.name);
      for (const name of ["billing", "inventory", "orders", "gateway"])
        assert.ok(listed.includes(name), name);
      assert.equal(snap.queues.available, true);
    } finally {
      await dash.stop();
    }
  });

  test("every node-local command reaches every node; keys of one service share one slot", async () => {
    const conn = createRedisConnection({ redis: { cluster: cluster.urls } }) as ClusterConnection;
    conn.on("error", () => undefined);
    await conn.connect();
    try {
      const pongs = await conn.commandOnEveryNode(["PING"]);
      assert.equal(pongs.length, 6);
      assert.ok(pongs.every((p) => p.reply === "PONG"));
      const keys = services[0]?.keys;
      assert.ok(keys?.cluster);
      const slots = new Set<number>();
      for (const k of [keys.presence("orders", "a".repeat(32)), keys.log("orders"), keys.configs("orders")])
        slots.add(Number(await conn.command(["CLUSTER", "KEYSLOT", k])));
      assert.equal(slots.size, 1);
    } finally {
      await conn.close();
    }
  });
});

describe("tools on a Sentinel set-up: services and the CLI through redis-sentinel://", () => {
  let st: TestSentinel;
  const ns = randomNamespace("ts");
  const services: Service[] = [];

  before(async () => {
    st = await startSentinel();
  });
  after(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await st.stop();
  });

  test("a service registers and answers; the CLI finds and calls it", async () => {
    const url = `redis-sentinel://${st.sentinels.map((s) => `${s.host}:${s.port}`).join(",")}/${st.name}`;
    const svc = createService({ name: "inventory", namespace: ns, redis: url });
    services.push(svc);
    svc.handle("reserve", (p: { sku: string }) => ({ reserved: p.sku }));
    await svc.start();
    assert.equal(svc.redis.topology, "sentinel");
    assert.equal(svc.keys.cluster, false, "no hash tags outside a Cluster");
    const g = ["--redis", url, "--namespace", ns];
    const list = await cli([...g, "--json", "services"]);
    assert.equal(list.code, ExitCode.OK, list.err);
    assert.deepEqual(
      (JSON.parse(list.out) as Array<{ service: string }>).map((s) => s.service),
      ["inventory"],
    );
    const call = await cli([...g, "--json", "call", "inventory", "reserve", '{"sku":"S1"}']);
    assert.equal(call.code, ExitCode.OK, call.err);
    assert.deepEqual(JSON.parse(call.out), { reserved: "S1" });
    // The data lives on the primary the sentinels name.
    const primary = (await st.masterPort()) === st.primary.port ? st.primary : st.replica;
    assert.match(await primary.cli("SMEMBERS", svc.keys.serviceIndex()), /inventory/);
  });
});
