/** Child processes running TypeScript fixtures (through tsx), for crash and interop tests. */
import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";

/** A fixture process and the first JSON line it printed. */
export interface Child<T> {
  proc: ChildProcess;
  hello: T;
  /** SIGKILL and wait for exit. */
  kill(): Promise<void>;
  /** Close stdin (fixtures stop gracefully) and wait for exit. */
  end(): Promise<void>;
}

const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of children) c.kill("SIGKILL");
});

/** Start `test/fixtures/<name>.ts` with args; resolves once it prints its first JSON line. */
export async function startFixture<T>(name: string, args: string[], timeoutMs = 15_000): Promise<Child<T>> {
  const file = new URL(`../fixtures/${name}.ts`, import.meta.url).pathname;
  const proc = spawn(process.execPath, ["--import", "tsx", file, ...args], {
    stdio: ["pipe", "pipe", "inherit"],
  });
  children.add(proc);
  proc.once("exit", () => children.delete(proc));
  const rl = createInterface({ input: proc.stdout! });
  const hello = await new Promise<T>((resolve, reject) => {
    const t = setTimeout(
      () => reject(new Error(`fixture ${name} printed nothing within ${timeoutMs} ms`)),
      timeoutMs,
    );
    rl.once("line", (line) => {
      clearTimeout(t);
      try {
        resolve(JSON.parse(line) as T);
      } catch (err) {
        reject(err);
      }
    });
    proc.once("exit", (code) => {
      clearTimeout(t);
      reject(new Error(`fixture ${name} exited with ${code} before it was ready`));
    });
  });
  const exited = () =>
    proc.exitCode !== null || proc.signalCode !== null
      ? Promise.resolve()
      : once(proc, "exit").then(() => undefined);
  return {
    proc,
    hello,
    async kill() {
      proc.kill("SIGKILL");
      await exited();
    },
    async end() {
      proc.stdin?.end();
      await exited();
    },
  };
}
