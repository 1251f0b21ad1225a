/**
 * The redmesh tour (`npm run demo`, or `redmesh demo` from the repository): an orders, an inventory
 * (two instances) and a billing service plus the API gateway, each a separate process on one Redis.
 * HTTP goes through the gateway, orders calls inventory over RPC and queues invoice jobs for billing,
 * a config change reaches every inventory instance live, the logs of all services are tailed, one
 * instance is SIGKILLed and the mesh routes around it. Every step says what was measured.
 *
 * `--keep`: leave everything running after the tour, print the gateway and dashboard URLs, and stop
 * everything gracefully on Ctrl-C (SIGINT) or SIGTERM.
 *
 * Environment: REDIS_URL (default redis://127.0.0.1:6379; a throwaway redis-server is started when
 * nothing answers there), REDMESH_NAMESPACE (default "redmesh-demo"), NO_COLOR.
 *
 * Shutdown order: the tour's own client service, then the services (stdin closed: each drains and
 * deregisters), then the gateway (SIGTERM: it drains HTTP), then the observer connection, then the
 * throwaway Redis. Any child still there after its grace period is SIGKILLed, and on every way out
 * (a failed step, an exception, a signal) no child process is left behind.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { fileURLToPath } from "node:url";
import {
  createConfigClient,
  createDiscovery,
  createKeys,
  createRedisConnection,
  createService,
  type Discovery,
  type LogEntry,
  type RedisHandle,
  type Service,
  tailLogs,
} from "../../src/index.js";
import { type DemoRedis, findOrStartRedis } from "./redis.js";

const keep = process.argv.slice(2).includes("--keep");
const namespace = process.env.REDMESH_NAMESPACE ?? "redmesh-demo";
const colour =
  process.stdout.isTTY === true && process.env.NO_COLOR === undefined && process.env.TERM !== "dumb";
const sgr = (open: number, close: number) => (s: string) => (colour ? `\x1b[${open}m${s}\x1b[${close}m` : s);
const bold = sgr(1, 22);
const dim = sgr(2, 22);
const green = sgr(32, 39);
const yellow = sgr(33, 39);
const cyan = sgr(36, 39);
const say = (s: string) => console.log(s);
const step = (n: number, s: string) => console.log(`\n${bold(`${n}.`)} ${bold(s)}`);
const ms = (x: number) => `${x < 10 ? x.toFixed(1) : x.toFixed(0)} ms`;

/** tsx, resolved from here, so that the children start whatever the current directory is. */
const TSX = import.meta.resolve("tsx");
const SERVICES_DIR = new URL("../services/", import.meta.url);
const CLI = fileURLToPath(new URL("../../src/cli/main.ts", import.meta.url));

/** One child process and the JSON events it reported on stdout. */
interface Proc {
  label: string;
  child: ChildProcess;
  pid: number;
  id: string;
  events: Array<{ event: string; at: number; [k: string]: unknown }>;
  stderr: string[];
}

const procs: Proc[] = [];

function spawnProc(label: string, args: string[], env: NodeJS.ProcessEnv): Proc {
  const child = spawn(process.execPath, ["--import", TSX, ...args], {
    env,
    stdio: ["pipe", "pipe", "pipe"],
  });
  const p: Proc = { label, child, pid: child.pid ?? 0, id: "", events: [], stderr: [] };
  procs.push(p);
  createInterface({ input: child.stdout! }).on("line", (line) => {
    try {
      const ev = JSON.parse(line) as { event?: string; url?: string; id?: string };
      // The gateway CLI prints `{"url": …}`; the services print `{"event": …}`.
      const event = ev.event ?? (ev.url ? "listening" : "line");
      p.events.push({ ...ev, event, at: performance.now() });
      if (event === "started") p.id = ev.id ?? "";
    } catch {
      /* not a JSON line */
    }
  });
  // Kept for the error message when a child dies early; echoed only after the tour, in --keep mode.
  createInterface({ input: child.stderr! }).on("line", (line) => {
    p.stderr.push(line);
    if (p.stderr.length > 50) p.stderr.shift();
  });
  child.on("error", (err) => p.stderr.push(String(err)));
  return p;
}

const alive = (p: Proc) => p.child.exitCode === null && p.child.signalCode === null;

function exited(p: Proc): Promise<void> {
  if (!alive(p)) return Promise.resolve();
  return new Promise((resolve) => p.child.once("exit", () => resolve()));
}

/** Resolve when `p` reports `event` (matching `filter`); reject when it exits or time runs out. */
async function waitEvent(
  p: Proc,
  event: string,
  timeoutMs: number,
  filter: (e: Proc["events"][number]) => boolean = () => true,
): Promise<Proc["events"][number]> {
  const t0 = performance.now();
  for (;;) {
    const e = p.events.find((x) => x.event === event && filter(x));
    if (e) return e;
    if (!alive(p)) throw new Error(`${p.label} exited before "${event}": ${p.stderr.slice(-5).join(" | ")}`);
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`${p.label}: no "${event}" after ${timeoutMs} ms: ${p.stderr.slice(-5).join(" | ")}`);
    await sleep(5);
  }
}

async function waitUntil(
  what: string,
  fn: () => Promise<boolean> | boolean,
  timeoutMs: number,
): Promise<number> {
  const t0 = performance.now();
  while (!(await fn())) {
    if (performance.now() - t0 > timeoutMs)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(10);
  }
  return performance.now() - t0;
}

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))] ?? Number.NaN;
}

function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r, j) => `  ${r.map((c, i) => (j === 0 ? dim : String)(c.padEnd(widths[i] ?? 0))).join("  ")}`)
    .join("\n");
}

interface HttpResult {
  status: number;
  ms: number;
  body: unknown;
  headers: Headers;
}

async function http(base: string, method: string, path: string, body?: unknown): Promise<HttpResult> {
  const t0 = performance.now();
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? null : JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  const elapsed = performance.now() - t0;
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: res.status, ms: elapsed, body: parsed, headers: res.headers };
}

/** `reserve;dur=0.81, queue;dur=0.32` → `{reserve: 0.81, queue: 0.32}`. */
function serverTiming(h: Headers): Record<string, number> {
  const out: Record<string, number> = {};
  for (const part of (h.get("server-timing") ?? "").split(",")) {
    const m = /^\s*([\w-]+);dur=([\d.]+)/.exec(part);
    if (m?.[1] && m[2]) out[m[1]] = Number(m[2]);
  }
  return out;
}

function statusCounts(rs: HttpResult[]): string {
  const n = new Map<number, number>();
  for (const r of rs) n.set(r.status, (n.get(r.status) ?? 0) + 1);
  return [...n]
    .map(([s, c]) => `${c}× ${s >= 200 && s < 300 ? green(String(s)) : yellow(String(s))}`)
    .join(", ");
}

function formatEntry(e: LogEntry): string {
  const t = new Date(e.ts).toISOString().slice(11, 23);
  const level = e.level === "warn" || e.level === "error" ? yellow(e.level.padEnd(5)) : e.level.padEnd(5);
  const fields = e.fields ? dim(` ${JSON.stringify(e.fields)}`) : "";
  return `  ${dim(t)} ${cyan(e.service.padEnd(9))} ${e.instance.slice(0, 6)} ${level} ${e.msg}${fields}`;
}

// ------------------------------------------------------------------------------------------- teardown

let tour: Service | undefined;
let conn: RedisHandle | undefined;
let discovery: Discovery | undefined;
let redis: DemoRedis | undefined;
let stopping: Promise<number> | undefined;

/**
 * Stop the tour's client and every child process, in the order of the module comment. Idempotent.
 * Resolves with the time the processes took to stop.
 */
function stopProcesses(): Promise<number> {
  stopping ??= (async () => {
    const t0 = performance.now();
    await tour?.stop().catch(() => undefined);
    const services = procs.filter((p) => p.label !== "gateway");
    for (const p of services) if (alive(p)) p.child.stdin?.end();
    await Promise.race([Promise.all(services.map(exited)), sleep(6000, undefined, { ref: false })]);
    const gateway = procs.find((p) => p.label === "gateway");
    if (gateway && alive(gateway)) gateway.child.kill("SIGTERM");
    await Promise.race([Promise.all(procs.map(exited)), sleep(6000, undefined, { ref: false })]);
    const took = performance.now() - t0;
    // Past the grace period: nothing may stay behind.
    for (const p of procs) if (alive(p)) p.child.kill("SIGKILL");
    await Promise.all(procs.map(exited));
    return took;
  })();
  return stopping;
}

/** Stop the processes, then the observer and the throwaway Redis. Idempotent. */
async function stopAll(): Promise<void> {
  await stopProcesses();
  await discovery?.stop().catch(() => undefined);
  discovery = undefined;
  await conn?.close().catch(() => undefined);
  conn = undefined;
  await redis?.stop().catch(() => undefined);
  redis = undefined;
}

// Last resort (an exit we did not plan for): kill synchronously whatever is still running.
process.on("exit", () => {
  for (const p of procs) if (alive(p)) p.child.kill("SIGKILL");
});

const interrupted = new AbortController();
const onSignal = (sig: NodeJS.Signals) => {
  if (interrupted.signal.aborted) return;
  interrupted.abort(sig);
  if (!keep) {
    // Interrupted mid-tour: clean up and leave with the conventional 128 + signal number.
    say(`\n${sig}: stopping everything…`);
    void stopAll().finally(() => process.exit(sig === "SIGINT" ? 130 : 143));
  }
};
process.on("SIGINT", onSignal);
process.on("SIGTERM", onSignal);

// --------------------------------------------------------------------------------------------- tour

async function main(): Promise<void> {
  const tourT0 = Date.now();
  say(bold("redmesh tour: three services and a gateway on one Redis"));

  step(1, "Find Redis");
  redis = await findOrStartRedis(say);
  conn = createRedisConnection({ redis: redis.url, clientName: "redmesh:demo" });
  await conn.connect();
  const keys = createKeys({ namespace });
  discovery = createDiscovery({ redis: conn, keys });
  await discovery.start();
  const d = discovery;
  // A fresh shop each run (the stock lives in this demo key, shared by the inventory instances).
  await conn.command(["DEL", `${namespace}:demo:stock`]);
  for (const s of ["orders", "inventory", "billing", "gateway"]) await d.instances(s);
  say(`Namespace ${bold(namespace)}: keys look like ${dim(keys.presence("orders", "<instance id>"))}`);

  step(2, "Start orders, 2× inventory, billing and the gateway, each its own process");
  const env = { ...process.env, REDIS_URL: redis.url, REDMESH_NAMESPACE: namespace };
  const t0 = performance.now();
  const services = [
    spawnProc("orders", [fileURLToPath(new URL("orders.ts", SERVICES_DIR))], env),
    spawnProc("inventory", [fileURLToPath(new URL("inventory.ts", SERVICES_DIR))], env),
    spawnProc("inventory", [fileURLToPath(new URL("inventory.ts", SERVICES_DIR))], env),
    spawnProc("billing", [fileURLToPath(new URL("billing.ts", SERVICES_DIR))], env),
  ];
  const gateway = spawnProc(
    "gateway",
    [CLI, "--redis", redis.url, "--namespace", namespace, "--json", "gateway", "--port", "0", "--dashboard"],
    env,
  );
  await Promise.all(services.map((p) => waitEvent(p, "started", 15_000)));
  const url = String((await waitEvent(gateway, "listening", 15_000)).url);
  const inventories = services.filter((p) => p.label === "inventory");
  const expected: Record<string, number> = { orders: 1, inventory: 2, billing: 1, gateway: 1 };
  await waitUntil(
    "every instance in the registry",
    async () => {
      const n = await Promise.all(Object.keys(expected).map((s) => d.instances(s)));
      return Object.values(expected).every((c, i) => n[i]?.length === c);
    },
    5000,
  );
  say(
    `All 5 processes up and visible in the registry ${ms(performance.now() - t0)} after the first spawn (Node + tsx start-up included).`,
  );
  const peersSeen = await waitUntil(
    "each service to see the others join",
    () =>
      services.every((p) =>
        ["orders", "inventory", "billing"]
          .filter((s) => s !== p.label)
          .every((s) => p.events.some((e) => e.event === "saw-join" && e.peer === s)),
      ),
    5000,
  );
  say(`Each service has seen the others join by registry events, without polling (${ms(peersSeen)} later).`);
  const nodes = await d.nodes();
  const routes = await d.routes();
  const rows = [["service", "instance", "pid", "routes"]];
  for (const n of nodes.sort((a, b) => a.service.localeCompare(b.service))) {
    rows.push([
      n.service,
      `${n.id.slice(0, 8)}…`,
      String(n.node?.processID ?? ""),
      (routes[n.service] ?? []).join(" "),
    ]);
  }
  say(table(rows));
  say(`Child pids: ${procs.map((p) => `${p.label} ${p.pid}`).join(", ")}`);
  // The gateway built its route table from the registry; wait until it routes to every service.
  await waitUntil(
    "the gateway to route /v1/orders and /v1/stock",
    async () => {
      const [a, b] = await Promise.all([
        http(url, "GET", "/v1/orders"),
        http(url, "GET", "/v1/stock/sku-lamp"),
      ]);
      return a.status === 200 && b.status === 200;
    },
    8000,
  );
  say(`Gateway at ${bold(url)}, dashboard at ${bold(`${url}/dashboard/`)}`);

  step(3, "HTTP through the gateway: orders answers over RPC, with no HTTP server of its own");
  const posts: HttpResult[] = [];
  /**
   * When each order's POST was sent, by order id (to time its invoice job). The job is queued inside
   * the request, so billing may finish it before the HTTP answer is back: timing from the answer
   * could come out negative.
   */
  const answeredAt = new Map<string, number>();
  for (let i = 0; i < 20; i++) {
    const sentAt = performance.now();
    const r = await http(url, "POST", "/v1/orders", { sku: "sku-lamp", qty: 1 });
    posts.push(r);
    const id = (r.body as { id?: unknown }).id;
    if (typeof id === "string") answeredAt.set(id, sentAt);
  }
  const orderIds = posts
    .map((r) => (r.body as { id?: string }).id)
    .filter((x): x is string => typeof x === "string");
  const gets: HttpResult[] = [];
  for (const id of orderIds) gets.push(await http(url, "GET", `/v1/orders/${id}`));
  const p50 = (rs: HttpResult[]) =>
    ms(
      quantile(
        rs.map((r) => r.ms),
        0.5,
      ),
    );
  const p95 = (rs: HttpResult[]) =>
    ms(
      quantile(
        rs.map((r) => r.ms),
        0.95,
      ),
    );
  say(
    `POST /v1/orders ×${posts.length}: ${statusCounts(posts)}; latency p50 ${p50(posts)}, p95 ${p95(posts)}.`,
  );
  say(
    `GET /v1/orders/:id ×${gets.length}: ${statusCounts(gets)}; latency p50 ${p50(gets)}, p95 ${p95(gets)}.`,
  );
  const posted = posts.filter((r) => r.status === 201).length;
  if (posted === 0) throw new Error(`no order was placed: ${JSON.stringify(posts[0]?.body)}`);
  const bad = await http(url, "POST", "/v1/orders", { sku: "sku-unicorn" });
  say(`POST with an unknown sku: ${bad.status} ${dim(JSON.stringify(bad.body))}`);

  step(4, "RPC between services");
  const timings = posts.map((r) => serverTiming(r.headers));
  const reserve = timings.map((t) => t.reserve).filter((x): x is number => x !== undefined);
  const queueAdd = timings.map((t) => t.queue).filter((x): x is number => x !== undefined);
  say(
    `Inside each POST, orders called ${bold("inventory.reserve")} over RPC: p50 ${ms(quantile(reserve, 0.5))}, p95 ${ms(quantile(reserve, 0.95))} (from its Server-Timing header); queueing the invoice took p50 ${ms(quantile(queueAdd, 0.5))}.`,
  );
  tour = createService({ name: "tour", redis: redis.url, namespace, description: "the demo's own client" });
  await tour.start();
  const served = new Map<string, number>();
  const calls = 200;
  const rpcT0 = performance.now();
  const lat: number[] = [];
  await Promise.all(
    Array.from({ length: 10 }, async () => {
      for (let i = 0; i < calls / 10; i++) {
        const c0 = performance.now();
        const r = await tour!.call<{ servedBy: string }>("inventory", "stock", { sku: "sku-lamp" });
        lat.push(performance.now() - c0);
        served.set(r.servedBy, (served.get(r.servedBy) ?? 0) + 1);
      }
    }),
  );
  const rpcMs = performance.now() - rpcT0;
  say(
    `${calls} calls of inventory.stock, 10 in flight: RPC done in ${ms(rpcMs)} (${Math.round((calls / rpcMs) * 1000)} calls/s, p50 ${ms(quantile(lat, 0.5))}), spread over ${served.size} inventory instances (${[...served.values()].join(" / ")}).`,
  );

  step(5, "Jobs through a queue: every order queued an invoice job; billing works them off");
  const billing = services.find((p) => p.label === "billing")!;
  const invoicedFor = (id: string) => billing.events.some((e) => e.event === "invoiced" && e.order === id);
  await waitUntil("billing to process every invoice job", () => orderIds.every(invoicedFor), 10_000);
  const jobLatency = billing.events
    .filter((e) => e.event === "invoiced" && answeredAt.has(String(e.order)))
    .map((e) => e.at - (answeredAt.get(String(e.order)) ?? 0));
  const invoiceStats = await tour.queue("invoices", { service: "billing" }).stats();
  say(
    `${jobLatency.length} jobs processed by billing, each invoice issued p50 ${ms(quantile(jobLatency, 0.5))} / max ${ms(Math.max(...jobLatency))} after its order was placed; queue now: ${invoiceStats.pending} pending, ${invoiceStats.inFlight} in flight, ${invoiceStats.dead} dead, ${invoiceStats.processed} processed in this namespace so far.`,
  );
  const sample = orderIds[orderIds.length - 1] ?? "";
  const after = await http(url, "GET", `/v1/orders/${sample}`);
  const ab = after.body as { status?: string; invoiceId?: string };
  say(
    `GET /v1/orders/${sample} → ${after.status}, status ${bold(String(ab.status))} (${ab.invoiceId}: billing called orders.invoiced back over RPC).`,
  );

  step(6, "A config change, picked up live by every inventory instance");
  const config = createConfigClient<{ lowStockThreshold: number }>({
    redis: conn,
    keys,
    service: "inventory",
    defaults: { lowStockThreshold: 5 },
  });
  const before = await config.get();
  const stock = (await http(url, "GET", "/v1/stock/sku-lamp")).body as { available: number };
  const next = { lowStockThreshold: stock.available + 5 };
  const cfgT0 = performance.now();
  const { version } = await config.set(next);
  const seen = await Promise.all(
    inventories.map((p) => waitEvent(p, "config-changed", 5000, (e) => e.version === version)),
  );
  say(
    `lowStockThreshold ${before.lowStockThreshold} → ${bold(String(next.lowStockThreshold))} (version ${version}): seen by ${seen.length}/${inventories.length} inventory instances after ${seen.map((e) => ms(e.at - cfgT0)).join(" and ")}, no restart.`,
  );
  const low = (await http(url, "GET", "/v1/stock/sku-lamp")).body as { available: number; low: boolean };
  const lowOrder = await http(url, "POST", "/v1/orders", { sku: "sku-lamp", qty: 2 });
  say(
    `GET /v1/stock/sku-lamp now says low: ${bold(String(low.low))} (${low.available} left); the next order (${lowOrder.status}) makes inventory log a warning.`,
  );

  step(7, "Logs of every service, tailed from Redis in time order");
  const tail = async () => {
    const got: LogEntry[] = [];
    for await (const e of tailLogs(conn!, keys, {
      services: ["orders", "inventory", "billing"],
      since: tourT0,
    }))
      got.push(e);
    return got;
  };
  let entries: LogEntry[] = [];
  // Entries are sent in batches: wait for the warning just logged.
  await waitUntil(
    "the low-stock warning in the logs",
    async () => {
      entries = await tail();
      return entries.some((e) => e.msg === "low stock");
    },
    5000,
  );
  const per = new Map<string, number>();
  for (const e of entries) per.set(e.service, (per.get(e.service) ?? 0) + 1);
  const warns = entries.filter((e) => e.level === "warn").length;
  say(
    `Logs tailed: ${entries.length} entries from ${per.size} services (${[...per].map(([s, n]) => `${s} ${n}`).join(", ")}), ${warns} warning(s). The latest few:`,
  );
  const lastOf = (pred: (e: LogEntry) => boolean) => [...entries].reverse().find(pred);
  const shown = new Set<LogEntry>();
  for (const e of [
    lastOf((x) => x.msg === "config changed"),
    lastOf((x) => x.service === "billing"),
    lastOf((x) => x.msg === "order placed"),
    lastOf((x) => x.msg === "low stock"),
  ])
    if (e) shown.add(e);
  for (const e of [...shown].sort((a, b) => a.ts - b.ts)) say(formatEntry(e));
  await tour.stop();
  tour = undefined;

  step(8, "Crash one inventory instance with SIGKILL: no goodbye, the mesh routes around it");
  const victim = inventories[1]!;
  const survivor = inventories[0]!;
  victim.child.kill("SIGKILL");
  const crashT0 = performance.now();
  await exited(victim);
  const during: HttpResult[] = [];
  for (let i = 0; i < 10; i++)
    during.push(await http(url, "POST", "/v1/orders", { sku: "sku-chair", qty: 1 }));
  say(
    `10 orders placed right after the kill: ${statusCounts(during)} (p50 ${p50(during)}): a call to the dead instance reaches no subscriber and goes to the other one at once.`,
  );
  const orders = services.find((p) => p.label === "orders")!;
  await waitUntil(
    "the registry to drop the dead instance",
    async () => (await d.instances("inventory")).length === 1,
    8000,
  );
  const goneMs = performance.now() - crashT0;
  await waitEvent(orders, "saw-leave", 5000, (e) => e.id === victim.id);
  say(
    `The dead instance left the registry ${ms(goneMs)} after the kill (presence TTL 3000 ms + reconciliation ≤ 1000 ms); orders got a leave event; ${survivor.label} ${survivor.id.slice(0, 8)}… carries on.`,
  );

  if (keep) {
    step(9, "Everything keeps running");
    say(`Gateway:   ${bold(url)}   e.g. curl -s ${url}/v1/orders`);
    say(`Dashboard: ${bold(`${url}/dashboard/`)}`);
    say(
      `Child pids: ${procs
        .filter(alive)
        .map((p) => `${p.label} ${p.pid}`)
        .join(", ")}`,
    );
    say(dim("Press Ctrl-C to stop everything."));
    if (!interrupted.signal.aborted)
      await new Promise((resolve) => interrupted.signal.addEventListener("abort", resolve, { once: true }));
    say(`\n${String(interrupted.signal.reason)}: stopping everything…`);
  }

  step(keep ? 10 : 9, "Graceful stop: services drain and deregister, the gateway closes");
  const took = await stopProcesses();
  const left = await Promise.all(Object.keys(expected).map((s) => d.instances(s)));
  say(
    `All ${procs.length} processes exited after ${ms(took)} (${procs.map((p) => `${p.label} ${p.child.exitCode ?? p.child.signalCode}`).join(", ")}); ${left.flat().length} instance(s) left in the registry.`,
  );
  say(
    keep
      ? `\n${green("Done.")}`
      : `\n${green("Done.")} Run ${bold("npm run demo -- --keep")} to explore the dashboard, or read docs/demo.md.`,
  );
}

try {
  await main();
} catch (err) {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  if (!interrupted.signal.aborted || keep) await stopAll();
}
