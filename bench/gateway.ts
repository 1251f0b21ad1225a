/**
 * Gateway throughput and latency (`npm run bench -- gateway [seconds] [connections]`), against a
 * throwaway redis-server: autocannon drives
 *   A. direct to one upstream instance (node:http, no gateway) — the baseline;
 *   B. through the gateway (own process) to 2 upstream instances (own processes, round-robin);
 *   C. through a bare undici reverse proxy to the same 2 instances (the peer: one Node.js hop, nothing else).
 * Same request (`GET /v1/bench/:id`, small JSON echo), same connections, one run after the other, so the
 * ratio B/A is the cost of the extra hop (routing, header rewriting, undici keep-alive pool, metrics).
 * Every process shares the machine's cores with autocannon: read ratios, not absolute figures.
 */

import { spawn } from "node:child_process";
import { cpus } from "node:os";
import { createInterface } from "node:readline";
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
/** Start `bench/<file>` with args in its own process; resolves with its first JSON line. */
async function startChild(file: string, args: string[]) {
  const proc = spawn(
    process.execPath,
    ["--import", "tsx", new URL(file, import.meta.url).pathname, ...args],
    {
      stdio: ["pipe", "pipe", "inherit"],
    },
  );
  const hello = await new Promise<{ port: number }>((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once("line", (l) => resolve(JSON.parse(l) as { port: number }));
    proc.once("exit", (c) => reject(new Error(`${file} exited with ${c}`)));
  });
  return {
    hello,
    end: async () => {
      proc.stdin?.end();
      if (proc.exitCode === null) await new Promise((r) => proc.once("exit", r));
    },
  };
}
const gw = await startChild("./_gateway-child.ts", [redis.url, ns]);
const bare = await startChild("./_proxy-child.ts", [String(up1.hello.port), String(up2.hello.port)]);

try {
  const direct = `http://127.0.0.1:${up1.hello.port}/v1/bench/1`;
  const viaGw = `http://127.0.0.1:${gw.hello.port}/v1/bench/1`;
  const viaBare = `http://127.0.0.1:${bare.hello.port}/v1/bench/1`;
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
  const c = await run(viaBare);
  const row = (name: string, r: Awaited<ReturnType<typeof autocannon>>) =>
    `| ${name} | ${Math.round(r.requests.average).toLocaleString("en-US")} | ${r.latency.p50} | ${r.latency.p99} | ${r.errors + r.non2xx} |`;
  console.log(
    `\nGateway benchmark: ${seconds} s per run, ${connections} connections, ${cpus().length} CPU(s), Node ${process.version}\n`,
  );
  console.log("| path | req/s | p50 ms | p99 ms | errors+non-2xx |");
  console.log("|---|---:|---:|---:|---:|");
  console.log(row("direct → 1 upstream (baseline)", a));
  console.log(row("redmesh gateway → 2 upstreams", b));
  console.log(row("bare undici proxy → 2 upstreams (floor of one Node hop)", c));
  const ratio = (x: number, y: number) => (x / y).toFixed(2);
  console.log(
    `\nthroughput: gateway/direct ${ratio(b.requests.average, a.requests.average)}×, gateway/bare proxy ${ratio(b.requests.average, c.requests.average)}×, bare proxy/direct ${ratio(c.requests.average, a.requests.average)}×`,
  );
} finally {
  await gw.end();
  await bare.end();
  await up1.end();
  await up2.end();
  await redis.stop();
}
