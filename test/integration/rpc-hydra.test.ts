import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { createService, type Service } from "../../src/index.js";
import { type HydraPeer, startHydraPeer } from "../helpers/hydra.js";
import { startRedis, type TestRedis, waitFor } from "../helpers/redis-server.js";

// Hydra's key prefix is hard-wired to "hydra:service", so this suite owns its own Redis.
describe("Hydra interop: messaging and RPC (namespace hydra)", () => {
  let redis: TestRedis;
  let peer: HydraPeer;
  let svc: Service;
  const got: Array<{ body: unknown; from: string }> = [];

  before(async () => {
    redis = await startRedis();
    peer = await startHydraPeer(redis.url, "hydra-svc");
    svc = createService({ name: "rm-svc", namespace: "hydra", redis: redis.url });
    svc.on("message", (m) => got.push({ body: m.body, from: m.from }));
    await svc.start();
  });
  after(async () => {
    await svc?.stop();
    await peer?.stop();
    await redis?.stop();
  });

  test("a Hydra sendMessage reaches redmesh on('message') (to the service and to the instance)", async () => {
    await peer.call("sendMessage", { to: "rm-svc:/", frm: "hydra-svc:/", bdy: { n: 1 } });
    await peer.call("sendMessage", { to: `${svc.instanceId}@rm-svc:/`, frm: "hydra-svc:/", bdy: { n: 2 } });
    await waitFor(() => got.length === 2, { what: "two Hydra messages" });
    assert.deepEqual(
      got.map((g) => g.body),
      [{ n: 1 }, { n: 2 }],
    );
    assert.equal(got[0]?.from, "hydra-svc:/");
  });

  test("a redmesh call to a Hydra service answering with sendReplyMessage resolves", async () => {
    await peer.call("autoReply", true);
    const r = await svc.call<{ echo: unknown; to: string; by: string }>(
      "hydra-svc",
      "lookup",
      { id: 42 },
      {
        timeout: 3000,
      },
    );
    assert.deepEqual(r.echo, { id: 42 });
    assert.equal(r.by, "hydra");
    assert.equal(r.to, `${peer.iid}@hydra-svc:/lookup`);
    // Several at once: each reply is matched by rmid.
    const many = await Promise.all(
      [1, 2, 3, 4, 5].map((i) => svc.call<{ echo: number }>("hydra-svc", "x", i)),
    );
    assert.deepEqual(
      many.map((m) => m.echo),
      [1, 2, 3, 4, 5],
    );
    assert.equal(svc.stats().rpc.pending, 0);
  });

  test("redmesh send reaches Hydra as plain UMF (never a coalesced frame)", async () => {
    await peer.call("autoReply", false);
    const before = peer.messages.length;
    await Promise.all([svc.send("hydra-svc", { hi: 1 }), svc.send("hydra-svc", { hi: 2 })]);
    await waitFor(() => peer.messages.length >= before + 2, { what: "Hydra to receive both" });
    const last = peer.messages.slice(before) as Array<{ bdy: unknown; frm: string; ver: string }>;
    assert.deepEqual(
      last.map((m) => m.bdy).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))),
      [{ hi: 1 }, { hi: 2 }],
    );
    assert.equal(last[0]?.frm, `${svc.instanceId}@rm-svc:/`);
  });
});
