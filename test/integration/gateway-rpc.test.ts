import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createGateway, type Gateway } from "../../src/gateway/index.js";
import { createService, type Service, ValidationError } from "../../src/index.js";
import { createTestClient, rawHttp, rawStatus } from "../helpers/gateway-client.js";
import { randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

describe("gateway → services without an HTTP server (svc.route over RPC)", () => {
  let redis: TestRedis;
  let gw: Gateway;
  const services: Service[] = [];
  const client = createTestClient();

  before(async () => {
    redis = await startRedis();
    const ns = randomNamespace("gwrpc");
    for (let i = 0; i < 2; i++) {
      const svc = createService({ name: "inventory", namespace: ns, redis: redis.url });
      // Routes declared before start() are registered when it starts.
      await svc.route("[get]/v1/items/:sku", (req) => ({
        body: { sku: req.params.sku, q: req.query.q, by: svc.instanceId, rid: req.headers["x-request-id"] },
      }));
      await svc.route("[post]/v1/items", (req) => {
        const b = req.body as { sku?: unknown };
        if (typeof b?.sku !== "string") throw new ValidationError("sku must be a string");
        return { status: 201, headers: { location: `/v1/items/${b.sku}` }, body: { created: b.sku } };
      });
      services.push(svc);
    }
    await Promise.all(services.map((s) => s.start()));
    // A route added after start() is registered at once (every instance of a service answers the same routes).
    await Promise.all(services.map((s) => s.route("[get]/v1/only-one", () => ({ body: "plain text" }))));
    // A handler that tries to inject a header through a value with CR LF.
    await Promise.all(
      services.map((s) =>
        s.route("[get]/v1/inject", () => ({ headers: { "x-note": "a\r\nset-cookie: evil=1" }, body: "x" })),
      ),
    );
    gw = createGateway({ redis: redis.url, namespace: ns, port: 0 });
    await gw.start();
    await waitFor(() => gw.routes().length >= 4, {
      what: `the route table (${JSON.stringify(gw.routes())})`,
    });
  });
  after(async () => {
    await client.close();
    await gw.stop();
    await Promise.all(services.map((s) => s.stop()));
    await redis.stop();
  });

  test("GET with params and query reaches a handler; both instances take turns", async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const r = await client.req(`${gw.url}/v1/items/A-1?q=blue`);
      assert.equal(r.status, 200, r.text);
      const body = r.json<{ sku: string; q: string; by: string; rid: string }>();
      assert.equal(body.sku, "A-1");
      assert.equal(body.q, "blue");
      assert.ok(body.rid, "x-request-id forwarded");
      seen.add(body.by);
    }
    assert.equal(seen.size, 2);
  });

  test("POST JSON: status, headers and body come back; a ValidationError answers 400", async () => {
    const ok = await client.req(`${gw.url}/v1/items`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sku: "B-2" }),
    });
    assert.equal(ok.status, 201);
    assert.equal(ok.headers.location, "/v1/items/B-2");
    assert.deepEqual(ok.json(), { created: "B-2" });
    const bad = await client.req(`${gw.url}/v1/items`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ sku: 7 }),
    });
    assert.equal(bad.status, 400);
    assert.match(bad.text, /sku must be a string/);
    assert.doesNotMatch(bad.text, /\n\s+at /, "no stack");
  });

  test("a text body is sent as is; a route registered after start() is routed", async () => {
    await waitFor(() => gw.routes().some((r) => r.pattern === "[get]/v1/only-one"));
    const r = await client.req(`${gw.url}/v1/only-one`);
    assert.equal(r.status, 200);
    assert.equal(r.text, "plain text");
  });

  test("header injection: a CR LF in a handler's header value never reaches the client; a bare CR in a request is refused", async () => {
    const r = await client.req(`${gw.url}/v1/inject`);
    assert.equal(r.status, 502);
    assert.equal(r.headers["set-cookie"], undefined);
    assert.equal(r.headers["x-note"], undefined);
    const raw = await rawHttp(gw.port, [
      "GET /v1/only-one HTTP/1.1\r\nHost: x\r\nX-Evil: a\rInjected: b\r\n\r\n",
    ]);
    assert.equal(rawStatus(raw), 400);
    // The gateway is still fine.
    assert.equal((await client.req(`${gw.url}/v1/only-one`)).status, 200);
  });
});
