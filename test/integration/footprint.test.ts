import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { randomNamespace, startRedis, type TestRedis } from "../helpers/redis-server.js";

const run = promisify(execFile);

/**
 * A fresh process (the module cache is per process) starts an idle service, then reports what it
 * loaded: CommonJS modules from `require.cache`, ES modules through a load hook.
 */
const CHILD = `
import { createRequire, register } from "node:module";
import { MessageChannel } from "node:worker_threads";
const { port1, port2 } = new MessageChannel();
const esm = [];
port1.on("message", (url) => esm.push(url));
port1.unref();
register(
  "data:text/javascript," +
    encodeURIComponent("let port; export function initialize(d) { port = d.port; }" +
      "export async function load(url, ctx, next) { port.postMessage(url); return next(url, ctx); }"),
  { data: { port: port2 }, transferList: [port2] },
);
const [url, ns] = process.argv.slice(1);
const cjs = () => Object.keys(createRequire(import.meta.url).cache);
const count = (re) => cjs().filter((p) => re.test(p)).length;
const { createService } = await import("./src/index.ts");
const s = createService({ name: "footprint", namespace: ns, redis: url });
await s.start();
await new Promise((r) => setTimeout(r, 50));
const out = {
  commands: count(/@redis[\\\\/]client[\\\\/]dist[\\\\/]lib[\\\\/]commands[\\\\/]/),
  topologies: count(/@redis[\\\\/]client[\\\\/]dist[\\\\/]lib[\\\\/](cluster|sentinel)[\\\\/]/),
  otel: cjs().concat(esm).filter((p) => p.includes("@opentelemetry")).length,
};
// Another user of node-redis in the same process gets the whole driver, command table included.
const { createClient } = await import("@redis/client");
const c = createClient({ url });
await c.connect();
await c.set(ns + ":k", "v");
out.reply = await c.get(ns + ":k");
out.commandsAfter = count(/@redis[\\\\/]client[\\\\/]dist[\\\\/]lib[\\\\/]commands[\\\\/]/);
await c.close();
await s.stop();
process.stdout.write(JSON.stringify(out));
`;

describe("an idle service loads only what it uses", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis?.stop();
  });

  test("no OpenTelemetry without an SDK, no command table, no Cluster or Sentinel module", async () => {
    const ns = randomNamespace();
    const { stdout } = await run(
      process.execPath,
      ["--import", "tsx", "--input-type=module", "-e", CHILD, redis.url, ns],
      { cwd: process.cwd() },
    );
    const got = JSON.parse(stdout) as Record<string, number | string>;
    assert.equal(got.otel, 0, "@opentelemetry/api is not loaded while nothing registered with it");
    assert.equal(got.topologies, 0, "a standalone connection loads no Cluster or Sentinel module");
    assert.ok((got.commands as number) < 20, `the handshake's commands only (got ${got.commands})`);
    assert.equal(got.reply, "v", "createClient() in the same process still has every command");
    assert.ok((got.commandsAfter as number) > 400, `the whole table once asked for (${got.commandsAfter})`);
  });
});
