/**
 * Find a Redis for the demo: `REDIS_URL` (default redis://127.0.0.1:6379) when something answers
 * there; otherwise, when `redis-server` is on PATH, a throwaway one on a free loopback port.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { createRedisConnection } from "../../src/index.js";

/** The Redis the demo uses, and how to let it go. */
export interface DemoRedis {
  url: string;
  /** True when the demo started this server itself. */
  started: boolean;
  stop(): Promise<void>;
}

async function answers(url: string): Promise<boolean> {
  const c = createRedisConnection({ redis: { url, connectTimeoutMs: 700 } });
  try {
    await c.connect();
    return (await c.command(["PING"])) === "PONG";
  } catch {
    return false;
  } finally {
    await c.close();
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const a = s.address();
      const port = typeof a === "object" && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Use `REDIS_URL` or start a throwaway redis-server. */
export async function findOrStartRedis(say: (line: string) => void): Promise<DemoRedis> {
  const url = process.env.REDIS_URL ?? "redis://127.0.0.1:6379";
  if (await answers(url)) {
    say(`Using the Redis at ${url}.`);
    return { url, started: false, stop: async () => {} };
  }
  say(`Nothing answers at ${url}; starting a throwaway redis-server…`);
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "redmesh-demo-"));
  const child = spawn(
    "redis-server",
    ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir],
    { stdio: "ignore" },
  );
  const spawned = await new Promise<boolean>((resolve) => {
    child.once("spawn", () => resolve(true));
    child.once("error", () => resolve(false));
  });
  if (!spawned) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(
      "no Redis answers and redis-server is not on PATH: install Redis (e.g. `sudo apt-get install redis-server`) or set REDIS_URL",
    );
  }
  const local = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 200 && !(await answers(local)); i++) await sleep(25);
  say(`Started redis-server (pid ${child.pid}) at ${local}; it goes away when the demo ends.`);
  return {
    url: local,
    started: true,
    async stop() {
      child.kill("SIGKILL");
      await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.once("exit", r)));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
