import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { after, before, describe, test } from "node:test";
import { ExitCode, runCli } from "../../src/cli/program.js";
import type { DashboardSnapshot } from "../../src/dashboard/index.js";
import { createService } from "../../src/index.js";
import { openSse } from "../helpers/dashboard-sse.js";
import { randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

/** Run the CLI in-process; resolves when it exits. */
function cli(args: string[], signal?: AbortSignal) {
  const r = { code: -1, out: "", err: "" };
  const done = runCli(args, {
    stdout: { write: (s: string) => (r.out += s), isTTY: false },
    stderr: { write: (s: string) => (r.err += s), isTTY: false },
    env: {},
    ...(signal ? { signal } : {}),
  }).then((code) => {
    r.code = code;
    return r;
  });
  return { r, done };
}

describe("redmesh dashboard (CLI)", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  test("serves the page, prints its URL, shows the namespace's services, and ends on interrupt", async () => {
    const ns = randomNamespace("clidash");
    const svc = createService({ name: "inventory", namespace: ns, redis: redis.url });
    await svc.start();
    const stop = new AbortController();
    const run = cli(
      ["--redis", redis.url, "--namespace", ns, "--json", "dashboard", "--port", "0"],
      stop.signal,
    );
    try {
      const printed = await waitFor(() => (run.r.out.includes("}") ? run.r.out : undefined), {
        what: "the URL printed",
      });
      const { url, namespace } = JSON.parse(printed) as { url: string; namespace: string };
      assert.equal(namespace, ns);
      assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/dashboard\/$/, "loopback by default");
      const page = await fetch(url);
      assert.equal(page.status, 200);
      assert.match(await page.text(), /redmesh dashboard/);
      const s = await openSse(`${url}events`);
      const snap = await s.snapshot<DashboardSnapshot>((x) => x.services.length > 0);
      assert.deepEqual(
        snap.services.map((x) => [x.name, x.instances.map((i) => i.id)]),
        [["inventory", [svc.instanceId]]],
      );
      stop.abort();
      const r = await run.done;
      assert.equal(r.code, ExitCode.OK, r.err);
      await s.ended; // the open stream was ended by the shutdown
      await assert.rejects(fetch(url), "the server is closed");
    } finally {
      stop.abort();
      await run.done;
      await svc.stop();
    }
  });

  test("human output, bad port, port in use, Redis down: clear one-line errors and exit codes", async () => {
    const stop = new AbortController();
    const human = cli(["--redis", redis.url, "dashboard", "--port", "0", "--host", "127.0.0.1"], stop.signal);
    await waitFor(() => human.r.out.includes("Ctrl-C"), { what: "banner" });
    assert.match(human.r.out, /dashboard for namespace redmesh at http:\/\/127\.0\.0\.1:\d+\/dashboard\//);
    stop.abort();
    assert.equal((await human.done).code, ExitCode.OK);

    const bad = await cli(["--redis", redis.url, "dashboard", "--port", "80x"], new AbortController().signal)
      .done;
    assert.equal(bad.code, ExitCode.USAGE);
    assert.match(bad.err, /^error: --port must be an integer 0\.\.65535, not "80x"\n$/);

    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, "127.0.0.1", r));
    const port = (busy.address() as { port: number }).port;
    const inUse = await cli(
      ["--redis", redis.url, "dashboard", "--port", String(port)],
      new AbortController().signal,
    ).done;
    await new Promise((r) => busy.close(r));
    assert.equal(inUse.code, ExitCode.USAGE);
    assert.match(inUse.err, /^error: dashboard: cannot listen on 127\.0\.0\.1:\d+: .*EADDRINUSE.*\n$/);

    const down = await cli(
      ["--redis", "redis://127.0.0.1:1", "dashboard", "--port", "0"],
      new AbortController().signal,
    ).done;
    assert.equal(down.code, ExitCode.REDIS_UNAVAILABLE);
    assert.equal(down.err.trim().split("\n").length, 1);
  });

  test("the real binary: Ctrl-C (SIGINT) stops it cleanly with exit code 0", async () => {
    const child = spawn(
      process.execPath,
      ["--import", "tsx", "src/cli/main.ts", "--redis", redis.url, "dashboard", "--port", "0"],
      { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, NO_COLOR: "1" } },
    );
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += String(d)));
    child.stderr.on("data", (d) => (err += String(d)));
    const exited = new Promise<number | null>((r) => child.on("exit", (code) => r(code)));
    try {
      const url = await waitFor(() => /http:\/\/\S+\/dashboard\//.exec(out)?.[0], {
        timeoutMs: 15_000,
        what: `the URL (stderr: ${err})`,
      });
      assert.equal((await fetch(url)).status, 200);
      const s = await openSse(`${url}events`);
      await s.next((e) => e.event === "hello");
      child.kill("SIGINT");
      let timer: NodeJS.Timeout | undefined;
      const code = await Promise.race([
        exited,
        new Promise<string>((r) => {
          timer = setTimeout(() => r("still running 5 s after SIGINT"), 5000);
        }),
      ]);
      clearTimeout(timer);
      assert.equal(code, 0, err);
      await s.ended;
    } finally {
      if (child.exitCode === null) child.kill("SIGKILL");
    }
  });
});
