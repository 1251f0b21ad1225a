/**
 * Throwaway `redis-server` processes for tests (never the shared 6379, never a mock).
 *
 * Each server is a child process on a free loopback port with a temp `--dir`, no persistence unless
 * asked. After PING answers, `INFO server`'s `process_id` is checked against the child's pid, so a
 * test can never write into a Redis it did not start. Servers can be killed (SIGKILL), paused
 * (`CLIENT PAUSE` or SIGSTOP) and restarted on the same port. Every server started is killed when the
 * test process exits, even on a crash.
 */

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";

/** Options for {@link startRedis}. */
export interface StartRedisOptions {
  /** Keep an append-only file (`--appendonly yes --appendfsync everysec`). @default false */
  persistence?: boolean;
  /** Extra `redis-server` arguments. */
  args?: string[];
  /** Port to bind; a free one when absent. */
  port?: number;
  /**
   * Serve TLS only (`--tls-port`, `--port 0`) with these PEM files; `url` becomes `rediss://…` and the
   * harness's own `redis-cli` calls use `--tls --cacert`. See test/helpers/tls.ts for making them.
   */
  tls?: { caFile: string; certFile: string; keyFile: string };
}

/** A running throwaway Redis. */
export interface TestRedis {
  readonly port: number;
  readonly url: string;
  readonly dir: string;
  /** Pid of the current child. */
  readonly pid: number;
  /** Run a command with `redis-cli` against this server; resolves with its trimmed stdout. */
  cli(...args: string[]): Promise<string>;
  /** SIGKILL the server and wait until it is gone. */
  kill(): Promise<void>;
  /** Start it again on the same port and dir (after `kill()`), and wait for PING. */
  restart(): Promise<void>;
  /** `CLIENT PAUSE ms [WRITE|ALL]`. */
  pause(ms: number, mode?: "WRITE" | "ALL"): Promise<void>;
  /** SIGSTOP the process (a hung server: sockets stay open, nothing answers). */
  freeze(): void;
  /** SIGCONT after `freeze()`. */
  thaw(): void;
  /** Stop the server and remove its dir. Idempotent. */
  stop(): Promise<void>;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Whatever happens to the test process, leave no redis-server behind.
  process.on("exit", () => {
    for (const c of live) {
      try {
        c.kill("SIGKILL");
      } catch {
        /* already gone */
      }
    }
  });
}

/** A free TCP port on 127.0.0.1 (and, for Cluster use, whose +10000 is free too when asked). */
export async function freePort(): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const s = createServer();
      s.once("error", reject);
      s.listen(0, "127.0.0.1", () => {
        const addr = s.address();
        const p = typeof addr === "object" && addr ? addr.port : 0;
        s.close(() => resolve(p));
      });
    });
    if (port > 0 && port < 65535 && port !== 6379) return port;
  }
}

function cli(port: number, args: string[], timeoutMs = 5000, tlsArgs: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "redis-cli",
      [...tlsArgs, "-h", "127.0.0.1", "-p", String(port), ...args],
      { timeout: timeoutMs },
      (err, stdout) => {
        if (err) reject(err);
        else resolve(stdout.trim());
      },
    );
  });
}

async function waitForPing(
  port: number,
  child: ChildProcess,
  timeoutMs = 10_000,
  tlsArgs: string[] = [],
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(
        `redis-server on port ${port} exited early (code ${child.exitCode}, signal ${child.signalCode})`,
      );
    }
    try {
      if ((await cli(port, ["PING"], 1000, tlsArgs)) === "PONG") return;
    } catch {
      /* not up yet */
    }
    await sleep(15);
  }
  throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
}

function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** Start a throwaway `redis-server`, verified to be our own child. */
export async function startRedis(options: StartRedisOptions = {}): Promise<TestRedis> {
  installExitHook();
  const dir = mkdtempSync(join(tmpdir(), "redmesh-test-"));
  const port = options.port ?? (await freePort());
  const persistence = options.persistence
    ? ["--appendonly", "yes", "--appendfsync", "everysec", "--save", ""]
    : ["--save", "", "--appendonly", "no"];
  const tls = options.tls;
  const tlsArgs = tls ? ["--tls", "--cacert", tls.caFile] : [];
  const portArgs = tls
    ? [
        "--port",
        "0",
        "--tls-port",
        String(port),
        "--tls-cert-file",
        tls.certFile,
        "--tls-key-file",
        tls.keyFile,
        "--tls-ca-cert-file",
        tls.caFile,
        "--tls-auth-clients",
        "no",
      ]
    : ["--port", String(port)];
  const args = [
    ...portArgs,
    "--bind",
    "127.0.0.1",
    "--dir",
    dir,
    "--daemonize",
    "no",
    "--enable-debug-command",
    "local",
    ...persistence,
    ...(options.args ?? []),
  ];
  let child: ChildProcess | undefined;
  let stopped = false;

  const launch = async () => {
    const c = spawn("redis-server", args, { stdio: ["ignore", "ignore", "pipe"] });
    c.stderr?.resume();
    live.add(c);
    c.once("exit", () => live.delete(c));
    child = c;
    await waitForPing(port, c, 10_000, tlsArgs);
    const info = await cli(port, ["INFO", "server"], 5000, tlsArgs);
    const m = /process_id:(\d+)/.exec(info);
    if (!m || Number(m[1]) !== c.pid) {
      c.kill("SIGKILL");
      throw new Error(`port ${port} is answered by another Redis (pid ${m?.[1]}), not our child ${c.pid}`);
    }
  };
  await launch();

  const self: TestRedis = {
    port,
    url: `${tls ? "rediss" : "redis"}://127.0.0.1:${port}`,
    dir,
    get pid() {
      return child?.pid ?? -1;
    },
    cli: (...a: string[]) => cli(port, a, 5000, tlsArgs),
    async kill() {
      if (!child) return;
      const c = child;
      c.kill("SIGKILL");
      await exited(c);
    },
    async restart() {
      if (child && child.exitCode === null && child.signalCode === null) await self.kill();
      await launch();
    },
    async pause(ms: number, mode: "WRITE" | "ALL" = "ALL") {
      await cli(port, ["CLIENT", "PAUSE", String(ms), mode], 5000, tlsArgs);
    },
    freeze() {
      child?.kill("SIGSTOP");
    },
    thaw() {
      child?.kill("SIGCONT");
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      if (child) {
        child.kill("SIGCONT");
        child.kill("SIGKILL");
        await exited(child);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return self;
}

/** A random namespace for one test, so tests sharing a server never see each other's keys. */
export function randomNamespace(prefix = "t"): string {
  return `${prefix}${randomBytes(6).toString("hex")}`;
}

/** Poll `fn` until it returns a truthy value or `timeoutMs` passes; resolves with the value. */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  { timeoutMs = 5000, intervalMs = 5, what = "condition" } = {},
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ""}`,
      );
    }
    await sleep(intervalMs);
  }
}
