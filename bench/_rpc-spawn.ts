/**
 * Spawning the two sides of the RPC benchmarks (`bench/_rpc-peer.ts`), shared by `rpc.ts` and
 * `rpc-path.ts`.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";

const peer = new URL("./_rpc-peer.ts", import.meta.url).pathname;

/**
 * A peer process (`callee …` or `caller …`); `next()` reads its next stdout line as JSON. With
 * `stdin`, the process's standard input is a pipe (`proc.stdin`) instead of closed.
 */
export function spawnPeer(
  args: string[],
  stdin = false,
): {
  proc: ChildProcess;
  next: () => Promise<Record<string, unknown>>;
} {
  const proc = spawn(process.execPath, ["--import", "tsx", peer, ...args], {
    stdio: [stdin ? "pipe" : "ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: proc.stdout as NodeJS.ReadableStream })[Symbol.asyncIterator]();
  const next = async () => {
    const r = await lines.next();
    if (r.done)
      throw new Error(`${args.slice(0, 2).join(" ")} exited with ${proc.exitCode} before it reported`);
    return JSON.parse(r.value) as Record<string, unknown>;
  };
  return { proc, next };
}
