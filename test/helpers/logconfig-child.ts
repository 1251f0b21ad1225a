/** Drive test/fixtures/logconfig-child.ts: a service in its own process that logs on request and reports config changes. */
import { createInterface } from "node:readline";
import { startFixture } from "./child.js";

/** A change event as the child saw it. */
export interface ChildChange {
  /** Epoch ms (µs precision) when the child's `change` event fired. */
  at: number;
  version: string;
  value: unknown;
}

/** A service process. */
export interface LogConfigChild {
  iid: string;
  /** Config changes seen so far, in order. */
  changes: ChildChange[];
  /** Write a log entry in the child and wait until it is flushed to Redis. */
  log(msg: string, level?: "info" | "warn"): Promise<void>;
  /** Stop the service and wait for the process to exit. */
  stop(): Promise<void>;
}

/** Start a service named `name` in a child process. */
export async function startLogConfigChild(
  redisUrl: string,
  ns: string,
  name: string,
): Promise<LogConfigChild> {
  const child = await startFixture<{ iid: string }>("logconfig-child", [redisUrl, ns, name]);
  const changes: ChildChange[] = [];
  const pending = new Map<number, () => void>();
  let seq = 0;
  const stdout = child.proc.stdout;
  if (!stdout) throw new Error("no stdout");
  createInterface({ input: stdout }).on("line", (line) => {
    const m = JSON.parse(line) as { id?: number; event?: string } & ChildChange;
    if (m.event === "change") changes.push({ at: m.at, version: m.version, value: m.value });
    if (m.id !== undefined) {
      pending.get(m.id)?.();
      pending.delete(m.id);
    }
  });
  return {
    iid: child.hello.iid,
    changes,
    log(msg, level = "info") {
      const id = ++seq;
      return new Promise<void>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`child did not log "${msg}" within 5 s`)), 5000);
        pending.set(id, () => {
          clearTimeout(t);
          resolve();
        });
        child.proc.stdin?.write(`${JSON.stringify({ id, op: "log", level, msg })}\n`);
      });
    },
    stop: () => child.end(),
  };
}
