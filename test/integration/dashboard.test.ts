import assert from "node:assert/strict";
import { once } from "node:events";
import { createServer } from "node:http";
import { type AddressInfo, connect } from "node:net";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import {
  createDashboard,
  type DashboardQueueStats,
  type DashboardSnapshot,
} from "../../src/dashboard/index.js";
import { createService, type LogEntry } from "../../src/index.js";
import { openSse } from "../helpers/dashboard-sse.js";
import { freePort, randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

describe("dashboard: collector and SSE stream", () => {
  let redis: TestRedis;
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    await redis.stop();
  });

  test("services, instances, health, routes, config, queues and logs arrive live; a stopped service goes", async () => {
    const ns = randomNamespace("dash");
    let queueCalls = 0;
    const queues: DashboardQueueStats[] = [
      {
        service: "orders",
        queue: "emails",
        pending: 3,
        inFlight: 1,
        delayed: 2,
        dead: 1,
        processed: 40,
        failed: 2,
      },
    ];
    const dash = createDashboard({
      redis: redis.url,
      namespace: ns,
      intervalMs: 100,
      queueStats: async () => {
        queueCalls++;
        return queues;
      },
    });
    const { url } = await dash.listen({ port: 0 });
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+\/dashboard\/$/);
    await sleep(250);
    assert.equal(dash.stats().active, false, "nothing runs while no page is open");
    assert.equal(queueCalls, 0);

    const all = await openSse(`${url}events`);
    const warn = await openSse(`${url}events?level=warn`);
    try {
      assert.equal(all.status, 200);
      assert.match(all.headers.get("content-type") ?? "", /^text\/event-stream/);
      const hello = JSON.parse((await all.next((e) => e.event === "hello")).data) as { namespace: string };
      assert.equal(hello.namespace, ns);
      const empty = await all.snapshot<DashboardSnapshot>(() => true);
      assert.deepEqual(empty.services, []);
      assert.deepEqual(empty.queues, { available: true, items: queues });
      assert.equal(dash.stats().clients, 2);

      const svc = createService({
        name: "orders",
        namespace: ns,
        redis: redis.url,
        version: "1.4.2",
        ip: "10.1.2.3",
        port: 8123,
        healthIntervalMs: 200,
      });
      const t0 = performance.now();
      await svc.start();
      const seen = await all.snapshot<DashboardSnapshot>(
        (s) => s.services.some((x) => x.name === "orders" && x.instances[0]?.health !== null),
        { what: "orders with health" },
      );
      const appearMs = performance.now() - t0;
      const orders = seen.services.find((x) => x.name === "orders");
      const inst = orders?.instances[0];
      assert.equal(inst?.id, svc.instanceId);
      assert.equal(inst?.version, "1.4.2");
      assert.equal(inst?.address, "10.1.2.3:8123");
      assert.equal(inst?.health?.status, "ok");
      assert.ok((inst?.health?.rssBytes ?? 0) > 1_000_000, "memory is reported");
      assert.equal(inst?.health?.inFlight, 0);

      await svc.registerRoutes(["[get]/v1/orders/:id"]);
      const cfg = await svc.config.set({ currency: "EUR" });
      const done = svc.beginWork();
      await svc.writeHealth();
      const later = await all.snapshot<DashboardSnapshot>(
        (s) => {
          const o = s.services.find((x) => x.name === "orders");
          return o?.routes.length === 1 && o.config !== null && o.instances[0]?.health?.inFlight === 1;
        },
        { what: "routes, config and in-flight" },
      );
      done();
      const o2 = later.services.find((x) => x.name === "orders");
      assert.deepEqual(o2?.routes, ["[get]/v1/orders/:id"]);
      assert.deepEqual(o2?.config, { active: cfg.version, versions: [cfg.version] });

      const from = all.events.length;
      const fromWarn = warn.events.length;
      svc.log.info("order placed", { id: 42 });
      svc.log.warn("stock low <script>alert(1)</script>", { sku: "A1" });
      const logOf = (s: typeof all, msg: string, start: number) =>
        s.next((e) => e.event === "log" && (JSON.parse(e.data) as LogEntry).msg.startsWith(msg), {
          from: start,
          what: `log "${msg}"`,
        });
      const info = JSON.parse((await logOf(all, "order placed", from)).data) as LogEntry;
      assert.equal(info.service, "orders");
      assert.equal(info.instance, svc.instanceId);
      assert.deepEqual(info.fields, { id: 42 });
      await logOf(all, "stock low", from);
      await logOf(warn, "stock low", fromWarn);
      assert.ok(
        !warn.events.slice(fromWarn).some((e) => e.event === "log" && e.data.includes("order placed")),
        "the warn-level client does not get info entries",
      );

      const t1 = performance.now();
      await svc.stop();
      await all.snapshot<DashboardSnapshot>(
        (s) => s.services.find((x) => x.name === "orders")?.instances.length === 0,
        { what: "orders gone" },
      );
      const goneMs = performance.now() - t1;
      console.log(
        `dashboard: instance shown ${appearMs.toFixed(0)} ms after start(), gone ${goneMs.toFixed(0)} ms after stop()`,
      );
      // Event-driven: usually a few ms; at worst one discovery reconciliation (1 s) when a reconcile
      // that read the index just before the deregistration lands after the leave event.
      assert.ok(goneMs < 1500, `gone within 1.5 s of stop() (took ${goneMs.toFixed(0)} ms)`);

      // A page opened now gets the latest snapshot and the log backlog at once.
      const late = await openSse(`${url}events?level=info`);
      const backlog = JSON.parse((await late.next((e) => e.event === "logs")).data) as LogEntry[];
      assert.deepEqual(
        backlog.map((e) => e.msg),
        ["order placed", "stock low <script>alert(1)</script>"],
      );
      late.close();
    } finally {
      all.close();
      warn.close();
    }
    await waitFor(() => dash.stats().clients === 0 && !dash.stats().active, { what: "collector idle" });
    const calls = queueCalls;
    await sleep(300);
    assert.equal(queueCalls, calls, "no collection once every page is closed");
    await dash.stop();
  });

  test("log entries of a service the tail discovers late are not lost behind newer ones of another", async () => {
    const ns = randomNamespace("dash");
    const dash = createDashboard({ redis: redis.url, namespace: ns, intervalMs: 100 });
    const { url } = await dash.listen({ port: 0 });
    const s = await openSse(`${url}events`);
    const a = createService({ name: "alpha", namespace: ns, redis: redis.url });
    const b = createService({ name: "beta", namespace: ns, redis: redis.url });
    try {
      await a.start();
      a.log.info("alpha ready");
      await s.next((e) => e.event === "log" && e.data.includes("alpha ready"), { what: "alpha ready" });
      // beta's stream is new to the tail (it looks for new services about once a second), so alpha's
      // later entry is read first; beta's earlier one must still come.
      await b.start();
      b.log.info("beta first");
      await sleep(5);
      a.log.info("alpha second");
      await s.next((e) => e.event === "log" && e.data.includes("alpha second"), { what: "alpha second" });
      await s.next((e) => e.event === "log" && e.data.includes("beta first"), { what: "beta first" });
      const msgs = s.events.filter((e) => e.event === "log").map((e) => (JSON.parse(e.data) as LogEntry).msg);
      assert.deepEqual([...msgs].sort(), ["alpha ready", "alpha second", "beta first"], "each once");
    } finally {
      s.close();
      await Promise.all([a.stop(), b.stop()]);
      await dash.stop();
    }
  });

  test("backpressure: a client that stops reading loses log entries (told how many), the others lose none", async () => {
    const ns = randomNamespace("dash");
    const dash = createDashboard({ redis: redis.url, namespace: ns, intervalMs: 100 });
    const { url } = await dash.listen({ port: 0 });
    const svc = createService({ name: "chatty", namespace: ns, redis: redis.url, log: { maxLen: 50_000 } });
    await svc.start();
    const fast = await openSse(`${url}events`);
    // A raw client that sends its request and then never reads: the loopback socket buffers fill
    // (about 4 MB here), then the server-side buffer.
    const u = new URL(`${url}events`);
    const slow = connect(Number(u.port), u.hostname);
    await once(slow, "connect");
    slow.write(`GET ${u.pathname} HTTP/1.1\r\nhost: ${u.host}\r\naccept: text/event-stream\r\n\r\n`);
    slow.pause();
    try {
      await waitFor(() => dash.stats().clients === 2, { what: "two clients" });
      // ≈ 1 KB per event, 9 MB in all: more than the socket buffers and the 1 MiB allowance hold.
      const n = 9000;
      const pad = "x".repeat(1000);
      for (let i = 0; i < n; i++) svc.log.info("bulk", { i, pad });
      const count = () => fast.events.filter((e) => e.event === "log").length;
      await waitFor(() => count() === n, { timeoutMs: 15_000, what: `${n} entries at the fast client` });
      assert.ok(dash.stats().logsDropped > 0, "the slow client had entries dropped");
      assert.equal(dash.stats().clients, 2, "the slow client is still connected");
      // It reads again: it gets a notice with the number it missed, then live entries again.
      let text = "";
      slow.on("data", (d: Buffer) => {
        text += d.toString("latin1");
      });
      slow.resume();
      const dropped = await waitFor(() => /event: dropped\ndata: \{"count":(\d+)\}/.exec(text)?.[1], {
        what: "the dropped notice",
      });
      assert.ok(Number(dropped) > 0 && Number(dropped) < n, `dropped ${dropped}`);
      svc.log.info("after the jam");
      await waitFor(() => text.includes("after the jam"), { what: "live again" });
    } finally {
      slow.destroy();
      fast.close();
      await svc.stop();
      await dash.stop();
    }
  });

  test("a client that stays congested longer than stalledClientMs is disconnected", async () => {
    const ns = randomNamespace("dash");
    const dash = createDashboard({ redis: redis.url, namespace: ns, intervalMs: 100, stalledClientMs: 300 });
    const { url } = await dash.listen({ port: 0 });
    const svc = createService({ name: "chatty", namespace: ns, redis: redis.url, log: { maxLen: 50_000 } });
    await svc.start();
    const u = new URL(`${url}events`);
    const slow = connect(Number(u.port), u.hostname);
    await once(slow, "connect");
    slow.write(`GET ${u.pathname} HTTP/1.1\r\nhost: ${u.host}\r\n\r\n`);
    slow.pause();
    const closed = once(slow, "close");
    try {
      await waitFor(() => dash.stats().clients === 1, { what: "the client" });
      const pad = "x".repeat(1000);
      for (let i = 0; i < 9000; i++) svc.log.info("bulk", { i, pad });
      await waitFor(() => dash.stats().logsDropped > 0, { timeoutMs: 10_000, what: "congestion" });
      await sleep(400);
      svc.log.info("one more"); // the next send finds it stalled
      await waitFor(() => dash.stats().clients === 0, { what: "the stalled client dropped" });
      slow.resume(); // a paused socket does not report the end it has not read
      await closed;
    } finally {
      slow.destroy();
      await svc.stop();
      await dash.stop();
    }
  });

  test("no Redis traffic while no page is open, even after a one-off snapshot()", async () => {
    const own = await startRedis();
    const ns = randomNamespace("dash");
    const svc = createService({ name: "quiet", namespace: ns, redis: own.url });
    await svc.start();
    await svc.stop(); // the service stays listed (service index), with no instance
    const dash = createDashboard({ redis: own.url, namespace: ns, intervalMs: 100 });
    // Commands run, except our own INFO and the connection watchdog's PING probes of idle sockets.
    const processed = async () =>
      [...(await own.cli("INFO", "commandstats")).matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)]
        .filter((m) => m[1] !== "info" && m[1] !== "ping")
        .reduce((n, m) => n + Number(m[2]), 0);
    try {
      const { url } = await dash.listen({ port: 0 });
      const snap = await dash.snapshot();
      assert.deepEqual(
        snap.services.map((x) => x.name),
        ["quiet"],
      );
      const c0 = await processed();
      await sleep(1500); // longer than discovery's 1 s reconciliation
      assert.equal((await processed()) - c0, 0, "nothing ran");
      const page = await openSse(`${url}events`);
      await page.snapshot(() => true);
      const c1 = await processed();
      await sleep(300);
      assert.ok((await processed()) - c1 > 3, "a page open: the collector reads");
      page.close();
      await waitFor(() => !dash.stats().active, { what: "idle" });
      await sleep(100);
      const c2 = await processed();
      await sleep(1200);
      assert.equal((await processed()) - c2, 0, "idle again once the page is closed");
    } finally {
      await dash.stop();
      await own.stop();
    }
  });

  test("a snapshot is pushed only when something changed", async () => {
    const dash = createDashboard({ redis: redis.url, namespace: randomNamespace("dash"), intervalMs: 50 });
    const { url } = await dash.listen({ port: 0 });
    const s = await openSse(`${url}events`);
    await s.snapshot(() => true);
    await waitFor(() => dash.stats().collections >= 8, { what: "8 collections" });
    assert.equal(dash.stats().snapshotsPushed, 1);
    assert.equal(s.events.filter((e) => e.event === "snapshot").length, 1);
    s.close();
    await dash.stop();
  });

  test("queue panel: built-in stats by default, a failing seam is reported and the rest still arrives", async () => {
    const ns = randomNamespace("dash");
    const bare = createDashboard({ redis: redis.url, namespace: ns });
    await bare.start();
    try {
      const a = await bare.snapshot();
      assert.deepEqual(a.queues, { available: true, items: [] }, "no service has a queue yet");
      assert.deepEqual(a.errors, []);
    } finally {
      await bare.stop();
    }

    const failing = createDashboard({
      redis: redis.url,
      namespace: ns,
      queueStats: () => Promise.reject(new Error("queue module exploded")),
    });
    await failing.start();
    const b = await failing.snapshot();
    assert.equal(b.queues.available, false);
    assert.match(b.errors.join(), /queue module exploded/);
    await failing.stop();
  });

  test("stop() ends every open stream, closes the server and is idempotent", async () => {
    const dash = createDashboard({ redis: redis.url, namespace: randomNamespace("dash"), intervalMs: 50 });
    const { url } = await dash.listen({ port: 0 });
    const a = await openSse(`${url}events`);
    const b = await openSse(`${url}events?level=error`);
    await a.snapshot(() => true);
    await Promise.all([dash.stop(), dash.stop()]);
    await Promise.all([a.ended, b.ended]);
    assert.deepEqual(
      { clients: dash.stats().clients, active: dash.stats().active },
      { clients: 0, active: false },
    );
    await assert.rejects(fetch(url), "the server is closed");
    await assert.rejects(dash.start(), /stopped/);
  });

  test("stop({ force: true }) cuts a graceful stop short: it no longer waits, drops the streams, and closed() resolves", async () => {
    // A queue source that never answers: the collection under way never ends by itself.
    let release!: () => void;
    const hung = new Promise<DashboardQueueStats[]>((r) => {
      release = () => r([]);
    });
    const dash = createDashboard({
      redis: redis.url,
      namespace: randomNamespace("dash"),
      intervalMs: 50,
      queueStats: () => hung,
    });
    assert.equal(dash.state, "idle");
    const { url } = await dash.listen({ port: 0 });
    assert.equal(dash.state, "running");
    const u = new URL(`${url}events`);
    const raw = connect(Number(u.port), u.hostname);
    await once(raw, "connect");
    let text = "";
    raw.on("data", (d: Buffer) => {
      text += d.toString("latin1");
    });
    const rawClosed = once(raw, "close");
    raw.write(`GET ${u.pathname} HTTP/1.1\r\nhost: ${u.host}\r\n\r\n`);
    try {
      await waitFor(() => dash.stats().collections >= 1 && text.includes("event: hello"), {
        what: "a page open and a collection under way",
      });
      let closedWith: Error | undefined | "pending" = "pending";
      void dash.closed().then((r) => {
        closedWith = r;
      });
      const graceful = dash.stop();
      assert.equal(dash.state, "stopping");
      await waitFor(() => text.endsWith("\r\n0\r\n\r\n"), {
        what: "a graceful stop ends the stream first (last chunk sent)",
      });
      const stillWaiting = await Promise.race([graceful.then(() => false), sleep(300).then(() => true)]);
      assert.ok(stillWaiting, "a graceful stop waits for the collection under way");
      assert.equal(closedWith, "pending", "closed() waits for the stop to end");
      const t0 = performance.now();
      const forced = dash.stop({ force: true });
      assert.equal(forced, graceful, "stop() is memoised");
      await forced;
      assert.ok(performance.now() - t0 < 1000, "the forced stop did not wait");
      assert.equal(dash.state, "stopped");
      assert.equal(await dash.closed(), undefined, "a requested stop has no reason");
      assert.equal(closedWith, undefined);
      await assert.rejects(fetch(url), "the server is closed");
      await rawClosed;
      // The abandoned collection ends once its source answers, and nothing starts again.
      assert.equal(dash.stats().active, true, "the forced stop left the hung collection behind");
      release();
      await waitFor(() => !dash.stats().active, { what: "the abandoned collection over" });
      const n = dash.stats().collections;
      await sleep(150);
      assert.equal(dash.stats().collections, n, "no collection after the stop");
    } finally {
      release();
      raw.destroy();
    }

    // Forced from the start: the streams are dropped (no last chunk), nothing is waited for.
    const again = createDashboard({
      redis: redis.url,
      namespace: randomNamespace("dash"),
      intervalMs: 50,
      queueStats: () => new Promise<DashboardQueueStats[]>(() => {}),
    });
    const at = new URL(`${(await again.listen({ port: 0 })).url}events`);
    const sock = connect(Number(at.port), at.hostname);
    await once(sock, "connect");
    let got = "";
    sock.on("data", (d: Buffer) => {
      got += d.toString("latin1");
    });
    const sockClosed = once(sock, "close");
    sock.write(`GET ${at.pathname} HTTP/1.1\r\nhost: ${at.host}\r\n\r\n`);
    await waitFor(() => again.stats().collections >= 1 && got.includes("event: hello"), { what: "a page" });
    await again.stop({ force: true });
    await sockClosed;
    assert.doesNotMatch(got, /\r\n0\r\n\r\n$/, "the stream was dropped, not ended");
    assert.deepEqual(
      { state: again.state, clients: again.stats().clients },
      { state: "stopped", clients: 0 },
    );
    assert.equal(await again.closed(), undefined);
  });

  test("a failed start: closed() resolves with its reason, and the dashboard stays stopped", async () => {
    const port = await freePort(); // nothing listens there
    const dash = createDashboard({ redis: `redis://127.0.0.1:${port}`, namespace: randomNamespace("dash") });
    await assert.rejects(dash.start());
    assert.equal(dash.state, "stopped");
    const reason = await dash.closed();
    assert.ok(reason instanceof Error, "closed() gives the start's error");
    await assert.rejects(dash.start(), { code: "ERR_NOT_RUNNING", message: /stopped/ });
    await assert.rejects(dash.snapshot(), { code: "ERR_NOT_RUNNING" });
    await dash.stop(); // nothing left to do, and it does not reject
    await dash[Symbol.asyncDispose]();
  });

  test("static page, headers, methods, redirects, bad level, and mounting in another server", async () => {
    const dash = createDashboard({ redis: redis.url, namespace: randomNamespace("dash") });
    const { url } = await dash.listen({ port: 0 });
    const origin = new URL(url).origin;
    const page = await fetch(url);
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-security-policy") ?? "", /script-src 'self'/);
    assert.match(await page.text(), /<title>redmesh dashboard<\/title>/);
    for (const [file, type] of [
      ["app.js", /text\/javascript/],
      ["style.css", /text\/css/],
      ["favicon.svg", /image\/svg\+xml/],
    ] as const) {
      const r = await fetch(`${url}${file}`);
      assert.equal(r.status, 200, file);
      assert.match(r.headers.get("content-type") ?? "", type);
      await r.arrayBuffer();
    }
    const post = await fetch(`${url}events`, { method: "POST" });
    assert.equal(post.status, 405);
    assert.equal(post.headers.get("allow"), "GET, HEAD");
    await post.text();
    assert.equal((await fetch(`${url}../etc/passwd`)).status, 404);
    const head = await fetch(`${url}events`, { method: "HEAD" });
    assert.equal(head.status, 200);
    assert.equal(dash.stats().clients, 0, "HEAD opens no stream");
    // A request line node:http accepts but URL cannot parse gets a 400, not a crash.
    const raw = connect(Number(new URL(url).port), "127.0.0.1");
    raw.write("GET http://[ HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let rawText = "";
    raw.on("data", (d: Buffer) => {
      rawText += d.toString();
    });
    await once(raw, "close");
    assert.match(rawText, /^HTTP\/1\.1 400/);
    assert.equal((await fetch(`${url}nope.js`)).status, 404);
    const bad = await fetch(`${url}events?level=loud`);
    assert.equal(bad.status, 400);
    assert.match(await bad.text(), /unknown level "loud"/);
    const noSlash = await fetch(`${origin}/dashboard`, { redirect: "manual" });
    assert.equal(noSlash.status, 301);
    assert.equal(noSlash.headers.get("location"), "/dashboard/");
    const root = await fetch(`${origin}/`, { redirect: "manual" });
    assert.equal(root.headers.get("location"), "/dashboard/");
    const json = (await (await fetch(`${url}snapshot.json`)).json()) as DashboardSnapshot;
    assert.equal(json.namespace, dash.namespace);

    // Mounted in someone else's server under another path, with a fallback for the rest.
    const mounted = createDashboard({ redis: redis.url, namespace: dash.namespace, basePath: "/ops/dash" });
    await mounted.start();
    const server = createServer((req, res) =>
      mounted.handler(req, res, () => {
        res.writeHead(418).end("teapot");
      }),
    );
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    assert.equal((await fetch(`${base}/ops/dash/`)).status, 200);
    assert.equal((await fetch(`${base}/other`)).status, 418);
    const s = await openSse(`${base}/ops/dash/events`);
    await s.snapshot(() => true);
    s.close();
    await mounted.stop();
    assert.equal((await fetch(`${base}/ops/dash/`)).status, 503, "a stopped dashboard answers 503");
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await dash.stop();
  });

  test("options are validated with typed errors", () => {
    assert.throws(() => createDashboard({ redis: redis.url, intervalMs: 0 }), {
      code: "ERR_INVALID_OPTIONS",
    });
    assert.throws(() => createDashboard({ redis: redis.url, basePath: "/x/" }), {
      code: "ERR_INVALID_OPTIONS",
    });
    assert.throws(() => createDashboard({ redis: redis.url, basePath: "dash" }), {
      code: "ERR_INVALID_OPTIONS",
    });
  });

  test("Redis going away is shown as a warning, and the page recovers when it returns", async () => {
    const own = await startRedis();
    const ns = randomNamespace("dash");
    const svc = createService({ name: "billing", namespace: ns, redis: own.url, healthIntervalMs: 200 });
    await svc.start();
    const dash = createDashboard({ redis: own.url, namespace: ns, intervalMs: 100 });
    const { url } = await dash.listen({ port: 0 });
    const s = await openSse(`${url}events`);
    try {
      await s.snapshot<DashboardSnapshot>((x) => x.services.some((y) => y.instances.length === 1));
      await own.kill();
      await s.snapshot<DashboardSnapshot>((x) => x.errors.length > 0, { what: "an error shown" });
      await own.restart();
      await s.snapshot<DashboardSnapshot>(
        (x) => x.errors.length === 0 && x.services.some((y) => y.instances.length === 1),
        { timeoutMs: 10_000, what: "recovered" },
      );
    } finally {
      s.close();
      await dash.stop();
      await svc.stop();
      await own.stop();
    }
  });
});
