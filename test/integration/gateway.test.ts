import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createGateway, type Gateway } from "../../src/gateway/index.js";
import { startGatewayUpstream, type Upstream } from "../fixtures/gateway-upstream.js";
import { createTestClient, rawBody, rawHttp, rawStatus } from "../helpers/gateway-client.js";
import { randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

type Echo = {
  service: string;
  instance: string;
  method: string;
  url: string;
  headers: Record<string, string>;
  bodyBytes: number;
  body: string;
};
type ErrBody = { error: { code: string; message: string } };

let redis: TestRedis;
before(async () => {
  redis = await startRedis();
});
after(async () => {
  await redis.stop();
});

/** Wait until the gateway's table has every pattern. */
async function routesReady(gw: Gateway, patterns: string[]): Promise<void> {
  await waitFor(() => patterns.every((p) => gw.routes().some((r) => r.pattern === p)), {
    what: `routes ${patterns.join(", ")}`,
  });
}

describe("gateway: routing, limits and errors over real HTTP", () => {
  const ns = randomNamespace("gw");
  let gw: Gateway;
  let orders: Upstream;
  let specials: Upstream;
  const client = createTestClient();
  let base: string;

  before(async () => {
    orders = await startGatewayUpstream({
      redis: redis.url,
      namespace: ns,
      name: "orders",
      routes: [
        "[get]/v1/orders/:id",
        "[post]/v1/orders",
        "[delete]/v1/orders/:id",
        "[get]/v1/orders/:id/items/:item",
      ],
    });
    specials = await startGatewayUpstream({
      redis: redis.url,
      namespace: ns,
      name: "specials",
      routes: ["[get]/v1/orders/special", "[all]/v1/files/*"],
    });
    gw = createGateway({
      redis: redis.url,
      namespace: ns,
      port: 0,
      limits: { maxBodyBytes: 1024, upstreamTimeoutMs: 400, headersTimeoutMs: 300, requestTimeoutMs: 2000 },
    });
    await gw.start();
    base = gw.url;
    await routesReady(gw, ["[get]/v1/orders/:id", "[get]/v1/orders/special"]);
  });
  after(async () => {
    await client.close();
    await gw.stop();
    await orders.stop();
    await specials.stop();
  });

  test("routes by method and path, forwards params, query and body", async () => {
    const r = await client.req(`${base}/v1/orders/42/items/7?x=1&y=%2F`);
    assert.equal(r.status, 200);
    const e = r.json<Echo>();
    assert.equal(e.service, "orders");
    assert.equal(e.url, "/v1/orders/42/items/7?x=1&y=%2F");
    const p = await client.req(`${base}/v1/orders`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sku: "A1" }),
    });
    assert.equal(p.status, 200);
    assert.equal(p.json<Echo>().body, '{"sku":"A1"}');
    assert.equal(p.json<Echo>().method, "POST");
  });

  test("most specific route wins across services", async () => {
    assert.equal((await client.req(`${base}/v1/orders/special`)).json<Echo>().service, "specials");
    assert.equal((await client.req(`${base}/v1/orders/special2`)).json<Echo>().service, "orders");
    const f = await client.req(`${base}/v1/files/a/b.txt`, { method: "PUT", body: "x" });
    assert.equal(f.json<Echo>().service, "specials");
  });

  test("404 for unknown paths, 405 with Allow for a wrong method, as JSON without internals", async () => {
    const nf = await client.req(`${base}/v2/nothing`);
    assert.equal(nf.status, 404);
    assert.equal(nf.json<ErrBody>().error.code, "ERR_NOT_FOUND");
    const na = await client.req(`${base}/v1/orders`, { method: "PUT", body: "{}" });
    assert.equal(na.status, 405);
    assert.equal(na.headers.allow, "POST");
    assert.equal(na.json<ErrBody>().error.code, "ERR_METHOD_NOT_ALLOWED");
    for (const r of [nf, na]) {
      assert.doesNotMatch(r.text, new RegExp(`${ns}|:service:|at .*\\.ts`));
    }
  });

  test("hop-by-hop headers are stripped both ways; X-Forwarded-* and a request id are added", async () => {
    // Raw bytes: HTTP client libraries refuse to send most of these headers themselves.
    const raw = await rawHttp(Number(new URL(base).port), [
      "GET /v1/orders/1 HTTP/1.1\r\nHost: api.example\r\nConnection: close, x-custom\r\nX-Custom: secret\r\n" +
        "Keep-Alive: timeout=5\r\nProxy-Authorization: Basic Zm9v\r\nTE: trailers\r\nUpgrade: h2c\r\n" +
        "X-End-To-End: kept\r\n\r\n",
    ]);
    assert.equal(rawStatus(raw), 200, raw);
    const head = raw.slice(0, raw.indexOf("\r\n\r\n"));
    const h = (JSON.parse(rawBody(raw)) as Echo).headers;
    for (const name of ["x-custom", "keep-alive", "proxy-authorization", "te", "upgrade"]) {
      assert.equal(h[name], undefined, `${name} reached the upstream`);
    }
    assert.equal(h["x-end-to-end"], "kept");
    assert.equal(h["x-forwarded-for"], "127.0.0.1");
    assert.equal(h["x-forwarded-proto"], "http");
    assert.equal(h["x-forwarded-host"], "api.example");
    assert.notEqual(h.host, "api.example");
    assert.match(h["x-request-id"] ?? "", /^[0-9a-f-]{36}$/);
    assert.match(head, new RegExp(`^x-request-id: ${h["x-request-id"]}$`, "im"));
    // The upstream named x-upstream-hop in its Connection header: it must not reach the client.
    assert.doesNotMatch(head, /x-upstream-hop/i);
    assert.match(head, /^x-upstream: ok$/im);
    // A sane client request id is kept.
    const k = await client.req(`${base}/v1/orders/1`, { headers: { "x-request-id": "abc-123" } });
    assert.equal(k.json<Echo>().headers["x-request-id"], "abc-123");
  });

  test("body over the limit: 413 by Content-Length and by counting a chunked body", async () => {
    const big = "x".repeat(2048);
    const r = await client.req(`${base}/v1/orders`, { method: "POST", body: big });
    assert.equal(r.status, 413);
    assert.equal(r.json<ErrBody>().error.code, "ERR_PAYLOAD_TOO_LARGE");
    async function* chunked() {
      for (let i = 0; i < 8; i++) yield Buffer.alloc(512, 97);
    }
    const c = await client.req(`${base}/v1/orders`, { method: "POST", body: chunked() });
    assert.equal(c.status, 413);
    const ok = await client.req(`${base}/v1/orders`, { method: "POST", body: "y".repeat(1000) });
    assert.equal(ok.status, 200);
    assert.equal(ok.json<Echo>().bodyBytes, 1000);
  });

  test("slow upstream: 504 after upstreamTimeoutMs", async () => {
    const t0 = Date.now();
    const r = await client.req(`${base}/v1/orders/1?delay=2000`);
    const took = Date.now() - t0;
    assert.equal(r.status, 504);
    assert.equal(r.json<ErrBody>().error.code, "ERR_TIMEOUT");
    assert.ok(took >= 350 && took < 1500, `took ${took} ms`);
  });

  test("a client too slow with its headers gets 408", async () => {
    const t0 = Date.now();
    const out = await rawHttp(Number(new URL(base).port), ["GET /v1/orders/1 HTTP/1.1\r\nHost: x\r\n"], {
      timeoutMs: 3000,
    });
    assert.equal(rawStatus(out), 408, out);
    assert.ok(Date.now() - t0 < 2500);
  });

  test("traversal, encoded slashes, NUL and bad encodings: 400 before any routing", async () => {
    const port = Number(new URL(base).port);
    const before = orders.hits + specials.hits;
    for (const target of [
      "/v1/orders/../orders/1",
      "/v1/files/%2e%2e/secret",
      "/v1/files/a%2Fb",
      "/v1/files/a%5cb",
      "/v1/orders/1%00",
      "/v1/orders/%zz",
    ]) {
      const out = await rawHttp(port, [`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`]);
      assert.equal(rawStatus(out), 400, `${target}: ${out.slice(0, 200)}`);
      assert.match(out, /ERR_BAD_PATH/);
    }
    assert.equal(orders.hits + specials.hits, before, "nothing reached a service");
  });

  test("an instance without an HTTP address and no RPC forwarder: 503 ERR_RPC_UNAVAILABLE", async () => {
    const rpcOnly = await startGatewayUpstream({
      redis: redis.url,
      namespace: ns,
      name: "rpc-only",
      routes: ["[get]/v1/rpc/:x"],
      noHttp: true,
    });
    try {
      await routesReady(gw, ["[get]/v1/rpc/:x"]);
      const r = await client.req(`${base}/v1/rpc/1`);
      assert.equal(r.status, 503);
      assert.equal(r.json<ErrBody>().error.code, "ERR_RPC_UNAVAILABLE");
    } finally {
      await rpcOnly.stop();
    }
  });

  test("/healthz reports the registry reachable", async () => {
    const r = await client.req(`${base}/healthz`);
    assert.equal(r.status, 200);
    assert.equal(r.json<{ registry: string }>().registry, "reachable");
  });
});

describe("gateway: RPC seam", () => {
  test("forwards to the invoker with params, query, filtered headers and parsed JSON body", async () => {
    const ns = randomNamespace("gwrpc");
    const up = await startGatewayUpstream({
      redis: redis.url,
      namespace: ns,
      name: "inventory",
      routes: ["[post]/v1/reserve/:sku", "[get]/v1/slow"],
      noHttp: true,
    });
    const calls: Array<{ target: unknown; request: Record<string, unknown> }> = [];
    const gw = createGateway({
      redis: redis.url,
      namespace: ns,
      port: 0,
      limits: { upstreamTimeoutMs: 300 },
      rpc: async (target, request, { signal }) => {
        calls.push({ target, request: request as unknown as Record<string, unknown> });
        if (request.path === "/v1/slow") {
          await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
          throw new Error("aborted");
        }
        return {
          status: 201,
          headers: { "x-rpc": "yes", connection: "close" },
          body: { ok: true, echo: request.body },
        };
      },
    });
    const client = createTestClient();
    try {
      await gw.start();
      await routesReady(gw, ["[post]/v1/reserve/:sku"]);
      const r = await client.req(`${gw.url}/v1/reserve/A1?qty=2&qty=3`, {
        method: "POST",
        headers: { "content-type": "application/json", "proxy-foo": "t1" },
        body: JSON.stringify({ n: 1 }),
      });
      assert.equal(r.status, 201, r.text);
      assert.deepEqual(r.json(), { ok: true, echo: { n: 1 } });
      assert.equal(r.headers["x-rpc"], "yes");
      const call = calls[0];
      assert.ok(call);
      assert.deepEqual(call.target, { service: "inventory", instanceId: up.iid });
      assert.equal(call.request.method, "POST");
      assert.deepEqual({ ...(call.request.params as object) }, { sku: "A1" });
      assert.deepEqual({ ...(call.request.query as object) }, { qty: ["2", "3"] });
      const sent = call.request.headers as Record<string, string>;
      assert.equal(sent["proxy-foo"], undefined);
      assert.equal(sent["x-forwarded-for"], "127.0.0.1");
      const slow = await client.req(`${gw.url}/v1/slow`);
      assert.equal(slow.status, 504);
    } finally {
      await client.close();
      await gw.stop();
      await up.stop();
    }
  });
});

describe("gateway: instances dying", () => {
  test("a killed instance is skipped at once (idempotent retry); 503 when none is left", async () => {
    const { startFixture } = await import("../helpers/child.js");
    const ns = randomNamespace("gwkill");
    const routes = JSON.stringify(["[get]/v1/flaky/:id"]);
    const a = await startFixture<{ iid: string }>("gateway-upstream", [redis.url, ns, "flaky", routes]);
    const b = await startFixture<{ iid: string }>("gateway-upstream", [redis.url, ns, "flaky", routes]);
    const gw = createGateway({ redis: redis.url, namespace: ns, port: 0 });
    const client = createTestClient();
    try {
      await gw.start();
      await routesReady(gw, ["[get]/v1/flaky/:id"]);
      const seen = new Set<string>();
      for (let i = 0; i < 6; i++)
        seen.add((await client.req(`${gw.url}/v1/flaky/${i}`)).json<Echo>().instance);
      assert.deepEqual([...seen].sort(), [a.hello.iid, b.hello.iid].sort(), "round-robin reaches both");
      await a.kill();
      for (let i = 0; i < 10; i++) {
        const r = await client.req(`${gw.url}/v1/flaky/${i}`);
        assert.equal(r.status, 200, `request ${i} after the kill: ${r.text}`);
        assert.equal(r.json<Echo>().instance, b.hello.iid);
      }
      await b.kill();
      const r = await client.req(`${gw.url}/v1/flaky/1`);
      assert.equal(r.status, 503, r.text);
      assert.equal(r.json<ErrBody>().error.code, "ERR_NO_INSTANCE");
      assert.doesNotMatch(r.text, /127\.0\.0\.1|ECONNREFUSED/);
    } finally {
      await client.close();
      await gw.stop();
      await a.kill();
      await b.kill();
    }
  });

  test("pick seam decides; a refused connection is retried for GET only, POST gets 502", async () => {
    const { createService } = await import("../../src/index.js");
    const { freePort } = await import("../helpers/redis-server.js");
    const ns = randomNamespace("gwpick");
    const routes = ["[get]/v1/p/:id", "[post]/v1/p"];
    const live = await startGatewayUpstream({ redis: redis.url, namespace: ns, name: "picky", routes });
    // An instance advertising a port nobody listens on (what a crashed process looks like until its TTL).
    const ghost = createService({
      name: "picky",
      redis: redis.url,
      namespace: ns,
      ip: "127.0.0.1",
      port: await freePort(),
    });
    await ghost.registerRoutes(routes);
    await ghost.start();
    const picks: string[][] = [];
    const gw = createGateway({
      redis: redis.url,
      namespace: ns,
      port: 0,
      // Always try the ghost first when it is a candidate.
      pick: (_svc, candidates) => {
        picks.push(candidates.map((c) => c.id));
        return candidates.find((c) => c.id === ghost.instanceId) ?? candidates[0];
      },
    });
    const client = createTestClient();
    try {
      await gw.start();
      await routesReady(gw, ["[post]/v1/p"]);
      await waitFor(async () => (await gw.service.registry.instances("picky")).length === 2);
      const post = await client.req(`${gw.url}/v1/p`, { method: "POST", body: "{}" });
      assert.equal(post.status, 502, post.text);
      assert.equal(post.json<ErrBody>().error.code, "ERR_UPSTREAM");
      assert.equal(live.hits, 0, "a POST is never sent twice");
      // The ghost is now suspect: GETs go to the live instance (and would be retried if they did not).
      const get = await client.req(`${gw.url}/v1/p/1`);
      assert.equal(get.status, 200);
      assert.equal(get.json<Echo>().instance, live.iid);
      assert.ok(picks.length >= 2 && picks.every((c) => c.length >= 1));
      const metrics = await client.req(`${gw.url}/metrics`);
      assert.match(metrics.text, /redmesh_gateway_upstream_errors_total\{service="picky",kind="connect"\} 1/);
    } finally {
      await client.close();
      await gw.stop();
      await ghost.stop();
      await live.stop();
    }
  });

  test("GET retried on the next instance after a refused connection, in one request", async () => {
    const { createService } = await import("../../src/index.js");
    const { freePort } = await import("../helpers/redis-server.js");
    const ns = randomNamespace("gwretry");
    const live = await startGatewayUpstream({
      redis: redis.url,
      namespace: ns,
      name: "r",
      routes: ["[get]/r"],
    });
    const ghost = createService({
      name: "r",
      redis: redis.url,
      namespace: ns,
      ip: "127.0.0.1",
      port: await freePort(),
    });
    await ghost.registerRoutes(["[get]/r"]);
    await ghost.start();
    let calls = 0;
    const gw = createGateway({
      redis: redis.url,
      namespace: ns,
      port: 0,
      pick: (_svc, candidates) => {
        calls++;
        return candidates.find((c) => c.id === ghost.instanceId) ?? candidates[0];
      },
    });
    const client = createTestClient();
    try {
      await gw.start();
      await routesReady(gw, ["[get]/r"]);
      await waitFor(async () => (await gw.service.registry.instances("r")).length === 2);
      const r = await client.req(`${gw.url}/r`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.json<Echo>().instance, live.iid);
      assert.equal(calls, 2, "picked the ghost, then the live instance");
    } finally {
      await client.close();
      await gw.stop();
      await ghost.stop();
      await live.stop();
    }
  });

  test("balancer seam: outstanding counted per attempt, circuit opens on a dead instance (503 ERR_CIRCUIT_OPEN)", async () => {
    const { createBalancer, createService } = await import("../../src/index.js");
    const { freePort } = await import("../helpers/redis-server.js");
    const ns = randomNamespace("gwbal");
    const fine = await startGatewayUpstream({
      redis: redis.url,
      namespace: ns,
      name: "fine",
      routes: ["[get]/fine"],
    });
    const ghost = createService({
      name: "broken",
      redis: redis.url,
      namespace: ns,
      ip: "127.0.0.1",
      port: await freePort(),
    });
    await ghost.registerRoutes(["[get]/broken"]);
    await ghost.start();
    const balancer = createBalancer({
      strategy: "round-robin",
      breaker: { consecutiveFailures: 2, cooldownMs: 60_000 },
    });
    const gw = createGateway({ redis: redis.url, namespace: ns, port: 0, balancer });
    const client = createTestClient();
    try {
      await gw.start();
      await routesReady(gw, ["[get]/fine", "[get]/broken"]);
      for (let i = 0; i < 3; i++) assert.equal((await client.req(`${gw.url}/fine`)).status, 200);
      assert.equal(balancer.stats().instances[fine.iid]?.outstanding, 0);
      // A refused connection evicts the instance from the discovery cache until the next reconciliation
      // (its presence is still alive); wait for it to be offered again each time.
      const offered = () =>
        waitFor(async () => (await gw.service.registry.instances("broken")).length === 1, {
          what: "ghost back",
        });
      for (let i = 0; i < 2; i++) {
        await offered();
        const r = await client.req(`${gw.url}/broken`);
        assert.equal(r.status, 503);
        assert.equal(r.json<ErrBody>().error.code, "ERR_NO_INSTANCE");
      }
      await offered();
      const open = await client.req(`${gw.url}/broken`);
      assert.equal(open.status, 503);
      assert.equal(open.json<ErrBody>().error.code, "ERR_CIRCUIT_OPEN");
      assert.equal(balancer.breakerState(ghost.instanceId), "open");
      assert.throws(() => createGateway({ pick: () => undefined, balancer }), {
        code: "ERR_INVALID_OPTIONS",
      });
    } finally {
      await client.close();
      await gw.stop();
      await ghost.stop();
      await fine.stop();
    }
  });
});
