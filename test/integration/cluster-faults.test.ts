/**
 * Faults on real Redis topologies under application load (issue 8; docs/reliability.md "Cluster and
 * Sentinel"): a Cluster master SIGKILLed, slots resharded, a Sentinel failover. Services call each
 * other, add and work queue jobs and send sharded-channel messages throughout; the criteria are
 * measured on what the application saw.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { slotOf, startCluster, type TestCluster } from "../helpers/redis-cluster.js";
import { randomNamespace, type TestRedis, waitFor } from "../helpers/redis-server.js";
import { drain, jobReport, reportStream, startTraffic, useFaultHarness, warmUp } from "../helpers/traffic.js";

const NODE_TIMEOUT_MS = 1000;

const { svc, track } = useFaultHarness();

/**
 * A service name (`<base>-<i>`) whose `{name}` slot satisfies `wanted(slot, master)`, given the
 * masters' slot ranges.
 */
function nameWhere(
  ranges: Map<TestRedis, Array<[number, number]>>,
  base: string,
  wanted: (slot: number, master: TestRedis) => boolean,
): string {
  for (let i = 0; i < 20_000; i++) {
    const name = `${base}-${i}`;
    const slot = slotOf(`{${name}}`);
    for (const [m, rs] of ranges)
      if (rs.some(([a, b]) => slot >= a && slot <= b) && wanted(slot, m)) return name;
  }
  throw new Error(`no name for ${base}`);
}

describe("Redis Cluster faults under load", () => {
  let cluster: TestCluster;
  before(async () => {
    cluster = await startCluster({ nodeTimeoutMs: NODE_TIMEOUT_MS });
  });
  after(async () => {
    await cluster?.stop();
  });

  test("the harness's slot computation agrees with CLUSTER KEYSLOT", async () => {
    for (const k of ["{alpha}", "x{beta}y", "plain", "{}", "a{}{b}", "ns:service:{svc-7}:mq:jobs"])
      assert.equal(slotOf(k), await cluster.keySlot(k), k);
  });

  test("a master SIGKILLed under RPC, queue and message load: traffic back within node timeout + 3 s, no acknowledged job lost", async (t) => {
    await cluster.waitHealthy();
    const masters = await cluster.masters();
    const victim = masters[0];
    assert.ok(victim);
    const ns = randomNamespace("ck");
    const redis = { cluster: cluster.urls };
    // One loaded service whose slot the victim owns, one elsewhere, and the caller elsewhere too.
    const ranges = await cluster.slotRanges();
    const onVictim = nameWhere(ranges, "alpha", (_, m) => m === victim);
    const elsewhere = nameWhere(ranges, "beta", (_, m) => m !== victim);
    const callerName = nameWhere(ranges, "caller", (_, m) => m !== victim);
    const a = svc(onVictim, ns, redis);
    const b = svc(elsewhere, ns, redis);
    const caller = svc(callerName, ns, redis);
    await Promise.all([a.start(), b.start(), caller.start()]);
    await warmUp(caller, [a, b]);

    const traffic = startTraffic({ caller, targets: [a, b], callTimeoutMs: 1000 });
    track(traffic);
    await sleep(1500);
    const killAt = performance.now();
    await victim.kill();
    // Redis' own part: until a replica is master of the victim's slots again.
    await waitFor(async () => (await cluster.masters()).length === 3, {
      timeoutMs: 15_000,
      intervalMs: 50,
      what: "a replica promoted",
    });
    const promotedMs = performance.now() - killAt;
    // Keep the load on well past the criterion so a late relapse shows.
    await sleep(Math.max(0, NODE_TIMEOUT_MS + 3000 + 2000 - (performance.now() - killAt)));
    await drain(traffic, 20_000);

    const reports = traffic.streams.map((s) => reportStream(s, killAt));
    const jobs = jobReport(traffic);
    for (const r of reports) t.diagnostic(JSON.stringify(r));
    for (const j of jobs)
      t.diagnostic(
        `${j.service}: acked ${j.acked}, processed ${j.processed}, lost ${j.lost.length}, duplicates ${j.duplicates}`,
      );
    t.diagnostic(`replica promoted ${promotedMs.toFixed(0)} ms after the kill`);
    t.diagnostic(
      `error events: ${traffic.errorEvents.length} ${JSON.stringify(traffic.errorEvents.slice(0, 5))}`,
    );

    // Every failure was a typed error, and no call outlived its timeout (+250 ms of scheduling slack).
    for (const r of reports) {
      assert.deepEqual(
        Object.keys(r.codes).filter((c) => c.startsWith("UNTYPED")),
        [],
        `${r.name}: untyped errors`,
      );
      if (r.name.startsWith("call")) assert.ok(r.slowestMs < 1250, `${r.name}: slowest ${r.slowestMs} ms`);
    }
    // Traffic back within node timeout + 3 s.
    const back = Math.max(...reports.map((r) => Math.max(r.backMs ?? 0, r.outageMs)));
    t.diagnostic(`traffic back ${back.toFixed(0)} ms after the kill (criterion ${NODE_TIMEOUT_MS + 3000})`);
    assert.ok(
      back <= NODE_TIMEOUT_MS + 3000,
      `traffic back ${back.toFixed(0)} ms after the kill: ${reports.map((r) => `${r.name} ${r.backMs?.toFixed(0)}`).join(", ")}`,
    );
    // Zero acknowledged jobs lost (at-least-once: duplicates allowed, counted above).
    for (const j of jobs) {
      assert.ok(j.acked > 100, `${j.service}: load was real (${j.acked} acked)`);
      assert.deepEqual(j.lost, [], `${j.service}: acknowledged jobs never processed`);
    }
    // The old master comes back as a replica (the next test needs every node reachable).
    await victim.restart();
    await cluster.waitHealthy();
  });

  test("slots resharded under load (the slots of a loaded service and of the caller): 0 errors seen by the application", async (t) => {
    await cluster.waitHealthy();
    const ranges = await cluster.slotRanges();
    const [x, y, z] = [...ranges.keys()];
    assert.ok(x && y && z);
    // redis-cli moves the source's lowest slots first: put the services among the first SLOTS.
    const SLOTS = 200;
    const low = (m: TestRedis) => Math.min(...(ranges.get(m) ?? []).map(([a]) => a));
    const ns = randomNamespace("cr");
    const redis = { cluster: cluster.urls };
    const moving = nameWhere(ranges, "alpha", (slot, m) => m === x && slot < low(x) + SLOTS);
    const staying = nameWhere(ranges, "beta", (_, m) => m === y);
    const callerName = nameWhere(ranges, "caller", (slot, m) => m === z && slot < low(z) + SLOTS);
    const a = svc(moving, ns, redis);
    const b = svc(staying, ns, redis);
    const caller = svc(callerName, ns, redis);
    await Promise.all([a.start(), b.start(), caller.start()]);
    await warmUp(caller, [a, b]);
    // Filler keys in the two moving slots: redis-cli migrates a slot 10 keys per MIGRATE, so the
    // slot stays half-moved (some of its keys on each node: ASK redirects, TRYAGAIN for scripts
    // whose keys are split) for a while instead of a few milliseconds.
    const FILLERS = 20_000;
    for (const name of [moving, callerName])
      for (let i = 0; i < FILLERS; i += 1000)
        await caller.redis.command([
          "MSET",
          ...Array.from({ length: 1000 }, (_, j) => [`filler:{${name}}:${i + j}`, "x"]).flat(),
        ]);

    const traffic = startTraffic({ caller, targets: [a, b], callTimeoutMs: 2000 });
    track(traffic);
    await sleep(1000);
    const t0 = performance.now();
    // The loaded service's slot moves to y, then the caller's (its reply channel) to x.
    await cluster.reshard(x, y, SLOTS);
    const first = performance.now() - t0;
    await cluster.reshard(z, x, SLOTS);
    const second = performance.now() - t0 - first;
    assert.equal(await cluster.masterOf(slotOf(`{${moving}}`)), y, "the loaded service's slot moved");
    assert.equal(await cluster.masterOf(slotOf(`{${callerName}}`)), x, "the caller's slot moved");
    await sleep(1500);
    const sentBefore = new Map([...traffic.sent].map(([k, v]) => [k, v.size]));
    await sleep(500);
    await drain(traffic, 10_000);
    // Let the last messages arrive.
    await sleep(200);

    const reports = traffic.streams.map((s) => reportStream(s, t0));
    const jobs = jobReport(traffic);
    for (const r of reports) t.diagnostic(JSON.stringify(r));
    for (const j of jobs)
      t.diagnostic(
        `${j.service}: acked ${j.acked}, processed ${j.processed}, lost ${j.lost.length}, duplicates ${j.duplicates}`,
      );
    const messages = [...traffic.sent].map(([svcName, ok]) => {
      const got = traffic.received.get(svcName) ?? new Set<number>();
      return { svcName, sent: ok.size, lost: [...ok].filter((n) => !got.has(n)).length };
    });
    t.diagnostic(
      `reshards took ${first.toFixed(0)} and ${second.toFixed(0)} ms; messages ${JSON.stringify(messages)}`,
    );
    t.diagnostic(
      `error events: ${traffic.errorEvents.length} ${JSON.stringify(traffic.errorEvents.slice(0, 5))}`,
    );

    for (const r of reports) assert.deepEqual(r.codes, {}, `${r.name}: errors seen by the application`);
    assert.deepEqual(traffic.errorEvents, [], "error events of services and queues");
    for (const j of jobs) {
      assert.ok(j.acked > 100, `${j.service}: load was real (${j.acked} acked)`);
      assert.deepEqual(j.lost, [], `${j.service}: acknowledged jobs never processed`);
    }
    for (const m of messages)
      assert.equal(m.lost, 0, `${m.svcName}: sent (acknowledged) messages that never arrived`);
    // Messages kept arriving after the slots moved.
    for (const [svcName, n] of sentBefore)
      assert.ok((traffic.sent.get(svcName)?.size ?? 0) > n, `${svcName}: messages sent after the reshard`);
  });
});
