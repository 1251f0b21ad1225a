import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import {
  aclSetUserCommand,
  createKeys,
  createRedisConnection,
  createService,
  isRedmeshError,
  type RedisHandle,
  type Service,
} from "../../src/index.js";
import { randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

const PASSWORD = "correct-horse-battery-staple";

describe("least-privilege ACL users: each service works fully, and nothing else", () => {
  let redis: TestRedis;
  const ns = randomNamespace("acl");
  const keys = createKeys({ namespace: ns });
  const services: Service[] = [];
  const problems: string[] = [];
  let raw: RedisHandle;

  const user = (service: string, talksTo: string[] = [], produceTo: string[] = []) =>
    redis.cli(...aclSetUserCommand({ keys, service, talksTo, produceTo, password: PASSWORD }));
  const asUser = (service: string) => ({
    url: redis.url,
    username: `redmesh-${service}`,
    password: PASSWORD,
  });

  before(async () => {
    redis = await startRedis();
    assert.equal(await user("orders", ["inventory"], ["billing"]), "OK");
    assert.equal(await user("inventory", ["orders"]), "OK");
    assert.equal(await user("billing"), "OK");
    for (const name of ["orders", "inventory", "billing"]) {
      const svc = createService({ name, namespace: ns, redis: asUser(name), healthIntervalMs: 200 });
      svc.on("error", (e) => problems.push(`${name}: ${e.message}`));
      services.push(svc);
    }
    raw = createRedisConnection({ redis: asUser("orders") });
    raw.on("error", () => undefined);
    await raw.connect();
  });
  after(async () => {
    await raw.close();
    await Promise.all(services.map((s) => s.stop()));
    await redis.stop();
  });

  test("registry, RPC, queues, logs, config and health all work under the service users", async () => {
    const [orders, inventory, billing] = services as [Service, Service, Service];
    inventory.handle("reserve", (p: { sku: string }) => ({ reserved: p.sku }));
    const invoices: unknown[] = [];
    billing.queue().process((body) => {
      invoices.push(body);
    });
    await Promise.all(services.map((s) => s.start()));
    await orders.registerRoutes(["[post]/v1/orders"]);
    await waitFor(async () => (await orders.registry.instances("inventory")).length === 1);
    assert.deepEqual(await orders.call("inventory", "reserve", { sku: "A1" }), { reserved: "A1" });
    await orders.queue("default", { service: "billing" }).add({ invoice: 1 });
    await waitFor(() => invoices.length === 1, { what: "the job processed by billing" });
    orders.log.warn("low stock", { sku: "A1" });
    await orders.log.flush();
    assert.equal(orders.log.stats.dropped, 0);
    await orders.config.set({ maxItems: 3 });
    assert.deepEqual(await orders.config.get(), { maxItems: 3 });
    await orders.writeHealth();
    await new Promise((r) => setTimeout(r, 1200)); // heartbeats, health and reconciliations run
    for (const s of services) {
      const st = s.stats();
      assert.equal(st.heartbeatErrors, 0, `${s.name} heartbeats`);
      assert.ok(st.healthWrites > 0, `${s.name} health snapshots written`);
    }
    assert.match(await redis.cli("XREVRANGE", keys.log("orders"), "+", "-", "COUNT", "1"), /low stock/);
    assert.deepEqual(
      problems.filter((p) => /NOPERM/.test(p)),
      [],
      "no permission error anywhere",
    );
  });

  test("another service's keys and channels, PSUBSCRIBE *, FLUSHALL, CONFIG, DEBUG, KEYS, foreign EVAL: all NOPERM", async () => {
    const denied = async (args: string[], what: string) =>
      assert.rejects(raw.command(args), (e) => {
        assert.ok(
          isRedmeshError(e, "ERR_REDIS") && /NOPERM/.test((e as Error).message),
          `${what}: ${String(e)}`,
        );
        return true;
      });
    await denied(["SET", keys.queuePending("inventory"), "x"], "overwrite inventory's queue key");
    await denied(["HGETALL", keys.configs("billing")], "read billing's config");
    await denied(["XADD", keys.log("billing"), "*", "msg", "forged"], "write billing's log");
    await denied(["GET", keys.queue("inventory", "default", "stats")], "read inventory's queue stats");
    await denied(["PUBLISH", keys.serviceChannel("billing"), "{}"], "publish on billing's channel");
    await denied(
      ["SUBSCRIBE", keys.instanceChannel("billing", "0".repeat(32))],
      "listen on billing's channel",
    );
    await denied(["PSUBSCRIBE", "*"], "PSUBSCRIBE *");
    await denied(["FLUSHALL"], "FLUSHALL");
    await denied(["CONFIG", "GET", "*"], "CONFIG");
    await denied(["DEBUG", "SLEEP", "0"], "DEBUG");
    await denied(["KEYS", "*"], "KEYS");
    await denied(["SCAN", "0"], "SCAN");
    await denied(
      ["EVAL", "return redis.call('DEL', KEYS[1])", "1", keys.configs("billing")],
      "EVAL on a foreign key",
    );
    // What it may do, to be sure the user is the one under test: its own keys.
    assert.equal(await raw.command(["SET", `${keys.servicePrefix("orders")}probe`, "1"]), "OK");
  });
});
