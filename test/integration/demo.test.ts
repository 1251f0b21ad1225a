import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { ExitCode, runCli } from "../../src/cli/program.js";
import { randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

/** Start the demo script against `redis` in a fresh namespace, collecting stdout and stderr. */
function startDemo(redis: TestRedis, args: string[] = []): { child: ChildProcess; output: () => string } {
  const chunks: string[] = [];
  const child = spawn(process.execPath, ["--import", "tsx", "examples/demo/main.ts", ...args], {
    env: { ...process.env, REDIS_URL: redis.url, REDMESH_NAMESPACE: randomNamespace("demo") },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d) => chunks.push(String(d)));
  child.stderr?.on("data", (d) => chunks.push(String(d)));
  return { child, output: () => chunks.join("") };
}

function exitOf(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Direct children of `pid` (pgrep -P), or [] when it has none. */
function childrenOf(pid: number): number[] {
  try {
    return execFileSync("pgrep", ["-P", String(pid)], { encoding: "utf8" })
      .split("\n")
      .filter(Boolean)
      .map(Number);
  } catch {
    return []; // pgrep exits 1 when nothing matches
  }
}

/** The pids of a "Child pids: orders 12, inventory 13, …" line. */
function printedPids(text: string): number[] {
  return [...text.matchAll(/^Child pids: (.*)$/gm)].flatMap((m) =>
    [...(m[1] ?? "").matchAll(/ (\d+)/g)].map((x) => Number(x[1])),
  );
}

describe("npm run demo", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  test("runs the whole tour against a given REDIS_URL and exits 0", async () => {
    const t0 = performance.now();
    const { child, output } = startDemo(redis);
    const code = await exitOf(child);
    const text = output();
    assert.equal(code, 0, text);
    assert.ok(performance.now() - t0 < 30_000, `the tour took ${performance.now() - t0} ms`);
    // Not a TTY: no colour codes.
    assert.ok(!text.includes("\u001b["), "no colour codes");
    assert.match(text, /Using the Redis at redis:\/\/127\.0\.0\.1:\d+/);
    // Services discovered.
    assert.match(text, /All 5 processes up and visible in the registry \d+ ms/);
    assert.match(text, /Each service has seen the others join/);
    assert.match(text, /^ {2}orders +\w{8}… +\d+ +.*\[post\]\/v1\/orders/m);
    assert.match(
      text,
      /Gateway at http:\/\/127\.0\.0\.1:\d+, dashboard at http:\/\/127\.0\.0\.1:\d+\/dashboard\//,
    );
    // HTTP 2xx through the gateway.
    assert.match(text, /POST \/v1\/orders ×20: 20× 201; latency p50 [\d.]+ ms/);
    assert.match(text, /GET \/v1\/orders\/:id ×20: 20× 200; latency p50 [\d.]+ ms/);
    assert.match(text, /POST with an unknown sku: 400/);
    // RPC done, over both inventory instances.
    assert.match(text, /orders called inventory\.reserve over RPC: p50 [\d.]+ ms/);
    assert.match(
      text,
      /200 calls of inventory\.stock, 10 in flight: RPC done in [\d.]+ ms .*spread over 2 inventory instances/,
    );
    // Jobs processed.
    assert.match(text, /20 jobs processed by billing, each invoice issued p50 [\d.]+ ms/);
    assert.match(text, /queue now: 0 pending, 0 in flight, 0 dead, 20 processed/);
    assert.match(text, /→ 200, status invoiced \(inv-\d+/);
    // Config change seen live by both inventory instances.
    assert.match(
      text,
      /lowStockThreshold 5 → \d+ \(version 1\): seen by 2\/2 inventory instances after [\d.]+ ms and [\d.]+ ms/,
    );
    assert.match(text, /now says low: true/);
    // Logs tailed from several services, with the warning the config change caused.
    assert.match(text, /Logs tailed: \d+ entries from 3 services \(.*\), [1-9]\d* warning\(s\)/);
    assert.match(text, /inventory +\w{6} warn +low stock/);
    assert.match(text, /billing +\w{6} info +invoice issued/);
    // Crash survived.
    assert.match(text, /10 orders placed right after the kill: 10× 201/);
    assert.match(text, /The dead instance left the registry \d+ ms after the kill/);
    // Graceful stop.
    assert.match(
      text,
      /All 5 processes exited after [\d.]+ ms \(orders 0, inventory 0, inventory SIGKILL, billing 0, gateway 0\); 0 instance\(s\) left/,
    );
    assert.match(text, /^Done\./m);
    const pids = printedPids(text);
    assert.equal(pids.length, 5, text);
    assert.deepEqual(pids.filter(isAlive), [], "no child process is left");
    // No instance is left present (the test may SCAN; the library never does).
    assert.equal(await redis.cli("--scan", "--pattern", "*:presence"), "");
  });

  test("--keep leaves everything running with the dashboard URL, and SIGINT stops it all cleanly", async () => {
    const { child, output } = startDemo(redis, ["--keep"]);
    try {
      const dashboard = await waitFor(() => /^Dashboard: (http:\/\/\S+\/dashboard\/)$/m.exec(output())?.[1], {
        timeoutMs: 30_000,
        what: "the dashboard URL",
      }).catch((err: unknown) => {
        throw new Error(`${String(err)}\n${output()}`);
      });
      const gateway = dashboard.replace(/\/dashboard\/$/, "");
      const page = await fetch(dashboard);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /<html/i);
      const orders = await fetch(`${gateway}/v1/orders`);
      assert.equal(orders.status, 200);
      assert.ok(Array.isArray(await orders.json()));
      const placed = await fetch(`${gateway}/v1/orders`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ sku: "sku-desk", qty: 1 }),
      });
      assert.equal(placed.status, 201);

      const kids = childrenOf(child.pid ?? 0);
      const printed = printedPids(output().slice(output().indexOf("Everything keeps running")));
      assert.equal(printed.length, 4, output()); // one inventory instance was killed in the tour
      for (const pid of printed) assert.ok(kids.includes(pid), `pid ${pid} is a child of the demo`);

      child.kill("SIGINT");
      const code = await exitOf(child);
      assert.equal(code, 0, output());
      assert.match(output(), /SIGINT: stopping everything/);
      assert.match(output(), /0 instance\(s\) left in the registry/);
      assert.deepEqual(kids.filter(isAlive), [], "no child process is left");
      assert.equal(await redis.cli("--scan", "--pattern", "*:presence"), "");
    } finally {
      if (child.exitCode === null && child.signalCode === null) {
        const kids = childrenOf(child.pid ?? 0);
        child.kill("SIGKILL");
        for (const pid of kids) if (isAlive(pid)) process.kill(pid, "SIGKILL");
      }
    }
  });
});

describe("redmesh demo (CLI)", () => {
  const io = (env: Record<string, string>, demoScript: string) => {
    const out = { stdout: "", stderr: "" };
    return {
      out,
      io: {
        stdout: { write: (s: string) => (out.stdout += s), isTTY: false },
        stderr: { write: (s: string) => (out.stderr += s), isTTY: false },
        env,
        execPath: process.execPath,
        demoScript,
      },
    };
  };
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "redmesh-demo-cli-"));
  });
  after(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  test("without the demo script (an npm install): one clear line, exit 1", async () => {
    const { out, io: cliIO } = io({}, join(dir, "absent", "main.ts"));
    const code = await runCli(["demo"], cliIO);
    assert.equal(code, ExitCode.FAILED);
    assert.equal(out.stdout, "");
    assert.match(
      out.stderr,
      /^error: the demo ships only in the redmesh repository \(.*absent\/main\.ts not found\)/,
    );
    assert.equal(out.stderr.trim().split("\n").length, 1);
  });

  test("runs the script with the same node and tsx, passes --keep and only the options given, and its exit code", async () => {
    // A stand-in for the demo (TypeScript, so tsx must be loaded) that reports what it was given.
    const script = join(dir, "fake-demo.ts");
    writeFileSync(
      script,
      `const n: number = Number(process.env.FAKE_EXIT ?? 0);
console.log(JSON.stringify({ argv: process.argv.slice(2), redis: process.env.REDIS_URL, ns: process.env.REDMESH_NAMESPACE }));
process.exitCode = n;
`,
    );
    const ok = io({ REDIS_URL: "redis://example.invalid:1" }, script);
    assert.equal(
      await runCli(["--namespace", "tour-ns", "demo", "--keep"], ok.io),
      ExitCode.OK,
      ok.out.stderr,
    );
    assert.deepEqual(JSON.parse(ok.out.stdout), {
      argv: ["--keep"],
      redis: "redis://example.invalid:1", // from the environment, untouched
      ns: "tour-ns",
    });
    const failing = io({ FAKE_EXIT: "3" }, script);
    assert.equal(await runCli(["demo"], failing.io), ExitCode.FAILED);
    assert.match(failing.out.stderr, /error: the demo ended with exit code 3/);
    assert.equal(JSON.parse(failing.out.stdout).ns, undefined, "the demo keeps its own default namespace");
  });
});
