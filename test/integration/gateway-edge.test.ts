import assert from "node:assert/strict";
import { once } from "node:events";
import { after, before, describe, test } from "node:test";
import WebSocket from "ws";
import { createMessage, decode, encode, parseRoute } from "../../src/envelope/index.js";
import { createGateway, type Gateway } from "../../src/gateway/index.js";
import { createService, type Service } from "../../src/index.js";
import { startGatewayUpstream, type Upstream } from "../fixtures/gateway-upstream.js";
import { createTestClient } from "../helpers/gateway-client.js";
import { randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

type ErrBody = { error: { code: string; message: string } };

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.stop();
});

async function routesReady(gw: Gateway, pattern: string): Promise<void> {
  await waitFor(() => gw.routes().some((r) => r.pattern === pattern), { what: pattern });
}

/** A service answering UMF messages on its instance channel: a reply to `via`, and one by `rmid` only. */
async function startEchoService(ns: string): Promise<Service> {
  const svc = createService({ name: "echo", redis: redis.url, namespace: ns });
  await svc.start();
  await svc.redis.subscribe(svc.keys.instanceChannel("echo", svc.instanceId), (raw) => {
    const msg = decode(raw);
    const back = parseRoute(msg.via ?? msg.from);
    const channel = svc.keys.instanceChannel(back.service, back.instance ?? "");
    const from = `${svc.instanceId}@echo:/`;
    const reply = createMessage({ to: msg.via ?? msg.from, from, rmid: msg.mid, body: { echo: msg.body } });
    // The second one is addressed to the gateway instance only: it must find the socket by rmid.
    const byRmid = createMessage({
      to: `${back.instance}@${back.service}:/`,
      from,
      rmid: msg.mid,
      body: { second: true },
    });
    void svc.redis.publish(channel, encode(reply)).then(() => svc.redis.publish(channel, encode(byRmid)));
  });
  return svc;
}

function nextMessage(ws: WebSocket): Promise<Record<string, unknown>> {
  return once(ws, "message").then(([d]) => JSON.parse(String(d)) as Record<string, unknown>);
}

describe("gateway WebSocket endpoint", () => {
  const ns = randomNamespace("gwws");
  let gw: Gateway;
  let echo: Service;
  before(async () => {
    echo = await startEchoService(ns);
    gw = createGateway({ redis: redis.url, namespace: ns, port: 0, limits: { wsMaxPayloadBytes: 4096 } });
    await gw.start();
  });
  after(async () => {
    await gw.stop();
    await echo.stop();
  });

  test("UMF round trip through a service subscribed to its channel (via and rmid routing)", async () => {
    const ws = new WebSocket(`${gw.url.replace("http", "ws")}/ws`);
    await once(ws, "open");
    await waitFor(() => gw.webSockets === 1);
    const got: Array<Record<string, unknown>> = [];
    const two = new Promise<void>((resolve) => {
      ws.on("message", (d) => {
        got.push(JSON.parse(String(d)) as Record<string, unknown>);
        if (got.length === 2) resolve();
      });
    });
    ws.send(JSON.stringify({ to: "echo:/hello", bdy: { x: 1 }, mid: "m-1" }));
    await two;
    assert.deepEqual(got[0]?.bdy, { echo: { x: 1 } });
    assert.equal(got[0]?.rmid, "m-1");
    assert.match(String(got[0]?.to), /@gateway:\/ws\/[0-9a-f]{16}$/);
    assert.deepEqual(got[1]?.bdy, { second: true });
    // Errors come back as JSON, the socket stays open.
    ws.send("{not json");
    const e1 = await nextMessage(ws);
    assert.equal((e1.error as { code: string }).code, "ERR_INVALID_MESSAGE");
    ws.send(JSON.stringify({ to: "nobody:/x", bdy: 1, mid: "m-2" }));
    const e2 = await nextMessage(ws);
    assert.equal((e2.error as { code: string }).code, "ERR_NO_INSTANCE");
    assert.equal(e2.rmid, "m-2");
    ws.close();
    await once(ws, "close");
    await waitFor(() => gw.webSockets === 0);
  });

  test("a message over maxPayload closes the socket with 1009", async () => {
    const ws = new WebSocket(`${gw.url.replace("http", "ws")}/ws`);
    await once(ws, "open");
    ws.on("error", () => undefined);
    ws.send(JSON.stringify({ to: "echo:/big", bdy: "x".repeat(10_000) }));
    const [code] = (await once(ws, "close")) as [number];
    assert.equal(code, 1009);
  });

  test("upgrades on other paths are refused", async () => {
    const ws = new WebSocket(`${gw.url.replace("http", "ws")}/other`);
    const [err] = (await once(ws, "error")) as [Error];
    assert.match(err.message, /404/);
  });
});

describe("gateway rate limit, CORS and metrics", () => {
  const ns = randomNamespace("gwrl");
  let gw: Gateway;
  let up: Upstream;
  const client = createTestClient();
  before(async () => {
    up = await startGatewayUpstream({
      redis: redis.url,
      namespace: ns,
      name: "api",
      routes: ["[get]/v1/items/:id", "[post]/v1/items"],
    });
    gw = createGateway({
      redis: redis.url,
      namespace: ns,
      port: 0,
      rateLimit: { ratePerSec: 2, burst: 5 },
      cors: { origins: ["https://app.example"], methods: ["GET", "POST"] },
    });
    await gw.start();
    await routesReady(gw, "[get]/v1/items/:id");
  });
  after(async () => {
    await client.close();
    await gw.stop();
    await up.stop();
  });

  test("CORS: preflight answered by the gateway, allowed origin echoed, others refused", async () => {
    const pre = await client.req(`${gw.url}/v1/items`, {
      method: "OPTIONS",
      headers: {
        origin: "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "content-type",
      },
    });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers["access-control-allow-origin"], "https://app.example");
    assert.equal(pre.headers["access-control-allow-methods"], "GET, POST");
    assert.equal(pre.headers["access-control-allow-headers"], "content-type");
    const bad = await client.req(`${gw.url}/v1/items`, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example", "access-control-request-method": "POST" },
    });
    assert.equal(bad.status, 403);
    assert.equal(bad.headers["access-control-allow-origin"], undefined);
    const r = await client.req(`${gw.url}/v1/items/1`, { headers: { origin: "https://app.example" } });
    assert.equal(r.status, 200);
    assert.equal(r.headers["access-control-allow-origin"], "https://app.example");
    assert.equal(up.hits, 1, "preflights never reach the service");
  });

  test("rate limit: the burst passes, then 429 with Retry-After", async () => {
    // The CORS test took 3 tokens of this client's 5; wait for a full bucket (burst 5 at 2/s).
    await new Promise((r) => setTimeout(r, 2600));
    const statuses: number[] = [];
    let retryAfter: unknown;
    for (let i = 0; i < 7; i++) {
      const r = await client.req(`${gw.url}/v1/items/${i}`);
      statuses.push(r.status);
      if (r.status === 429) {
        retryAfter = r.headers["retry-after"];
        assert.equal(r.json<ErrBody>().error.code, "ERR_RATE_LIMITED");
      }
    }
    assert.deepEqual(statuses, [200, 200, 200, 200, 200, 429, 429]);
    assert.equal(retryAfter, "1");
  });

  test("/metrics in Prometheus format: counts match the requests made", async () => {
    const r = await client.req(`${gw.url}/metrics`);
    assert.equal(r.status, 200);
    assert.match(String(r.headers["content-type"]), /^text\/plain/);
    const value = (name: string, labels: Record<string, string>) => {
      const line = r.text.split("\n").find((l) => {
        if (!l.startsWith(`${name}{`)) return false;
        return Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`));
      });
      return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(" ") + 1));
    };
    // Made so far: 1 + 5 GETs answered 200 by "api"; 2 preflights (204, 403) and 2 × 429 with no service.
    assert.equal(
      value("redmesh_gateway_requests_total", { service: "api", method: "GET", status: "200" }),
      6,
    );
    assert.equal(value("redmesh_gateway_requests_total", { service: "-", method: "GET", status: "429" }), 2);
    assert.equal(
      value("redmesh_gateway_requests_total", { service: "-", method: "OPTIONS", status: "204" }),
      1,
    );
    assert.equal(value("redmesh_gateway_request_duration_seconds_count", { service: "api" }), 6);
    // The /metrics request itself is the one in flight.
    assert.match(r.text, /^redmesh_gateway_requests_in_flight 1$/m);
    assert.match(r.text, /^redmesh_gateway_websocket_connections 0$/m);
    assert.match(r.text, /# TYPE redmesh_gateway_upstream_errors_total counter/);
  });
});

describe("gateway health and shutdown", () => {
  test("a port already in use: start() rejects and releases everything (the instance deregisters)", async () => {
    const ns = randomNamespace("gwport");
    const first = createGateway({ redis: redis.url, namespace: ns, port: 0 });
    await first.start();
    const second = createGateway({ redis: redis.url, namespace: ns, port: first.port });
    try {
      await assert.rejects(second.start(), /EADDRINUSE/);
      assert.equal(second.state, "stopped");
      const live = await waitFor(async () => {
        const ids = (await first.service.registry.instances("gateway")).map((i) => i.id);
        return ids.length === 1 ? ids : undefined;
      });
      assert.deepEqual(live, [first.service.instanceId]);
      await second.stop();
    } finally {
      await first.stop();
    }
  });

  test("invalid options are rejected with typed errors before any I/O", () => {
    assert.throws(() => createGateway({ port: 70000 }), { code: "ERR_INVALID_OPTIONS" });
    assert.throws(() => createGateway({ limits: { maxBodyBytes: -1 } }), { code: "ERR_INVALID_OPTIONS" });
    assert.throws(() => createGateway({ rateLimit: { ratePerSec: 0 } }), { code: "ERR_INVALID_OPTIONS" });
    assert.throws(() => createGateway({ name: "Bad Name" }), { code: "ERR_INVALID_NAME" });
  });

  test("/healthz is 503 while Redis is down and 200 again when it is back", async () => {
    const own = await startRedis();
    const ns = randomNamespace("gwh");
    const up = await startGatewayUpstream({
      redis: own.url,
      namespace: ns,
      name: "late",
      routes: ["[get]/late"],
    });
    const gw = createGateway({ redis: own.url, namespace: ns, port: 0 });
    const client = createTestClient();
    try {
      await gw.start();
      await routesReady(gw, "[get]/late");
      assert.equal((await client.req(`${gw.url}/healthz`)).status, 200);
      await own.kill();
      const down = await client.req(`${gw.url}/healthz`);
      assert.equal(down.status, 503);
      assert.deepEqual(down.json<{ registry: string }>().registry, "unreachable");
      assert.doesNotMatch(down.text, /127\.0\.0\.1|redis:\/\//);
      // A route whose service is not cached yet needs the registry: 503, no internals.
      const late = await client.req(`${gw.url}/late`);
      assert.equal(late.status, 503, late.text);
      assert.equal(late.json<ErrBody>().error.code, "ERR_REDIS_UNAVAILABLE");
      assert.doesNotMatch(late.text, new RegExp(`${ns}|127\\.0\\.0\\.1|:service:`));
      await own.restart();
      await waitFor(async () => (await client.req(`${gw.url}/healthz`)).status === 200, { timeoutMs: 8000 });
      // …and routing works again once the instance has re-registered by itself.
      await waitFor(async () => (await client.req(`${gw.url}/late`)).status === 200, { timeoutMs: 8000 });
    } finally {
      await client.close();
      await gw.stop();
      await up.stop();
      await own.stop();
    }
  });

  test("stop(): drains in-flight requests, closes WebSockets with 1001, leaves no socket or timer", async () => {
    const ns = randomNamespace("gwstop");
    const up = await startGatewayUpstream({
      redis: redis.url,
      namespace: ns,
      name: "slow",
      routes: ["[get]/slow"],
    });
    const count = () => {
      const m = new Map<string, number>();
      for (const r of process.getActiveResourcesInfo()) m.set(r, (m.get(r) ?? 0) + 1);
      return m;
    };
    const beforeRes = count();
    const gw = createGateway({ redis: redis.url, namespace: ns, port: 0, limits: { stopGraceMs: 2000 } });
    const client = createTestClient();
    await gw.start();
    await routesReady(gw, "[get]/slow");
    const ws = new WebSocket(`${gw.url.replace("http", "ws")}/ws`);
    await once(ws, "open");
    const closed = once(ws, "close");
    const slow = client.req(`${gw.url}/slow?delay=400`);
    await waitFor(() => gw.inFlight === 1);
    const t0 = Date.now();
    await gw.stop();
    const [code] = (await closed) as [number];
    assert.equal(code, 1001);
    const r = await slow;
    assert.equal(r.status, 200, "the in-flight request finished");
    assert.ok(Date.now() - t0 >= 300, "stop waited for it");
    await assert.rejects(client.req(`${gw.url}/slow`), /ECONNREFUSED/);
    await client.close();
    await up.stop();
    // Sockets and timers: back to what there was before the gateway (allow the runner's own to settle).
    await waitFor(
      () => {
        const now = count();
        return ["TCPSocketWrap", "TCPServerWrap", "Timeout"].every(
          (k) => (now.get(k) ?? 0) <= (beforeRes.get(k) ?? 0),
        );
      },
      {
        timeoutMs: 3000,
        what: `no leftover resources: ${JSON.stringify([...count()])} vs ${JSON.stringify([...beforeRes])}`,
      },
    );
    assert.equal(gw.state, "stopped");
    await gw.stop(); // idempotent
  });
});

describe("gateway stop({ force: true }) and closed()", () => {
  /** A gateway in front of one slow upstream, with a request in flight and a WebSocket open. */
  async function busyGateway(ns: string) {
    const up = await startGatewayUpstream({
      redis: redis.url,
      namespace: ns,
      name: "slow",
      routes: ["[get]/slow"],
    });
    const gw = createGateway({ redis: redis.url, namespace: ns, port: 0, limits: { stopGraceMs: 4000 } });
    const client = createTestClient();
    await gw.start();
    await routesReady(gw, "[get]/slow");
    const ws = new WebSocket(`${gw.url.replace("http", "ws")}/ws`);
    await once(ws, "open");
    const wsClosed = once(ws, "close") as Promise<[number]>;
    // Settles either way: a forced stop cuts the connection, so the request rejects.
    const slow = client.req(`${gw.url}/slow?delay=3000`).then(
      (r) => r.status,
      (err: Error) => err,
    );
    await waitFor(() => gw.inFlight === 1 && up.hits === 1, { what: "the request reached the upstream" });
    return { up, gw, client, wsClosed, slow };
  }

  test("an in-flight upstream request is cut at once instead of waiting for stopGraceMs", async () => {
    const { up, gw, client, wsClosed, slow } = await busyGateway(randomNamespace("gwforce"));
    try {
      let down: Error | undefined | "pending" = "pending";
      void gw.closed().then((r) => {
        down = r;
      });
      const t0 = Date.now();
      await gw.stop({ force: true });
      const took = Date.now() - t0;
      assert.ok(took < 1500, `stop({ force: true }) took ${took} ms (grace 4000, upstream delay 3000)`);
      const outcome = await slow;
      assert.ok(
        outcome instanceof Error,
        `the in-flight request was cut, not answered (got ${String(outcome)})`,
      );
      const [code] = await wsClosed;
      assert.notEqual(code, 1001, "the WebSocket was terminated, not closed politely");
      assert.equal(gw.state, "stopped");
      assert.equal(gw.inFlight, 0);
      await new Promise((resolve) => setImmediate(resolve));
      assert.equal(down, undefined, "closed() resolved, without a reason, after a requested stop");
      await assert.rejects(client.req(`${gw.url}/slow`), /ECONNREFUSED/);
    } finally {
      await client.close();
      await up.stop();
    }
  });

  test("a forced stop cuts short a graceful stop under way (one memoised promise)", async () => {
    const { up, gw, client, wsClosed, slow } = await busyGateway(randomNamespace("gwescalate"));
    try {
      const t0 = Date.now();
      const graceful = gw.stop();
      const [code] = await wsClosed;
      assert.equal(code, 1001, "the graceful stop closed the WebSocket with 1001");
      assert.equal(gw.state, "stopping");
      assert.equal(gw.inFlight, 1, "the graceful stop is waiting for the request");
      const forced = gw.stop({ force: true });
      assert.equal(forced, graceful, "stop() is memoised");
      await forced;
      const took = Date.now() - t0;
      assert.ok(took < 2000, `the forced stop ended the wait at once (took ${took} ms, grace 4000)`);
      assert.ok((await slow) instanceof Error, "the in-flight request was cut");
      assert.equal(gw.state, "stopped");
      assert.equal(await gw.closed(), undefined);
    } finally {
      await client.close();
      await up.stop();
    }
  });

  test("closed(): pending while running, the start's error after a failed start", async () => {
    const ns = randomNamespace("gwclosed");
    const first = createGateway({ redis: redis.url, namespace: ns, port: 0 });
    await first.start();
    const second = createGateway({ redis: redis.url, namespace: ns, port: first.port });
    try {
      const pending = Symbol("pending");
      const early = await Promise.race([
        first.closed(),
        new Promise((resolve) => setTimeout(() => resolve(pending), 50)),
      ]);
      assert.equal(early, pending, "closed() does not resolve while the gateway runs");
      const startError = await second.start().then(
        () => undefined,
        (err: Error) => err,
      );
      assert.match(String(startError), /EADDRINUSE/);
      assert.equal(await second.closed(), startError, "closed() resolves with the start's error");
      await second.stop(); // nothing left to stop: resolves at once
      assert.equal(second.state, "stopped");
      await assert.rejects(second.start(), { code: "ERR_ALREADY_STARTED" });
    } finally {
      await first.stop();
    }
    assert.equal(await first.closed(), undefined);
  });
});
