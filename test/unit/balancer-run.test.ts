import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  AbortError,
  CircuitOpenError,
  createBalancer,
  createRetryPolicy,
  type Instance,
  NoInstanceError,
  RedmeshError,
  runBalanced,
  TimeoutError,
} from "../../src/index.js";
import { iid, instances } from "../helpers/balancer.js";

const fast = (maxAttempts: number) => createRetryPolicy({ maxAttempts, baseDelayMs: 1, maxDelayMs: 2 });
const noReceiver = () =>
  new RedmeshError("ERR_NO_RECEIVER", "publish had no receiver", {
    retryable: true,
    data: { delivered: false },
  });

describe("runBalanced", () => {
  test("a request that reached no one is retried on another instance, even when not idempotent", async () => {
    const b = createBalancer({ strategy: "round-robin" });
    const used: string[] = [];
    const result = await runBalanced({
      picker: b,
      service: "svc",
      candidates: () => instances(3),
      retry: fast(3),
      attempt: async (inst) => {
        used.push(inst.id);
        if (used.length < 3) throw noReceiver();
        return "ok";
      },
    });
    assert.equal(result, "ok");
    assert.equal(new Set(used).size, 3, "three different instances");
    for (const id of used) assert.equal(b.outstanding(id), 0, "every start was ended");
  });

  test("a timeout is not retried unless idempotent; the breaker hears about it", async () => {
    const b = createBalancer({ strategy: "round-robin", breaker: { consecutiveFailures: 1 } });
    let calls = 0;
    await assert.rejects(
      runBalanced({
        picker: b,
        service: "svc",
        candidates: () => instances(2),
        retry: fast(3),
        attempt: async () => {
          calls++;
          throw new TimeoutError("late");
        },
      }),
      TimeoutError,
    );
    assert.equal(calls, 1);
    assert.equal(b.breakerState(iid(0)), "open");
    // Idempotent, one instance: retried on that same instance.
    const b2 = createBalancer({ breaker: false });
    const seen: string[] = [];
    await assert.rejects(
      runBalanced({
        picker: b2,
        service: "svc",
        candidates: () => instances(1),
        retry: fast(3),
        idempotent: true,
        attempt: async (inst) => {
          seen.push(inst.id);
          throw new TimeoutError("late");
        },
      }),
      TimeoutError,
    );
    assert.deepEqual(seen, [iid(0), iid(0), iid(0)]);
  });

  test("no instance: NoInstanceError after the retries, the candidates asked again each time", async () => {
    let asked = 0;
    let attempts = 0;
    await assert.rejects(
      runBalanced({
        picker: createBalancer(),
        service: "orders",
        candidates: () => {
          asked++;
          return [] as Instance[];
        },
        retry: fast(3),
        attempt: async () => {
          attempts++;
          return 1;
        },
      }),
      (e: unknown) => e instanceof NoInstanceError && e.data?.service === "orders",
    );
    assert.equal(asked, 3);
    assert.equal(attempts, 0);
    // An instance that shows up between attempts is used.
    let round = 0;
    const got = await runBalanced({
      picker: createBalancer(),
      service: "orders",
      candidates: () => (++round < 2 ? [] : instances(1)),
      retry: fast(3),
      attempt: async (inst) => inst.id,
    });
    assert.equal(got, iid(0));
  });

  test("falls back to a tried instance when the untried ones have open circuits", async () => {
    const b = createBalancer({ strategy: "round-robin", breaker: { consecutiveFailures: 2 } });
    const failOn = (id: string) => {
      b.onStart("svc", id);
      b.onEnd("svc", id, { ok: false, latencyMs: 1, error: new TimeoutError("late") });
    };
    failOn(iid(1));
    failOn(iid(1));
    assert.equal(b.breakerState(iid(1)), "open");
    const seen: string[] = [];
    const got = await runBalanced({
      picker: b,
      service: "svc",
      candidates: () => instances(2),
      retry: fast(2),
      attempt: async (inst) => {
        seen.push(inst.id);
        if (seen.length === 1) throw noReceiver();
        return "second try";
      },
    });
    assert.equal(got, "second try");
    assert.deepEqual(seen, [iid(0), iid(0)]);
    // All open, nothing tried yet: CircuitOpenError, retried, then thrown.
    failOn(iid(0));
    failOn(iid(0));
    await assert.rejects(
      runBalanced({
        picker: b,
        service: "svc",
        candidates: () => instances(2),
        retry: fast(2),
        attempt: async () => 1,
      }),
      CircuitOpenError,
    );
  });

  test("an abort during the backoff ends the run with AbortError and leaves nothing outstanding", async () => {
    const b = createBalancer();
    const ac = new AbortController();
    await assert.rejects(
      runBalanced({
        picker: b,
        service: "svc",
        candidates: () => instances(2),
        retry: createRetryPolicy({
          maxAttempts: 5,
          baseDelayMs: 10_000,
          maxDelayMs: 10_000,
          random: () => 0.9,
        }),
        signal: ac.signal,
        attempt: async (_inst, _n, signal) => {
          assert.equal(signal, ac.signal, "the attempt gets the signal");
          setImmediate(() => ac.abort());
          throw noReceiver();
        },
      }),
      AbortError,
    );
    assert.equal(b.outstanding(iid(0)) + b.outstanding(iid(1)), 0);
  });
});
