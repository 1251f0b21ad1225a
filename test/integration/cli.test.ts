import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { ExitCode, runCli } from "../../src/cli/program.js";
import { createService, type Instance, type Service } from "../../src/index.js";
import { freePort, randomNamespace, startRedis, type TestRedis } from "../helpers/redis-server.js";

/** Run the CLI in-process with captured output. */
async function cli(args: string[], env: Record<string, string> = {}) {
  let out = "";
  let err = "";
  const code = await runCli(args, {
    stdout: { write: (s: string) => (out += s), isTTY: false },
    stderr: { write: (s: string) => (err += s), isTTY: false },
    env,
  });
  return { code, out, err };
}

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

  test("the binary itself runs: --help exits 0 and lists the commands", () => {
    const r = spawnSync(process.execPath, ["--import", "tsx", "src/cli/main.ts", "--help"], {
      encoding: "utf8",
    });
    assert.equal(r.status, 0, r.stderr);
    for (const c of ["services", "instances", "health", "routes"]) assert.match(r.stdout, new RegExp(c));
  });
});
