import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { after, before, describe, test } from "node:test";
import { randomNamespace, startRedis, type TestRedis } from "../helpers/redis-server.js";

describe("npm run demo", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  test("runs end to end against a given REDIS_URL and exits 0", async () => {
    const out: string[] = [];
    const child = spawn(process.execPath, ["--import", "tsx", "examples/demo/main.ts"], {
      env: { ...process.env, REDIS_URL: redis.url, REDMESH_NAMESPACE: randomNamespace("demo") },
      stdio: ["ignore", "pipe", "pipe"],
    });
    child.stdout.on("data", (d) => out.push(String(d)));
    child.stderr.on("data", (d) => out.push(String(d)));
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    const text = out.join("");
    assert.equal(code, 0, text);
    assert.match(text, /Using the Redis at redis:\/\/127\.0\.0\.1:\d+/);
    assert.match(text, /Each service has seen the other two join/);
    assert.match(text, /billing gone for the observer after \d+ ms/);
    assert.match(text, /0 instance\(s\) of orders left/);
    // No instance is left present (the test may SCAN; the library never does).
    assert.equal(await redis.cli("--scan", "--pattern", "*:presence"), "");
  });
});
