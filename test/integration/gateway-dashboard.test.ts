import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createGateway, type Gateway } from "../../src/gateway/index.js";
import { createService, type Service } from "../../src/index.js";
import { randomNamespace, startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

describe("the gateway serves the dashboard, with every service's queues", () => {
  let redis: TestRedis;
  let gw: Gateway;
  let svc: Service;

  before(async () => {
    redis = await startRedis();
    const ns = randomNamespace("gwdash");
    svc = createService({ name: "mailer", namespace: ns, redis: redis.url });
    await svc.start();
    const q = svc.queue("emails");
    await q.addBulk([{ body: { to: "a" } }, { body: { to: "b" } }, { body: { to: "c" } }]);
    gw = createGateway({ redis: redis.url, namespace: ns, port: 0, dashboard: true });
    await gw.start();
  });
  after(async () => {
    await gw.stop();
    await svc.stop();
    await redis.stop();
  });

  test("the page and a snapshot with queue stats read from the queue index", async () => {
    const page = await fetch(`${gw.url}/dashboard/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<html/i);
    const snap = await waitFor(async () => {
      const s = (await (await fetch(`${gw.url}/dashboard/snapshot.json`)).json()) as {
        services: Array<{ name: string }>;
        queues: { available: boolean; items?: Array<{ service: string; queue: string; pending: number }> };
      };
      return s.queues.available && s.queues.items?.some((q) => q.queue === "emails") ? s : undefined;
    });
    assert.deepEqual(
      snap.queues.items?.find((q) => q.queue === "emails"),
      {
        service: "mailer",
        queue: "emails",
        pending: 3,
        inFlight: 0,
        delayed: 0,
        dead: 0,
        processed: 0,
        failed: 0,
      },
    );
  });

  test("a gateway without the option answers 404 there", async () => {
    const plain = createGateway({ redis: redis.url, namespace: randomNamespace("x"), port: 0 });
    await plain.start();
    try {
      assert.equal((await fetch(`${plain.url}/dashboard/`)).status, 404);
    } finally {
      await plain.stop();
    }
  });
});
