import assert from "node:assert/strict";
import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createRedisConnection } from "../../src/index.js";
import { startRedis } from "../helpers/redis-server.js";

// node-redis 6 assigns the socket it is connecting only after the TCP connect resolves, so a
// destroy() during that window found nothing to close and the socket then finished its handshake and
// stayed open (keeping the process alive: a Ctrl-C'd `redmesh dashboard` did not exit).
test("destroy() while the TCP connect is pending leaves no socket open", async () => {
  const redis = await startRedis();
  try {
    const attempts = 20;
    const t0 = performance.now();
    for (let i = 0; i < attempts; i++) {
      const conn = createRedisConnection({ redis: redis.url, clientName: "destroy-race" });
      const connecting = conn.connect().catch((err: unknown) => err);
      conn.destroy();
      const err = await connecting;
      assert.equal((err as { code?: string }).code, "ERR_REDIS_UNAVAILABLE", "the pending connect() fails");
    }
    assert.ok(performance.now() - t0 < 1000, "pending connect() calls fail at once, not at their timeout");
    await sleep(300);
    const list = await redis.cli("CLIENT", "LIST");
    const leaked = list.split("\n").filter((l) => l.includes("name=destroy-race"));
    assert.deepEqual(leaked, [], `${leaked.length} of ${attempts} destroyed connections are still open`);
  } finally {
    await redis.stop();
  }
});
