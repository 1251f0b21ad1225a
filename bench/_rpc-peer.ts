/**
 * One side of the RPC benchmark (`bench/rpc.ts` spawns these): `callee <system> <redisUrl>` serves
 * an echo; `caller <system> <redisUrl> <plan-json>` drives it and prints one JSON line of results.
 * Systems: redmesh, moleculer, hydra, raw-node-redis, raw-ioredis, raw-envelope.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";

const require = createRequire(import.meta.url);
const [role, system, url, planJson] = process.argv.slice(2) as [string, string, string, string?];
const BODY = { a: 1, s: "hello" };
const ready = (extra: Record<string, unknown> = {}) =>
  process.stdout.write(`${JSON.stringify({ ready: true, pid: process.pid, ...extra })}\n`);

type Send = (body: unknown) => Promise<unknown>;

/** A publishing and a subscribing node-redis client, connected, without per-command timeouts. */
async function nodeRedisPair() {
  const { createClient } = await import("@redis/client");
  const opts = { url, commandOptions: { timeout: 0 } } as Parameters<typeof createClient>[0];
  const pub = createClient(opts);
  const sub = createClient(opts);
  await pub.connect();
  await sub.connect();
  return { pub, sub };
}

async function callee(): Promise<void> {
  switch (system) {
    case "redmesh": {
      const { createService } = await import("../src/index.js");
      const s = createService({
        name: "becho",
        namespace: "bench",
        redis: url,
        coalesce: process.env.RM_COALESCE !== "0",
      });
      s.handle("echo", (b) => b);
      await s.start();
      break;
    }
    case "moleculer": {
      const { ServiceBroker } = require("moleculer");
      const broker = new ServiceBroker({ nodeID: "callee", transporter: url, logger: false });
      broker.createService({ name: "echo", actions: { echo: (ctx: { params: unknown }) => ctx.params } });
      await broker.start();
      break;
    }
    case "hydra": {
      const hydra = require("hydra");
      await hydra.init({
        hydra: { serviceName: "hecho", serviceIP: "127.0.0.1", servicePort: 0, redis: { url } },
      });
      await hydra.registerService();
      hydra.on("message", (msg: { bdy: unknown }) => {
        hydra.sendReplyMessage(msg, hydra.createUMFMessage({ bdy: msg.bdy }));
      });
      break;
    }
    case "raw-node-redis": {
      const { pub, sub } = await nodeRedisPair();
      await sub.subscribe("raw:req", (m: string) => {
        void pub.publish(`raw:rep:${m.slice(0, m.indexOf(":"))}`, m);
      });
      break;
    }
    case "raw-envelope": {
      // What every RPC with a JSON envelope does at least: parse the request, answer with a new one.
      const { pub, sub } = await nodeRedisPair();
      await sub.subscribe("rawenv:req", (t: string) => {
        const m = JSON.parse(t) as { frm: string; mid: string; bdy: unknown };
        void pub.publish(
          `rawenv:rep:${m.frm}`,
          JSON.stringify({ rmid: m.mid, typ: "rpc-result", bdy: m.bdy }),
        );
      });
      break;
    }
    case "raw-ioredis": {
      const Redis = require("ioredis");
      const pub = new Redis(url);
      const sub = new Redis(url);
      await sub.subscribe("raw:req");
      sub.on("message", (_ch: string, m: string) => {
        void pub.publish(`raw:rep:${m.slice(0, m.indexOf(":"))}`, m);
      });
      break;
    }
    default:
      throw new Error(`unknown system ${system}`);
  }
  ready();
}

async function makeSender(): Promise<{ send: Send; close: () => Promise<void> }> {
  switch (system) {
    case "redmesh": {
      const { createService } = await import("../src/index.js");
      const s = createService({
        name: "bcaller",
        namespace: "bench",
        redis: url,
        coalesce: process.env.RM_COALESCE !== "0",
      });
      await s.start();
      await s.registry.instances("becho");
      return {
        send: (b) => s.call("becho", "echo", b),
        close: () => {
          if (process.env.RM_STATS) process.stderr.write(`${JSON.stringify(s.stats().messaging)}\n`);
          return s.stop();
        },
      };
    }
    case "moleculer": {
      const { ServiceBroker } = require("moleculer");
      const broker = new ServiceBroker({ nodeID: "caller", transporter: url, logger: false });
      await broker.start();
      await broker.waitForServices(["echo"]);
      return { send: (b) => broker.call("echo.echo", b), close: () => broker.stop() };
    }
    case "hydra": {
      const hydra = require("hydra");
      await hydra.init({
        hydra: { serviceName: "hcaller", serviceIP: "127.0.0.1", servicePort: 0, redis: { url } },
      });
      await hydra.registerService();
      const iid = hydra.getInstanceID();
      const pending = new Map<string, (v: unknown) => void>();
      hydra.on("message", (msg: { rmid?: string; bdy: unknown }) => {
        const r = msg.rmid === undefined ? undefined : pending.get(msg.rmid);
        if (r) {
          pending.delete(msg.rmid as string);
          r(msg.bdy);
        }
      });
      return {
        send: (b) =>
          new Promise((resolve) => {
            const m = hydra.createUMFMessage({ to: "hecho:/", frm: `${iid}@hcaller:/`, bdy: b });
            pending.set(m.mid, resolve);
            hydra.sendMessage(m);
          }),
        close: () => hydra.shutdown(),
      };
    }
    case "raw-envelope": {
      const me = `c${process.pid}`;
      const pending = new Map<string, (v: unknown) => void>();
      let n = 0;
      const { pub, sub } = await nodeRedisPair();
      await sub.subscribe(`rawenv:rep:${me}`, (t: string) => {
        const m = JSON.parse(t) as { rmid: string; bdy: unknown };
        const r = pending.get(m.rmid);
        if (r) {
          pending.delete(m.rmid);
          r(m.bdy);
        }
      });
      return {
        send: (b) =>
          new Promise((resolve) => {
            const mid = `${me}-${++n}`;
            pending.set(mid, resolve);
            void pub.publish(
              "rawenv:req",
              JSON.stringify({ to: "becho:/echo", frm: me, mid, typ: "rpc", dl: Date.now() + 10000, bdy: b }),
            );
          }),
        close: async () => {
          pub.destroy();
          sub.destroy();
        },
      };
    }
    case "raw-node-redis":
    case "raw-ioredis": {
      const me = `c${process.pid}`;
      const pending = new Map<string, (v: unknown) => void>();
      let n = 0;
      const onReply = (m: string) => {
        const bar = m.indexOf("|");
        const id = m.slice(0, bar);
        const r = pending.get(id);
        if (r) {
          pending.delete(id);
          r(JSON.parse(m.slice(bar + 1)));
        }
      };
      let publish: (m: string) => void;
      let close: () => Promise<void>;
      if (system === "raw-node-redis") {
        const { pub, sub } = await nodeRedisPair();
        await sub.subscribe(`raw:rep:${me}`, onReply);
        publish = (m) => void pub.publish("raw:req", m);
        close = async () => {
          pub.destroy();
          sub.destroy();
        };
      } else {
        const Redis = require("ioredis");
        const pub = new Redis(url);
        const sub = new Redis(url);
        await sub.subscribe(`raw:rep:${me}`);
        sub.on("message", (_c: string, m: string) => onReply(m));
        publish = (m) => void pub.publish("raw:req", m);
        close = async () => {
          pub.disconnect();
          sub.disconnect();
        };
      }
      return {
        send: (b) =>
          new Promise((resolve) => {
            const id = `${me}:${++n}`;
            pending.set(id, resolve);
            publish(`${id}|${JSON.stringify(b)}`);
          }),
        close,
      };
    }
    default:
      throw new Error(`unknown system ${system}`);
  }
}

/** CPU time (user + system) of a process in µs, from /proc (Linux); NaN elsewhere. */
function procCpuUs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // Fields 14 and 15 (utime, stime) in clock ticks, 100 per second on Linux.
    return ((Number(f[11]) + Number(f[12])) * 1e6) / 100;
  } catch {
    return Number.NaN;
  }
}
let calleePid = 0;
let announce = false;
let redisPid = 0;
const cpuNow = () => ({ me: process.cpuUsage(), callee: procCpuUs(calleePid), redis: procCpuUs(redisPid) });
const cpuPerCall = (t0: ReturnType<typeof cpuNow>, n: number) => {
  const me = process.cpuUsage(t0.me);
  return {
    callerCpuUs: (me.user + me.system) / n,
    calleeCpuUs: (procCpuUs(calleePid) - t0.callee) / n,
    redisCpuUs: (procCpuUs(redisPid) - t0.redis) / n,
  };
};

function pct(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] as number;
}

/**
 * Closed loop: `c` workers, each sends its next request when the previous one is answered. With
 * `keep`, the result also carries every measured latency (ms, sorted).
 */
async function closedLoop(send: Send, c: number, ms: number, keep = false) {
  const lat: number[] = [];
  let stop = false;
  let record = false;
  const worker = async () => {
    while (!stop) {
      const t0 = performance.now();
      await send(BODY);
      if (record) lat.push(performance.now() - t0);
    }
  };
  const workers = Array.from({ length: c }, worker);
  await sleep(Math.min(500, ms / 3)); // warm-up
  record = true;
  // `rpc-path` traces the processes while a cell is measured.
  if (announce) process.stdout.write(`${JSON.stringify({ measuring: `c${c}`, ms })}\n`);
  const t0 = performance.now();
  const c0 = cpuNow();
  await sleep(ms);
  record = false;
  const elapsed = performance.now() - t0;
  const n = lat.length;
  const cpu = cpuPerCall(c0, n);
  stop = true;
  await Promise.all(workers);
  const s = Float64Array.from(lat).sort();
  const base = { rps: n / (elapsed / 1000), p50: pct(s, 0.5), p99: pct(s, 0.99), ...cpu };
  // Rounded to 0.1 µs: a burst's latencies travel as one JSON line.
  return keep ? { ...base, lat: Array.from(s, (v) => Math.round(v * 1e4) / 1e4) } : base;
}

/** Open loop: requests arrive at a fixed rate (spread over each millisecond), whatever the replies do. */
async function fixedRate(send: Send, rate: number, ms: number) {
  const lat: number[] = [];
  let sent = 0;
  let done = 0;
  const t0 = performance.now();
  const inflight = new Set<Promise<unknown>>();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      const due = Math.floor(((now - t0) * rate) / 1000);
      while (sent < due) {
        const scheduled = t0 + (sent * 1000) / rate;
        sent++;
        const p = send(BODY).then(() => {
          lat.push(performance.now() - scheduled);
          done++;
          inflight.delete(p);
        });
        inflight.add(p);
      }
      if (now - t0 < ms) setImmediate(tick);
      else resolve();
    };
    tick();
  });
  const elapsed = performance.now() - t0;
  await Promise.race([Promise.all(inflight), sleep(5000)]);
  const s = Float64Array.from(lat).sort();
  return { rps: done / (elapsed / 1000), offered: rate, p50: pct(s, 0.5), p99: pct(s, 0.99) };
}

async function caller(): Promise<void> {
  const plan = JSON.parse(planJson ?? "{}") as {
    concurrency: number[];
    ms: number;
    rate: number;
    warmupMs?: number;
    calleePid?: number;
    redisPid?: number;
    /** Print a line when each measured closed-loop cell starts (not during the warm-up). */
    announce?: boolean;
    /**
     * After the warm-up, print `{"ready":true}` and then run one c=1 burst per stdin line
     * `{"ms":N}`, answering each with its latencies (`bench/rpc-c1.ts` interleaves systems so).
     */
    serve?: boolean;
  };
  calleePid = plan.calleePid ?? 0;
  redisPid = plan.redisPid ?? 0;
  const { send, close } = await makeSender();
  // Unmeasured: the JIT of both ends settles (most of it at c=1, the batching paths at c=64).
  const warm = plan.warmupMs ?? 0;
  if (warm > 0) {
    await closedLoop(send, 1, (warm * 3) / 4);
    await closedLoop(send, 64, warm / 4);
  }
  announce = plan.announce === true;
  if (plan.serve === true) {
    process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
    for await (const line of createInterface({ input: process.stdin })) {
      const { ms } = JSON.parse(line) as { ms: number };
      process.stdout.write(`${JSON.stringify(await closedLoop(send, 1, ms, true))}\n`);
    }
    await Promise.race([close(), sleep(2000)]);
    process.exit(0);
  }
  const out: Record<string, unknown> = {};
  for (const c of plan.concurrency) out[`c${c}`] = await closedLoop(send, c, plan.ms);
  if (plan.rate > 0) out.fixed = await fixedRate(send, plan.rate, plan.ms);
  process.stdout.write(`${JSON.stringify(out)}\n`);
  await Promise.race([close(), sleep(2000)]);
  process.exit(0);
}

// --cpu-prof writes its profile on a normal exit only.
process.on("SIGINT", () => process.exit(0));
if (role === "callee") await callee();
else await caller();
