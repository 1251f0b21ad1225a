import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { startCluster, startSentinel } from "../helpers/redis-cluster.js";
import { waitFor } from "../helpers/redis-server.js";

describe("test harness: real local Cluster and Sentinel topologies", () => {
  test("a 3-master + 3-replica cluster: created, in sync, survives a master kill, torn down", async () => {
    const cluster = await startCluster();
    try {
      const masters = await cluster.masters();
      assert.equal(masters.length, 3);
      assert.equal(cluster.urls.length, 6);
      const slots = await cluster.nodes[0]?.cli("CLUSTER", "INFO");
      assert.match(slots ?? "", /cluster_slots_ok:16384/);
      // Kill one master: its replica takes over within node timeout + failover time.
      const victim = masters[0];
      assert.ok(victim);
      await victim.kill();
      await waitFor(async () => (await cluster.masters()).length === 3, {
        timeoutMs: 15_000,
        intervalMs: 100,
        what: "a replica promoted",
      });
      assert.ok(!(await cluster.masters()).includes(victim));
    } finally {
      await cluster.stop();
    }
  });

  test("sentinel: 1 primary, 1 replica, 3 sentinels; a killed primary fails over to the replica", async () => {
    const s = await startSentinel();
    try {
      assert.equal(await s.masterPort(), s.primary.port);
      await s.primary.kill();
      await waitFor(async () => (await s.masterPort()) === s.replica.port, {
        timeoutMs: 15_000,
        intervalMs: 100,
        what: "sentinel failover",
      });
      assert.match(await s.replica.cli("ROLE"), /^master/);
    } finally {
      await s.stop();
    }
  });
});
