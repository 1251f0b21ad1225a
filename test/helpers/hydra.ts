/** Drive a real Hydra service (test/fixtures/hydra-peer.ts) in a child process. */
import { createInterface } from "node:readline";
import { type Child, startFixture } from "./child.js";

/** A Hydra peer process. */
export interface HydraPeer {
  iid: string;
  child: Child<{ iid: string }>;
  /** Call one of Hydra's public methods in the peer and get its result. */
  call<T = unknown>(op: string, ...args: unknown[]): Promise<T>;
  /** Messages the peer's `message` event delivered, in order. */
  messages: unknown[];
  /** Shut Hydra down and wait for the process to exit. */
  stop(): Promise<void>;
}

/** Start a Hydra service named `name` on `redisUrl` (namespace is always "hydra"). */
export async function startHydraPeer(redisUrl: string, name: string): Promise<HydraPeer> {
  const child = await startFixture<{ iid: string }>("hydra-peer", [redisUrl, name]);
  let seq = 0;
  const pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  const messages: unknown[] = [];
  const proc = child.proc;
  if (!proc.stdout) throw new Error("no stdout");
  createInterface({ input: proc.stdout }).on("line", (line) => {
    let m: { id?: number; result?: unknown; error?: string; event?: string; message?: unknown };
    try {
      m = JSON.parse(line);
    } catch {
      return;
    }
    if (m.event === "message") messages.push(m.message);
    if (m.id === undefined) return;
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new Error(m.error));
    else p.resolve(m.result);
  });
  return {
    iid: child.hello.iid,
    child,
    messages,
    call<T>(op: string, ...args: unknown[]) {
      const id = ++seq;
      return new Promise<T>((resolve, reject) => {
        const t = setTimeout(() => {
          pending.delete(id);
          reject(new Error(`hydra ${op} did not answer within 5 s`));
        }, 5000);
        pending.set(id, {
          resolve: (v) => {
            clearTimeout(t);
            resolve(v as T);
          },
          reject: (e) => {
            clearTimeout(t);
            reject(e);
          },
        });
        proc.stdin?.write(`${JSON.stringify({ id, op, args })}\n`);
      });
    },
    async stop() {
      await child.end();
    },
  };
}
