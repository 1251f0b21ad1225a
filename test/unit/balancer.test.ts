import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  createBalancer,
  HashRing,
  type Instance,
  isRedmeshError,
  type StrategyName,
  seededRandom,
  ValidationError,
} from "../../src/index.js";
import { FixedLoad, iid, instance, instances, tally } from "../helpers/balancer.js";

const ctx = { service: "svc" };
const ALL: StrategyName[] = ["random", "round-robin", "least-outstanding", "affinity"];

describe("balancer strategies", () => {
  test("random: 10,000 picks over 5 instances are uniform within 10 %", () => {
    const b = createBalancer({ strategy: "random", seed: 42 });
    const c = instances(5);
    const t = tally(10_000, () => b.pick(c, ctx));
    assert.equal(t.size, 5);
    // Binomial(10000, 0.2): sd = 40, so ±200 is 5 sd.
    for (const [id, n] of t) assert.ok(Math.abs(n - 2000) <= 200, `${id}: ${n}`);
  });

  test("random: different seeds give different sequences, one seed the same sequence", () => {
    const seq = (seed: number) => {
      const b = createBalancer({ strategy: "random", seed });
      const c = instances(5);
      return Array.from({ length: 50 }, () => b.pick(c, ctx)?.id).join();
    };
    assert.equal(seq(1), seq(1));
    assert.notEqual(seq(1), seq(2));
  });

  test("round-robin: exact rotation, draining and excluded instances skipped", () => {
    const b = createBalancer({ strategy: "round-robin" });
    const c = instances(5);
    const order = Array.from({ length: 10 }, () => b.pick(c, ctx)?.id);
    assert.deepEqual(
      order,
      [...c, ...c].map((i) => i.id),
    );
    const t = tally(1000, () => b.pick(c, ctx));
    for (const n of t.values()) assert.equal(n, 200);
    const d = [instance(iid(0)), instance(iid(1), "draining"), instance(iid(2)), instance(iid(3))];
    const b2 = createBalancer({ strategy: "round-robin" });
    const got = Array.from(
      { length: 6 },
      () => b2.pick(d, { service: "svc", exclude: new Set([iid(3)]) })?.id,
    );
    assert.deepEqual(got, [iid(0), iid(2), iid(0), iid(2), iid(0), iid(2)]);
  });

  test("least-outstanding: prefers idle instances and keeps outstanding counts even", () => {
    const b = createBalancer({ strategy: "least-outstanding", seed: 7 });
    const c = instances(5);
    // Two busy instances: 10 requests each in flight.
    for (let k = 0; k < 10; k++) {
      b.onStart("svc", iid(0));
      b.onStart("svc", iid(1));
    }
    const t = tally(3000, () => b.pick(c, ctx));
    const busy = (t.get(iid(0)) ?? 0) + (t.get(iid(1)) ?? 0);
    // P2C picks a busy one only when both draws are busy: (2/5)·(1/4) = 10 % of picks.
    assert.ok(busy <= 0.13 * 3000, `busy picks ${busy}`);
    assert.ok(busy >= 0.07 * 3000, `busy picks ${busy} (the sampled pair is random, not a scan)`);
    // Requests that never end: P2C keeps the spread tiny (max - min ≤ a few).
    const b2 = createBalancer({ strategy: "least-outstanding", seed: 3 });
    for (let k = 0; k < 10_000; k++) {
      const p = b2.pick(c, ctx)!;
      b2.onStart("svc", p.id);
    }
    const counts = c.map((i) => b2.outstanding(i.id));
    assert.equal(
      counts.reduce((a, x) => a + x, 0),
      10_000,
    );
    assert.ok(Math.max(...counts) - Math.min(...counts) <= 3, `spread ${counts}`);
  });

  test("least-outstanding: published in-flight and event-loop lag break ties and blend in", () => {
    const load = new FixedLoad();
    const c = instances(2);
    load.set(iid(0), { inFlight: 8 });
    load.set(iid(1), { inFlight: 0 });
    const b = createBalancer({ strategy: "least-outstanding", seed: 1, loadTracker: load });
    const t = tally(200, () => b.pick(c, ctx));
    assert.equal(t.get(iid(1)), 200, "with equal local counts the lightly loaded one wins");
    // Local outstanding dominates: 5 local requests on iid(1) outweigh 8 × 0.5 published on iid(0).
    for (let k = 0; k < 5; k++) b.onStart("svc", iid(1));
    assert.equal(b.pick(c, ctx)?.id, iid(0));
    // Lag: 100 ms above the 20 ms baseline adds 8 points.
    const load2 = new FixedLoad();
    load2.set(iid(0), { lagMs: 120 });
    load2.set(iid(1), { lagMs: 20 });
    const b2 = createBalancer({ strategy: "least-outstanding", seed: 1, loadTracker: load2 });
    for (let k = 0; k < 5; k++) b2.onStart("svc", iid(1));
    assert.equal(b2.pick(c, ctx)?.id, iid(1), "a lagging event loop counts as load");
    // A snapshot saying draining is honoured even before the registry says so.
    load2.set(iid(1), { status: "draining" });
    assert.equal(tally(50, () => b2.pick(c, ctx)).get(iid(1)), undefined);
  });

  test("affinity: a key sticks to one instance; keys spread evenly", () => {
    const b = createBalancer({ strategy: "affinity", seed: 1 });
    const c = instances(5);
    for (let k = 0; k < 100; k++) {
      const first = b.pick(c, { service: "svc", key: `user-${k}` })?.id;
      for (let r = 0; r < 5; r++) assert.equal(b.pick(c, { service: "svc", key: `user-${k}` })?.id, first);
      // Another balancer (another caller process) maps the key the same way, whatever the order.
      const other = createBalancer({ strategy: "affinity" });
      assert.equal(other.pick([...c].reverse(), { service: "svc", key: `user-${k}` })?.id, first);
    }
    const t = tally(10_000, (k) => b.pick(c, { service: "svc", key: `order:${k}` }));
    assert.equal(t.size, 5);
    // 160 virtual nodes: each share within ±25 % of even.
    for (const [id, n] of t) assert.ok(Math.abs(n - 2000) <= 500, `${id}: ${n}`);
  });

  test("affinity: when one of N leaves only its keys move; excluded instances pass keys clockwise", () => {
    const b = createBalancer({ strategy: "affinity" });
    const c = instances(10);
    const keys = Array.from({ length: 5000 }, (_, k) => `k${k}`);
    const before = keys.map((key) => b.pick(c, { service: "svc", key })!.id);
    const gone = iid(3);
    const rest = c.filter((i) => i.id !== gone);
    const after = keys.map((key) => b.pick(rest, { service: "svc", key })!.id);
    let moved = 0;
    for (let k = 0; k < keys.length; k++) {
      if (before[k] !== gone)
        assert.equal(after[k], before[k], `key ${keys[k]} moved though its owner stayed`);
      else moved++;
    }
    assert.ok(moved > 0.05 * keys.length && moved < 0.15 * keys.length, `moved ${moved} (≈ 1/10)`);
    // Exclusion (a retry) behaves like a leave for that pick only.
    const excluded = keys.map((key) => b.pick(c, { service: "svc", key, exclude: new Set([gone]) })!.id);
    assert.deepEqual(excluded, after);
    assert.deepEqual(
      keys.map((key) => b.pick(c, { service: "svc", key })!.id),
      before,
    );
  });

  test("affinity without a key falls back to the configured strategy", () => {
    const b = createBalancer({ strategy: "affinity", fallback: "round-robin" });
    const c = instances(3);
    assert.deepEqual(
      Array.from({ length: 6 }, () => b.pick(c, ctx)?.id),
      [iid(0), iid(1), iid(2), iid(0), iid(1), iid(2)],
    );
  });

  test("draining and excluded instances are never picked; none eligible gives undefined", () => {
    for (const strategy of ALL) {
      const b = createBalancer({ strategy, seed: 5 });
      const c = [
        instance(iid(0), "draining"),
        instance(iid(1)),
        instance(iid(2)),
        instance(iid(3), "degraded"),
      ];
      const t = tally(2000, (k) => b.pick(c, { service: "svc", key: `k${k}`, exclude: new Set([iid(2)]) }));
      assert.deepEqual([...t.keys()].sort(), [iid(1), iid(3)], strategy);
      assert.equal(b.pick([], ctx), undefined, strategy);
      assert.equal(b.pick([instance(iid(0), "draining")], ctx), undefined, strategy);
      assert.equal(b.pick(instances(2), { service: "svc", exclude: new Set([iid(0), iid(1)]) }), undefined);
      assert.equal(b.stats().empty, 3, strategy);
    }
  });

  test("bad options are rejected with a typed error", () => {
    assert.throws(() => createBalancer({ strategy: "fastest" as StrategyName }), ValidationError);
    assert.throws(() => createBalancer({ fallback: "affinity" as "random" }), ValidationError);
    assert.throws(
      () => createBalancer({ virtualNodes: 0 }),
      (e) => isRedmeshError(e, "ERR_INVALID_OPTIONS"),
    );
    assert.throws(() => createBalancer({ inFlightWeight: -1 }), ValidationError);
    assert.throws(() => createBalancer({ breaker: { failureRate: 2 } }), ValidationError);
    assert.throws(() => new HashRing(1.5), ValidationError);
  });

  test("property: any pick is an eligible candidate, or undefined only when none is eligible", () => {
    const arb = fc.record({
      strategy: fc.constantFrom(...ALL),
      seed: fc.integer(),
      members: fc.array(
        fc.record({ n: fc.integer({ min: 0, max: 40 }), draining: fc.boolean(), excluded: fc.boolean() }),
        {
          maxLength: 12,
        },
      ),
      key: fc.option(fc.string(), { nil: undefined }),
    });
    fc.assert(
      fc.property(arb, ({ strategy, seed, members, key }) => {
        const seen = new Set<number>();
        const unique = members.filter((m) => !seen.has(m.n) && seen.add(m.n));
        const c: Instance[] = unique.map((m) => instance(iid(m.n), m.draining ? "draining" : "ok"));
        const exclude = new Set(unique.filter((m) => m.excluded).map((m) => iid(m.n)));
        const eligible = new Set(unique.filter((m) => !m.draining && !m.excluded).map((m) => iid(m.n)));
        const b = createBalancer({ strategy, random: seededRandom(seed) });
        for (let r = 0; r < 5; r++) {
          const p = b.pick(
            c,
            key === undefined ? { service: "svc", exclude } : { service: "svc", exclude, key },
          );
          if (eligible.size === 0) assert.equal(p, undefined);
          else assert.ok(p && eligible.has(p.id));
        }
      }),
      { numRuns: 300 },
    );
  });

  test("property: removing one instance moves only the keys it owned", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: 0, max: 10_000 }), { minLength: 2, maxLength: 15 }),
        fc.nat(),
        fc.array(fc.string(), { minLength: 1, maxLength: 50 }),
        (ids, which, keys) => {
          const ring = new HashRing(40);
          for (const n of ids) ring.add(iid(n));
          const before = keys.map((k) => ring.lookup(k));
          const gone = iid(ids[which % ids.length]!);
          ring.remove(gone);
          keys.forEach((k, i) => {
            const now = ring.lookup(k);
            if (before[i] !== gone) assert.equal(now, before[i]);
            else assert.notEqual(now, gone);
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  test("property: round-robin gives every eligible instance exactly k of k·m picks", () => {
    fc.assert(
      fc.property(
        fc.array(fc.boolean(), { minLength: 1, maxLength: 20 }),
        fc.integer({ min: 1, max: 5 }),
        (draining, k) => {
          const c = draining.map((d, i) => instance(iid(i), d ? "draining" : "ok"));
          const m = draining.filter((d) => !d).length;
          const b = createBalancer({ strategy: "round-robin" });
          const t = tally(k * m, () => b.pick(c, ctx));
          assert.equal(t.size, m);
          for (const n of t.values()) assert.equal(n, k);
        },
      ),
      { numRuns: 200 },
    );
  });
});
