/**
 * Gateway throughput and latency (`npm run bench -- gateway [seconds] [connections]`), against a
 * throwaway redis-server: autocannon drives
 *   A. direct to one upstream instance (node:http, no gateway) — the baseline;
 *   B. through the gateway (own process) to 2 upstream instances (own processes, round-robin).
 * Same request (`GET /v1/bench/:id`, small JSON echo), same connections, one run after the other, so the
 * ratio B/A is the cost of the extra hop (routing, header rewriting, undici keep-alive pool, metrics).
 * Every process shares the machine's cores with autocannon: read ratios, not absolute figures.
 */
import { cpus } from "node:os";
import autocannon from "autocannon";
import { request } from "undici";
import { startFixture } from "../test/helpers/child.js";
import { startRedis } from "../test/helpers/redis-server.js";

const seconds = Number(process.argv[2] ?? 10);
const connections = Number(process.argv[3] ?? 64);
const redis = await startRedis();
const ns = "benchgw";
const routes = JSON.stringify(["[get]/v1/bench/:id"]);
type Hello = { iid: string; port: number };
const up1 = await startFixture<Hello>("gateway-upstream", [redis.url, ns, "bench", routes]);
const up2 = await startFixture<Hello>("gateway-upstream", [redis.url, ns, "bench", routes]);
const gwFile = new URL("./_gateway-child.ts", import.meta.url).pathname;
const { spawn } = await import("node:child_process");
const { createInterface } = await import("node:readline");
const gwProc = spawn(process.execPath, ["--import", "tsx", gwFile, redis.url, ns], {
  stdio: ["pipe", "pipe", "inherit"],
});
const gwHello = await new Promise<{ port: number; routes: number }>((resolve, reject) => {
  createInterface({ input: gwProc.stdout! }).once("line", (l) =>
    resolve(JSON.parse(l) as { port: number; routes: number }),
  );
  gwProc.once("exit", (c) => reject(new Error(`gateway exited with ${c}`)));
});

try {
  const direct = `http://127.0.0.1:${up1.hello.port}/v1/bench/1`;
  const viaGw = `http://127.0.0.1:${gwHello.port}/v1/bench/1`;
  // Sanity: both paths answer 200 and the gateway spreads over both instances.
  const seen = new Set<string>();
  for (let i = 0; i < 4; i++) {
    const r = await request(viaGw);
    if (r.statusCode !== 200) throw new Error(`gateway answered ${r.statusCode}: ${await r.body.text()}`);
    seen.add(((await r.body.json()) as { instance: string }).instance);
  }
  if (seen.size !== 2) throw new Error("the gateway did not reach both upstream instances");
  const run = async (url: string) => {
    await autocannon({ url, connections, duration: 2 }); // warm-up (JIT, keep-alive pools)
    return autocannon({ url, connections, duration: seconds });
  };
  const a = await run(direct);
  const b = await run(viaGw);
  const row = (name: string, r: Awaited<ReturnType<typeof autocannon>>) =>
    `| ${name} | ${Math.round(r.requests.average).toLocaleString("en-US")} | ${r.latency.p50} | ${r.latency.p99} | ${r.errors + r.non2xx} |`;
  console.log(
    `\nGateway benchmark: ${seconds} s per run, ${connections} connections, ${cpus().length} CPU(s), Node ${process.version}\n`,
  );
  console.log("| path | req/s | p50 ms | p99 ms | errors+non-2xx |");
  console.log("|---|---:|---:|---:|---:|");
  console.log(row("direct → 1 upstream (baseline)", a));
  console.log(row("gateway → 2 upstreams", b));
  console.log(
    `\nratio gateway/direct: throughput ${(b.requests.average / a.requests.average).toFixed(2)}×, p50 latency ${(b.latency.p50 / Math.max(a.latency.p50, 0.001)).toFixed(2)}×`,
  );
} finally {
  gwProc.stdin?.end();
  await new Promise((r) => gwProc.once("exit", r));
  await up1.end();
  await up2.end();
  await redis.stop();
}
