import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { ExitCode } from "../../src/cli/program.js";
import { createService, type Instance, type Service } from "../../src/index.js";
import { cli } from "../helpers/cli.js";
import { freePort, randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

describe("redmesh CLI: registry listings", () => {
  let redis: TestRedis;
  let ns: string;
  const services: Service[] = [];

  before(async () => {
    redis = await startRedis();
    ns = randomNamespace("cli");
    for (const [name, port] of [
      ["orders", 8081],
      ["orders", 8082],
      ["billing", 0],
    ] as const) {
      const s = createService({
        name,
        namespace: ns,
        redis: redis.url,
        version: "2.1.0",
        ip: "10.0.0.1",
        port,
      });
      s.healthCheck("db", () => name !== "billing");
      services.push(s);
    }
    await Promise.all(services.map((s) => s.start()));
    await services[0]?.registerRoutes(["[get]/v1/orders/:id", "[post]/v1/orders"]);
    await Promise.all(services.map((s) => s.writeHealth()));
  });
  after(async () => {
    await Promise.all(services.map((s) => s.stop()));
    await redis.stop();
  });

  const g = () => ["--redis", redis.url, "--namespace", ns];

  test("services lists each service with its live instance count", async () => {
    const r = await cli([...g(), "--json", "services"]);
    assert.equal(r.code, ExitCode.OK, r.err);
    assert.deepEqual(JSON.parse(r.out), [
      { service: "billing", instances: 1, versions: ["2.1.0"] },
      { service: "orders", instances: 2, versions: ["2.1.0"] },
    ]);
    const human = await cli([...g(), "services"]);
    assert.match(human.out, /^SERVICE\s+INSTANCES\s+VERSIONS\n/);
    assert.match(human.out, /orders\s+2\s+2\.1\.0/);
    assert.ok(!human.out.includes("\u001b["), "no colour when stdout is not a TTY");
  });

  test("instances, health and routes, for one service and for all", async () => {
    const one = JSON.parse((await cli([...g(), "--json", "instances", "orders"])).out) as Instance[];
    assert.deepEqual(one.map((i) => i.node?.port).sort(), [8081, 8082]);
    const all = JSON.parse((await cli([...g(), "--json", "instances"])).out) as Instance[];
    assert.equal(all.length, 3);
    const human = await cli([...g(), "instances", "orders"]);
    assert.match(human.out, /10\.0\.0\.1:8081/);

    const health = JSON.parse((await cli([...g(), "--json", "health"])).out) as Array<{
      service: string;
      health: { status: string; checks: Record<string, { ok: boolean }> } | null;
    }>;
    assert.equal(health.length, 3);
    const billing = health.find((h) => h.service === "billing");
    assert.equal(billing?.health?.status, "degraded");
    assert.equal(billing?.health?.checks.db?.ok, false);
    assert.match((await cli([...g(), "health", "billing"])).out, /degraded/);

    const routes = JSON.parse((await cli([...g(), "--json", "routes"])).out) as Record<string, string[]>;
    assert.deepEqual(routes.orders?.sort(), ["[get]/v1/orders/:id", "[post]/v1/orders"]);
    assert.match((await cli([...g(), "routes", "orders"])).out, /orders\s+\[post\]\/v1\/orders/);
  });

  test("REDIS_URL and REDMESH_NAMESPACE come from the environment", async () => {
    const r = await cli(["--json", "services"], { REDIS_URL: redis.url, REDMESH_NAMESPACE: ns });
    assert.equal(r.code, ExitCode.OK);
    assert.equal((JSON.parse(r.out) as unknown[]).length, 2);
  });

  test("exit codes and one-line errors: Redis unreachable, bad input, unknown command", async () => {
    const port = await freePort();
    const t0 = performance.now();
    const down = await cli(["--redis", `redis://127.0.0.1:${port}`, "services"]);
    assert.equal(down.code, ExitCode.REDIS_UNAVAILABLE);
    assert.ok(performance.now() - t0 < 2500, "fails fast on a refused connection");
    assert.match(down.err, /^error: could not connect to Redis at redis:\/\/127\.0\.0\.1:\d+/);
    assert.equal(down.err.trim().split("\n").length, 1, "one line, no stack");

    const bad = await cli([...g(), "instances", "no:such{svc}"]);
    assert.equal(bad.code, ExitCode.USAGE);
    assert.match(bad.err, /invalid service name/);
    assert.doesNotMatch(bad.err, /\n\s+at /);

    assert.equal((await cli([...g(), "frobnicate"])).code, ExitCode.USAGE);
    assert.equal((await cli(["--redis", "http://nope", "services"])).code, ExitCode.USAGE);
    const empty = await cli([...g(), "instances", "nobody"]);
    assert.equal(empty.code, ExitCode.OK);
    assert.match(empty.out, /no live instance of "nobody"/);
  });

  test("logs: merged, level-filtered, searched, and followed until interrupted", async () => {
    const [o1, o2, billing] = services as [Service, Service, Service];
    o1.log.info("order placed", { id: 1 });
    o2.log.warn("stock low", { sku: "A1" });
    billing.log.error("card declined", { id: 1 });
    billing.log.debug("retrying");
    await Promise.all(services.map((s) => s.log.flush()));

    const all = await cli([...g(), "--json", "logs"]);
    assert.equal(all.code, ExitCode.OK, all.err);
    const entries = all.out
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { msg: string; service: string });
    for (const m of ["order placed", "stock low", "card declined"])
      assert.ok(
        entries.some((e) => e.msg === m),
        m,
      );
    assert.ok(!entries.some((e) => e.msg === "retrying"), "debug is below the services' level threshold");
    const warn = await cli([...g(), "--json", "logs", "--level", "warn"]);
    assert.deepEqual(
      warn.out
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { msg: string }).msg)
        .sort(),
      ["card declined", "stock low"],
    );
    const only = await cli([...g(), "logs", "orders"]);
    assert.match(only.out, /INFO\s+orders\/\w{8} order placed/);
    assert.doesNotMatch(only.out, /card declined/);
    const grep = await cli([...g(), "--json", "logs", "billing", "--grep", "DECLINED"]);
    assert.equal(grep.out.trim().split("\n").length, 1);
    assert.equal((await cli([...g(), "logs", "--level", "loud"])).code, ExitCode.USAGE);
    assert.equal((await cli([...g(), "logs", "--since", "yesterday-ish"])).code, ExitCode.USAGE);

    const stop = new AbortController();
    const following = cli(
      [...g(), "logs", "-f", "orders", "--since", "0s"],
      {},
      {
        signal: stop.signal,
        onOut: (text) => text.includes("live entry") && stop.abort(),
      },
    );
    await new Promise((r) => setTimeout(r, 200));
    o1.log.info("live entry");
    await o1.log.flush();
    const f = await following;
    assert.equal(f.code, ExitCode.OK, f.err);
    assert.match(f.out, /live entry/);
  });

  test("config: set inline and from a file, get, list, history, rollback; running instances see it", async () => {
    const orders = services[0] as Service;
    const changes: unknown[] = [];
    orders.config.on("change", (_old, value) => changes.push(value));
    const none = await cli([...g(), "config", "get", "orders"]);
    assert.equal(none.code, ExitCode.NOT_FOUND, none.err);
    const set1 = await cli([...g(), "--json", "config", "set", "orders", '{"maxItems":5}']);
    assert.equal(set1.code, ExitCode.OK, set1.err);
    assert.equal((JSON.parse(set1.out) as { version: string }).version, "1");
    const set2 = await cli(
      [...g(), "config", "set", "orders", "--file", "cfg.json"],
      {},
      {
        files: { "cfg.json": '{"maxItems":9}' },
      },
    );
    assert.match(set2.out, /version 2 is active \(was 1\)/);
    await waitFor(() => changes.length === 2, { what: "both changes seen by the running instance" });
    assert.deepEqual(changes.at(-1), { maxItems: 9 });

    const got = JSON.parse((await cli([...g(), "--json", "config", "get", "orders"])).out) as {
      version: string;
      value: unknown;
    };
    assert.deepEqual(got, { service: "orders", version: "2", active: true, value: { maxItems: 9 } });
    assert.deepEqual(JSON.parse((await cli([...g(), "--json", "config", "list", "orders"])).out), [
      { version: "1", active: false },
      { version: "2", active: true },
    ]);
    assert.match((await cli([...g(), "config", "history", "orders"])).out, /2\s+yes\s+\{"maxItems":9\}/);
    assert.equal((await cli([...g(), "config", "rollback", "orders", "1"])).code, ExitCode.OK);
    await waitFor(() => changes.length === 3, { what: "rollback seen" });
    assert.deepEqual(changes.at(-1), { maxItems: 5 });
    assert.match((await cli([...g(), "config", "get", "orders", "--version", "2"])).out, /"maxItems": 9/);

    assert.equal((await cli([...g(), "config", "set", "orders", "{nope"])).code, ExitCode.USAGE);
    assert.equal((await cli([...g(), "config", "set", "orders"])).code, ExitCode.USAGE);
    assert.equal((await cli([...g(), "config", "rollback", "orders", "77"])).code, ExitCode.NOT_FOUND);
  });

  test("call, send and broadcast through a short-lived CLI instance", async () => {
    const [o1, o2] = services as [Service, Service];
    for (const o of [o1, o2]) o.handle("echo", (p: unknown) => ({ echoed: p, by: o.instanceId }));
    o1.handle("fail", () => {
      throw Object.assign(new Error("out of stock"), { code: "ERR_OUT_OF_STOCK" });
    });
    const r = await cli([...g(), "--json", "call", "orders", "echo", '{"x":1}']);
    assert.equal(r.code, ExitCode.OK, r.err);
    assert.deepEqual((JSON.parse(r.out) as { echoed: unknown }).echoed, { x: 1 });
    const human = await cli([...g(), "call", "orders", "echo", "[1,2]"]);
    assert.match(human.out, /"echoed": \[/);
    assert.match(human.out, /\(\d+\.\d ms\)/);
    const failed = await cli([...g(), "call", `${o1.instanceId}@orders`, "fail"]);
    assert.equal(failed.code, ExitCode.FAILED);
    assert.match(failed.err, /^error: out of stock\n$/);
    assert.equal((await cli([...g(), "call", "nobody", "x", "--timeout", "500"])).code, ExitCode.FAILED);
    assert.equal((await cli([...g(), "call", "orders", "echo", "{bad"])).code, ExitCode.USAGE);

    const got: unknown[] = [];
    for (const o of [o1, o2]) o.on("message", (m) => got.push(m.body));
    const sent = await cli([...g(), "--json", "send", "orders", '{"hello":1}']);
    assert.equal(sent.code, ExitCode.OK, sent.err);
    const b = await cli([...g(), "broadcast", "orders", '{"reload":true}']);
    assert.equal(b.code, ExitCode.OK, b.err);
    await waitFor(() => got.length === 3, { what: "one sent + two broadcast messages" });
    // The CLI's own instance left again.
    assert.equal((await services[2]?.registry.instances("redmesh-cli"))?.length, 0);
  });

  test("queue add, stats, dead and redrive", async () => {
    const billing = services[2] as Service;
    const q = billing.queue("invoices");
    const handled: unknown[] = [];
    q.process((body) => {
      if ((body as { fail?: boolean }).fail) throw new Error("printer on fire");
      handled.push(body);
    });
    const add = await cli([...g(), "--json", "queue", "add", "billing", '{"n":1}', "--queue", "invoices"]);
    assert.equal(add.code, ExitCode.OK, add.err);
    assert.equal((JSON.parse(add.out) as Array<{ added: boolean }>)[0]?.added, true);
    const bad = await cli([
      ...g(),
      "queue",
      "add",
      "billing",
      '{"fail":true}',
      "--queue",
      "invoices",
      "--attempts",
      "1",
    ]);
    assert.match(bad.out, /job \S+ added/);
    await waitFor(
      async () => {
        const st = JSON.parse(
          (await cli([...g(), "--json", "queue", "stats", "billing", "--queue", "invoices"])).out,
        ) as {
          processed: number;
          dead: number;
        };
        return st.processed === 1 && st.dead === 1;
      },
      { what: "one processed, one dead" },
    );
    assert.match(
      (await cli([...g(), "queue", "stats", "billing", "--queue", "invoices"])).out,
      /billing\/invoices\s+0\s+0\s+0\s+1\s+1/,
    );
    const dead = JSON.parse(
      (await cli([...g(), "--json", "queue", "dead", "billing", "--queue", "invoices"])).out,
    ) as Array<{
      reason: string;
    }>;
    assert.equal(dead.length, 1);
    assert.match(dead[0]?.reason ?? "", /printer on fire/);
    await q.stop();
    const re = await cli([...g(), "--json", "queue", "redrive", "billing", "--queue", "invoices"]);
    assert.equal((JSON.parse(re.out) as { redriven: number }).redriven, 1);
    const after = JSON.parse(
      (await cli([...g(), "--json", "queue", "stats", "billing", "--queue", "invoices"])).out,
    ) as {
      pending: number;
      dead: number;
    };
    assert.deepEqual([after.pending, after.dead], [1, 0]);
    assert.equal(
      (await cli([...g(), "queue", "add", "billing", "--priority", "urgent"])).code,
      ExitCode.USAGE,
    );
    assert.equal((await cli([...g(), "queue", "add", "billing", "--delay", "-5"])).code, ExitCode.USAGE);
  });

  test("gateway runs until interrupted and routes by the registry", async () => {
    // billing advertises no HTTP port, so the gateway reaches its route over RPC.
    const billing = services[2] as Service;
    await billing.route("[get]/v1/ping", () => ({ body: { pong: billing.instanceId } }));
    const stop = new AbortController();
    let url = "";
    const run = cli(
      [...g(), "--json", "gateway", "--port", "0"],
      {},
      {
        signal: stop.signal,
        onOut: (text) => {
          const m = /"url":"([^"]+)"/.exec(text);
          if (m?.[1]) url = m[1];
        },
      },
    );
    try {
      await waitFor(() => url !== "", { what: "the gateway URL" });
      let last = "";
      await waitFor(
        async () => {
          const res = await fetch(`${url}/v1/ping`);
          last = `${res.status} ${await res.text()}`;
          return res.status === 200;
        },
        { what: "the route through the gateway" },
      ).catch((e: unknown) => {
        throw new Error(`${(e as Error).message}; last answer: ${last}`);
      });
      assert.match(last, new RegExp(billing.instanceId));
    } finally {
      stop.abort();
    }
    const r = await run;
    assert.equal(r.code, ExitCode.OK, r.err);
  });

  test("acl: prints the rules, or applies them; the password comes from the environment", async () => {
    const env = { REDMESH_ACL_PASSWORD: "0123456789abcdef-secret" };
    const shown = await cli([...g(), "acl", "orders", "--talks-to", "billing"], env);
    assert.equal(shown.code, ExitCode.OK, shown.err);
    assert.match(shown.out, /^ACL SETUSER redmesh-orders reset on '>\*{8}' resetkeys resetchannels -@all /);
    assert.ok(!shown.out.includes("0123456789abcdef-secret"), "the password is never printed");
    assert.match(shown.out, new RegExp(`'~${ns}:service:orders:\\*'`));
    assert.match(shown.out, new RegExp(`'&${ns}:service:mc:billing:\\*'`));
    assert.equal((await cli([...g(), "acl", "orders"])).code, ExitCode.USAGE, "no password");
    const applied = await cli([...g(), "--json", "acl", "billing", "--apply"], env);
    assert.equal(applied.code, ExitCode.OK, applied.err);
    assert.deepEqual(JSON.parse(applied.out), { user: "redmesh-billing", service: "billing", applied: true });
    assert.match(await redis.cli("ACL", "LIST"), /user redmesh-billing on .*~\S+:service:billing:\*/);
  });

  test("the binary itself runs: --help exits 0 and lists the commands", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "--help"], {
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    for (const c of ["services", "instances", "health", "routes"]) assert.match(r.stdout, new RegExp(c));
  });
});
