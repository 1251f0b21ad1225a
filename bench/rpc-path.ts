/**
 * RPC critical path at concurrency 1 (`npm run bench -- rpc-path [--rounds=3] [--only=a,b]`): where a
 * round trip's time goes inside the two processes, measured from their system calls instead of from
 * the round trip's wall time, which a shared VM moves by ±25 % from one run to the next.
 *
 * For every system of `bench/rpc.ts` (redmesh, Moleculer, the raw floors) a caller and a callee run a
 * closed loop at c=1 after 5 s of warm-up; for 2 s, `perf record` takes every `read`/`write` of both
 * processes (tracepoints `raw_syscalls:sys_enter/sys_exit`). Per message the trace gives:
 * - **read → write**: from the end of the `read` that brought a message (the request at the callee,
 *   the reply at the caller) to the start of the `write` of what it caused (the reply, the next
 *   request): the process's own time on the round trip's critical path;
 * - **wake → write**: the same from the end of the `epoll_pwait` that woke the process.
 *
 * Work a process does after its `write` (bookkeeping, promise cleanup) is not on the critical path and
 * is not counted; `bench/rpc.ts` reports CPU per call for that. Needs Linux `perf` allowed to read
 * tracepoints (root, or `kernel.perf_event_paranoid` ≤ -1).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startRedis } from "../test/helpers/redis-server.js";
import { spawnPeer } from "./_rpc-spawn.js";

const arg = (name: string) => process.argv.find((a) => a.startsWith(`--${name}=`))?.split("=")[1];
const rounds = Number(arg("rounds") ?? 3);
const traceMs = Number(arg("ms") ?? 2000);
const SYSTEMS = ["redmesh", "moleculer", "raw-node-redis", "raw-ioredis", "raw-envelope"].filter(
  (s) => !arg("only") || arg("only")?.split(",").includes(s),
);
/** x86-64 system call numbers. */
const NR = { read: 0, write: 1, writev: 20, epollPwait: 281, epollWait: 232 } as const;
/** A read at least this long carries a message (a RESP push), not a bare `:1` reply to PUBLISH. */
const MESSAGE_BYTES = 50;

try {
  execFileSync("perf", ["--version"], { stdio: "ignore" });
} catch {
  console.error("rpc-path needs Linux perf (apt-get install linux-perf) with access to tracepoints");
  process.exit(2);
}
if (process.arch !== "x64") {
  console.error(`rpc-path reads x86-64 system call numbers; this is ${process.arch}`);
  process.exit(2);
}

interface Side {
  /** Median µs from the end of a message's read to the next write. */
  readToWrite: number;
  /** Median µs from the wake-up (end of epoll_pwait) to that write. */
  wakeToWrite: number;
  messages: number;
}
interface RoundResult {
  callee: Side;
  caller: Side;
  p50Ms: number;
}

const median = (xs: number[]) => {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor((s.length - 1) / 2)] as number;
};

/**
 * Per process, pair every message read with the next write. `perf script` lines look like
 * `  1234/1234  5678.901234:  raw_syscalls:sys_exit: NR 0 = 297`.
 */
function criticalPath(script: string, pid: number): Side {
  const line = /^\s*(\d+)\/(\d+)\s+([\d.]+):\s+raw_syscalls:(sys_enter|sys_exit): NR (\d+)(?: .*?= (-?\d+))?/;
  const readToWrite: number[] = [];
  const wakeToWrite: number[] = [];
  let woke = Number.NaN;
  let readAt = Number.NaN;
  let wokeForRead = Number.NaN;
  for (const l of script.split("\n")) {
    const m = line.exec(l);
    // The main thread only (its tid is the pid): libuv's and V8's threads do no socket I/O here.
    if (!m || Number(m[1]) !== pid || m[2] !== m[1]) continue;
    const t = Number(m[3]) * 1e6;
    const exit = m[4] === "sys_exit";
    const nr = Number(m[5]);
    if (exit && (nr === NR.epollPwait || nr === NR.epollWait)) woke = t;
    else if (exit && nr === NR.read && Number(m[6]) >= MESSAGE_BYTES && Number.isNaN(readAt)) {
      readAt = t;
      wokeForRead = woke;
    } else if (!exit && (nr === NR.write || nr === NR.writev) && !Number.isNaN(readAt)) {
      readToWrite.push(t - readAt);
      if (!Number.isNaN(wokeForRead)) wakeToWrite.push(t - wokeForRead);
      readAt = Number.NaN;
    }
  }
  return { readToWrite: median(readToWrite), wakeToWrite: median(wakeToWrite), messages: readToWrite.length };
}

async function measure(sys: string, url: string, dir: string): Promise<RoundResult> {
  const callee = spawnPeer(["callee", sys, url]);
  let caller: ReturnType<typeof spawnPeer> | undefined;
  try {
    const hello = await callee.next();
    const plan = { concurrency: [1], ms: traceMs + 1500, rate: 0, warmupMs: 5000, announce: true };
    caller = spawnPeer(["caller", sys, url, JSON.stringify({ ...plan, calleePid: hello.pid })]);
    await caller.next(); // {"measuring":"c1"}
    const data = join(dir, `${sys}.data`);
    const pids = `${hello.pid},${caller.proc.pid}`;
    const secs = String(traceMs / 1000);
    const events = ["-e", "raw_syscalls:sys_enter", "-e", "raw_syscalls:sys_exit"];
    try {
      execFileSync("perf", ["record", "-q", ...events, "-p", pids, "-o", data, "--", "sleep", secs], {
        stdio: ["ignore", "ignore", "pipe"],
      });
    } catch (err) {
      const why = String((err as { stderr?: Buffer }).stderr ?? err).trim();
      throw new Error(
        `perf record failed (it needs access to tracepoints: root, or kernel.perf_event_paranoid ≤ -1): ${why}`,
      );
    }
    const result = await caller.next();
    const script = execFileSync("perf", ["script", "-i", data, "-F", "pid,tid,time,event,trace"], {
      maxBuffer: 1 << 30,
      stdio: ["ignore", "pipe", "ignore"],
    }).toString();
    return {
      callee: criticalPath(script, Number(hello.pid)),
      caller: criticalPath(script, caller.proc.pid as number),
      p50Ms: (result.c1 as { p50: number }).p50,
    };
  } finally {
    callee.proc.kill("SIGKILL");
    caller?.proc.kill("SIGKILL");
  }
}

{
  const redis = await startRedis();
  const dir = mkdtempSync(join(tmpdir(), "rpc-path-"));
  const perRound: Record<string, RoundResult[]> = {};
  try {
    for (let round = 1; round <= rounds; round++) {
      for (const sys of SYSTEMS) {
        await redis.cli("FLUSHALL");
        const r = await measure(sys, redis.url, dir);
        perRound[sys] = [...(perRound[sys] ?? []), r];
        process.stderr.write(`round ${round} ${sys}: ${JSON.stringify(r)}\n`);
      }
    }
  } finally {
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }

  const f0 = (n: number) => (Number.isFinite(n) ? n.toFixed(0) : "–");
  const med = (sys: string, f: (r: RoundResult) => number) => median((perRound[sys] ?? []).map(f));
  const both = (r: RoundResult) => r.callee.wakeToWrite + r.caller.wakeToWrite;
  const rows = [
    "| system | callee read → write µs | callee wake → write µs | caller read → write µs | caller wake → write µs | both wake → write µs | round-trip p50 µs | share in the processes |",
    "|---|---:|---:|---:|---:|---:|---:|---:|",
  ];
  for (const sys of SYSTEMS) {
    const total = med(sys, both);
    const p50 = med(sys, (r) => r.p50Ms * 1000);
    rows.push(
      `| ${sys} | ${f0(med(sys, (r) => r.callee.readToWrite))} | ${f0(med(sys, (r) => r.callee.wakeToWrite))} | ${f0(med(sys, (r) => r.caller.readToWrite))} | ${f0(med(sys, (r) => r.caller.wakeToWrite))} | ${f0(total)} | ${f0(p50)} | ${Number.isFinite(total / p50) ? `${Math.round((100 * total) / p50)} %` : "–"} |`,
    );
  }
  const floors = ["raw-node-redis", "raw-ioredis"].filter((s) => perRound[s]);
  const raw = Math.min(...floors.map((s) => med(s, both)));
  const extra =
    floors.length === 0
      ? []
      : SYSTEMS.filter((s) => !floors.includes(s)).map((s) => `${s} +${f0(med(s, both) - raw)} µs`);
  console.log(
    `\nRPC critical path at c=1 (npm run bench -- rpc-path --rounds=${rounds})\n\nNode ${process.version}; ${traceMs / 1000} s of system calls per system and round after 5 s of warm-up; median of ${rounds} round(s), each the median over its messages.\n\n${rows.join("\n")}\n${extra.length > 0 ? `\n- in-process time over the faster raw floor (both sides, wake → write): ${extra.join(", ")}\n` : ""}- read → write: from the end of the read that brought the message to the start of the write it caused; wake → write counts from the end of epoll_pwait; both: callee + caller wake → write, the median of the rounds' sums. Work after the write is not on the critical path and not counted, but on 2 cores it still competes with Redis and the other process for a CPU.\n- the rest of the round trip is Redis, the kernel and waking each process.`,
  );
}
