import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  AbortError,
  type BreakerEvent,
  CircuitBreaker,
  CircuitOpenError,
  ConnectionError,
  createBalancer,
  RemoteError,
  resolveBreakerOptions,
  TimeoutError,
} from "../../src/index.js";
import { iid, instances, ManualClock, tally } from "../helpers/balancer.js";

const fail = { ok: false, latencyMs: 5, error: new TimeoutError("late") };
const ok = { ok: true, latencyMs: 1 };

describe("circuit breaker", () => {
  test("opens after N consecutive failures; a success in between resets the run", () => {
    const clock = new ManualClock();
    const b = new CircuitBreaker(resolveBreakerOptions({ consecutiveFailures: 3, failureRate: 0 }), clock.fn);
    b.onEnd(fail);
    b.onEnd(fail);
    b.onEnd(ok);
    b.onEnd(fail);
    b.onEnd(fail);
    assert.equal(b.state, "closed");
    b.onEnd(fail);
    assert.equal(b.state, "open");
    assert.equal(b.allows(), false);
  });

  test("half-opens after the cool-down, admits K trials, closes after K successes", () => {
    const clock = new ManualClock();
    const transitions: string[] = [];
    const b = new CircuitBreaker(
      resolveBreakerOptions({ consecutiveFailures: 2, cooldownMs: 1000, halfOpenRequests: 2 }),
      clock.fn,
      (t) => transitions.push(`${t.from}>${t.to}:${t.reason}`),
    );
    b.onEnd(fail);
    b.onEnd(fail);
    clock.advance(999);
    assert.equal(b.state, "open");
    clock.advance(1);
    assert.equal(b.state, "half-open");
    assert.ok(b.allows());
    b.onStart();
    assert.ok(b.allows());
    b.onStart();
    assert.equal(b.allows(), false, "only K trials at once");
    b.onEnd(ok);
    assert.equal(b.state, "half-open");
    b.onEnd(ok);
    assert.equal(b.state, "closed");
    assert.deepEqual(transitions, [
      "closed>open:consecutive",
      "open>half-open:cooldown",
      "half-open>closed:trial-succeeded",
    ]);
  });

  test("a failed trial opens the circuit again for a fresh cool-down", () => {
    const clock = new ManualClock();
    const b = new CircuitBreaker(
      resolveBreakerOptions({ consecutiveFailures: 1, cooldownMs: 500 }),
      clock.fn,
    );
    b.onEnd(fail);
    clock.advance(500);
    assert.equal(b.state, "half-open");
    b.onStart();
    b.onEnd(fail);
    assert.equal(b.state, "open");
    clock.advance(499);
    assert.equal(b.state, "open");
    clock.advance(1);
    assert.equal(b.state, "half-open");
  });

  test("a request sent before the circuit half-opened does not decide for the trial", () => {
    const clock = new ManualClock();
    const b = new CircuitBreaker(
      resolveBreakerOptions({ consecutiveFailures: 2, cooldownMs: 1000 }),
      clock.fn,
    );
    b.onStart(); // a slow request, sent while closed
    b.onStart();
    b.onEnd(fail);
    b.onStart();
    b.onEnd(fail);
    assert.equal(b.state, "open");
    clock.advance(1000);
    assert.equal(b.state, "half-open");
    b.onStart(); // the trial
    assert.equal(b.allows(), false);
    b.onEnd(ok); // the slow request from before finally answers
    assert.equal(b.state, "half-open", "not closed by a request that was not a trial");
    assert.equal(b.allows(), false, "the trial still holds its slot");
    b.onEnd(ok); // the trial
    assert.equal(b.state, "closed");
  });

  test("opens on a failure rate over the rolling window once enough requests were seen", () => {
    const clock = new ManualClock();
    const o = resolveBreakerOptions({
      consecutiveFailures: 0,
      failureRate: 0.5,
      minimumRequests: 10,
      windowMs: 1000,
    });
    const b = new CircuitBreaker(o, clock.fn);
    // Alternating: never 2 failures in a row, 50 % failures.
    for (let i = 0; i < 4; i++) {
      b.onEnd(ok);
      b.onEnd(fail);
    }
    assert.equal(b.state, "closed", "8 requests: below minimumRequests");
    b.onEnd(ok);
    b.onEnd(fail);
    assert.equal(b.state, "open");
    assert.equal(b.snapshot().windowFailures, 5);
  });

  test("old failures fall out of the rolling window", () => {
    const clock = new ManualClock();
    const o = resolveBreakerOptions({
      consecutiveFailures: 0,
      failureRate: 0.5,
      minimumRequests: 4,
      windowMs: 1000,
    });
    const b = new CircuitBreaker(o, clock.fn);
    for (let i = 0; i < 3; i++) b.onEnd(fail);
    clock.advance(1100);
    assert.equal(b.snapshot().windowRequests, 0);
    b.onEnd(ok);
    b.onEnd(ok);
    b.onEnd(ok);
    b.onEnd(fail);
    assert.equal(b.state, "closed", "25 % in the window");
  });

  test("classification: aborts and Redis outages are ignored, application errors count as success", () => {
    const clock = new ManualClock();
    const b = new CircuitBreaker(resolveBreakerOptions({ consecutiveFailures: 2 }), clock.fn);
    b.onEnd(fail);
    for (let i = 0; i < 5; i++) {
      b.onEnd({ ok: false, latencyMs: 1, error: new AbortError() });
      b.onEnd({ ok: false, latencyMs: 1, error: new ConnectionError("redis down") });
    }
    assert.equal(b.snapshot().consecutiveFailures, 1);
    b.onEnd({ ok: false, latencyMs: 1, error: new RemoteError("ERR_NOT_FOUND", "no such order") });
    assert.equal(b.snapshot().consecutiveFailures, 0, "the instance answered");
    b.onEnd({ ok: false, latencyMs: 1, error: new Error("socket hang up") });
    b.onEnd({ ok: false, latencyMs: 1, error: new RemoteError("ERR_BUSY", "busy", { retryable: true }) });
    assert.equal(b.state, "open");
  });
  test("property: any sequence of requests and time keeps the state machine's invariants", () => {
    const op = fc.oneof(
      fc.constant({ t: "start" as const }),
      fc.record({ t: fc.constant("end" as const), ok: fc.boolean() }),
      fc.record({ t: fc.constant("tick" as const), ms: fc.integer({ min: 0, max: 3000 }) }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 3 }), fc.array(op, { maxLength: 200 }), (k, ops) => {
        const clock = new ManualClock();
        const o = resolveBreakerOptions({
          consecutiveFailures: 3,
          minimumRequests: 5,
          cooldownMs: 1000,
          halfOpenRequests: k,
        });
        const seen: string[] = [];
        const b = new CircuitBreaker(o, clock.fn, (t) => seen.push(`${t.from}>${t.to}`));
        let inFlight = 0;
        let earlier = 0; // the model: requests in flight when the circuit half-opened
        for (const x of ops) {
          const n = seen.length;
          const before = b.state;
          if (seen.length > n && seen[seen.length - 1] === "open>half-open") earlier = inFlight;
          if (x.t === "start") {
            if (!b.allows()) continue; // the balancer would not pick it
            b.onStart();
            inFlight++;
          } else if (x.t === "end") {
            if (inFlight === 0) continue;
            inFlight--;
            b.onEnd(x.ok ? ok : fail);
            if (before === "half-open" && earlier > 0) {
              earlier--;
              assert.equal(b.state, "half-open", "an earlier request decides nothing");
            } else if (!x.ok && before === "half-open")
              assert.equal(b.state, "open", "a failed trial reopens");
          } else clock.advance(x.ms);
          const snap = b.snapshot();
          assert.ok(snap.trialsInFlight <= k, "never more than K trials");
          if (snap.state === "open") {
            assert.ok(snap.openUntil !== undefined && clock.now < snap.openUntil);
            assert.equal(b.allows(), false);
          }
          if (snap.state === "closed") assert.ok(snap.consecutiveFailures < 3);
        }
        // Only legal transitions.
        const legal = new Set(["closed>open", "open>half-open", "half-open>open", "half-open>closed"]);
        for (const t of seen) assert.ok(legal.has(t), t);
      }),
      { numRuns: 500 },
    );
  });
});

describe("balancer with breakers", () => {
  test("skips instances whose circuit is open, emits transitions, throws CircuitOpenError when all are open", () => {
    const clock = new ManualClock();
    const events: BreakerEvent[] = [];
    const b = createBalancer({
      strategy: "round-robin",
      clock: clock.fn,
      breaker: { consecutiveFailures: 3, cooldownMs: 2000 },
    });
    b.on("breaker", (e) => events.push(e));
    const c = instances(3);
    const trip = (id: string) => {
      for (let i = 0; i < 3; i++) {
        b.onStart("svc", id);
        b.onEnd("svc", id, fail);
      }
    };
    trip(iid(0));
    assert.equal(b.breakerState(iid(0)), "open");
    assert.deepEqual(events, [
      { service: "svc", iid: iid(0), from: "closed", to: "open", reason: "consecutive" },
    ]);
    const t = tally(100, () => b.pick(c, { service: "svc" }));
    assert.deepEqual([...t.keys()].sort(), [iid(1), iid(2)]);
    trip(iid(1));
    trip(iid(2));
    assert.throws(
      () => b.pick(c, { service: "svc" }),
      (e: unknown) =>
        e instanceof CircuitOpenError &&
        e.code === "ERR_CIRCUIT_OPEN" &&
        e.retryable &&
        e.data?.service === "svc" &&
        JSON.stringify(e.data?.instances) === JSON.stringify([iid(0), iid(1), iid(2)]),
    );
    assert.equal(b.stats().circuitOpen, 1);
    // Exclusions do not count as open circuits: excluded + open → still CircuitOpenError naming the open ones.
    assert.throws(
      () => b.pick(c, { service: "svc", exclude: new Set([iid(0)]) }),
      (e: unknown) =>
        e instanceof CircuitOpenError && (e.data?.instances as string[] | undefined)?.length === 2,
    );
    // Cool-down over: one trial at a time per instance, then success closes.
    clock.advance(2000);
    const trial = b.pick(c, { service: "svc" })!;
    assert.equal(b.breakerState(trial.id), "half-open");
    b.onStart("svc", trial.id);
    const second = b.pick(c, { service: "svc" })!;
    assert.notEqual(second.id, trial.id, "the half-open instance's only trial slot is taken");
    b.onEnd("svc", trial.id, ok);
    assert.equal(b.breakerState(trial.id), "closed");
    assert.ok(events.some((e) => e.iid === trial.id && e.to === "closed" && e.reason === "trial-succeeded"));
    const s = b.stats();
    assert.equal(s.instances[trial.id]?.breaker?.state, "closed");
    assert.equal(s.instances[trial.id]?.outstanding, 0);
  });

  test("breakers can be turned off", () => {
    const b = createBalancer({ strategy: "random", breaker: false, seed: 1 });
    for (let i = 0; i < 100; i++) b.onEnd("svc", iid(0), fail);
    assert.equal(b.breakerState(iid(0)), "closed");
    assert.ok(b.pick(instances(1), { service: "svc" }));
  });

  test("per-instance state is forgotten when instances leave: no growth with churn", () => {
    const clock = new ManualClock();
    const b = createBalancer({
      strategy: "least-outstanding",
      seed: 9,
      clock: clock.fn,
      breaker: { consecutiveFailures: 2 },
      forgetAfterMs: 30_000,
    });
    let next = 0;
    let live = instances(3, next);
    next += 3;
    let maxTracked = 0;
    for (let round = 0; round < 2000; round++) {
      // Every round one instance is replaced by a new one (a rolling restart that never ends).
      live = [...live.slice(1), ...instances(1, next++)];
      for (let k = 0; k < 5; k++) {
        const p = b.pick(live, { service: "svc" });
        if (!p) continue;
        b.onStart("svc", p.id);
        // Some instances die with a request in flight, some with an open circuit.
        if (round % 7 === 0) b.onEnd("svc", p.id, fail);
        else if (round % 11 !== 0) b.onEnd("svc", p.id, ok);
      }
      clock.advance(500);
      maxTracked = Math.max(maxTracked, Object.keys(b.stats().instances).length);
    }
    // Idle state goes within a second, busy/open state within forgetAfterMs (60 rounds of 500 ms).
    assert.ok(maxTracked <= 3 + 2 + 61, `tracked up to ${maxTracked} instances`);
    assert.ok(b.stats().forgotten > 1900, `forgotten ${b.stats().forgotten}`);
    // Explicit forget.
    b.forget("svc", live[0]!.id);
    assert.equal(b.stats().instances[live[0]!.id], undefined);
    b.forgetService("svc");
    assert.deepEqual(b.stats().instances, {});
  });

  test("watch() forgets instances when the source says they left; a throwing breaker listener breaks nothing", () => {
    const warnings: unknown[] = [];
    const noop = () => {};
    const b = createBalancer({
      breaker: { consecutiveFailures: 1 },
      logger: { debug: noop, info: noop, error: noop, warn: (o: unknown) => warnings.push(o) },
    });
    const source = new EventEmitter<{ leave: [{ service: string; id: string }] }>();
    const unwatch = b.watch(source);
    b.on("breaker", () => {
      throw new Error("listener bug");
    });
    b.onStart("svc", iid(1));
    b.onEnd("svc", iid(1), fail);
    assert.equal(b.breakerState(iid(1)), "open");
    assert.equal(warnings.length, 1);
    source.emit("leave", { service: "svc", id: iid(1) });
    assert.equal(b.stats().instances[iid(1)], undefined);
    assert.equal(b.breakerState(iid(1)), "closed");
    unwatch();
    assert.equal(source.listenerCount("leave"), 0);
  });
});
