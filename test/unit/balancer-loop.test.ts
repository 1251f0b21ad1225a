// The one balancing loop (src/balancer/loop.ts), driven the way RPC and messaging drive it: a
// request whose attempts a test answers by hand, over fake instances (no Redis needed to pick).
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  BalancedRequest,
  type BalancedRequestInit,
  BalancingLoop,
  BulkheadFullError,
  createBalancer,
  createRetryPolicy,
  ErrorCode,
  type Instance,
  InstanceLostError,
  isRedmeshError,
  NoInstanceError,
  type RedmeshError,
  RemoteError,
  TimeoutError,
} from "../../src/index.js";
import { iid, instances } from "../helpers/balancer.js";

/** A request whose attempts are recorded; the test says how each ends. */
class Probe extends BalancedRequest {
  readonly sentTo: Array<string | undefined> = [];
  readonly kinds: string[] = [];
  error: RedmeshError | undefined;
  transmit(instance: Instance | undefined): void {
    this.sentTo.push(instance?.id);
  }
  reject(error: RedmeshError): void {
    this.settled = true;
    this.error = error;
  }
  override onRetry(kind: string): void {
    this.kinds.push(kind);
  }
}

function setup(n = 3, o: { maxInFlightPerService?: number } = {}) {
  const list = instances(n);
  const evicted: string[] = [];
  const balancer = createBalancer({ strategy: "round-robin", breaker: false });
  const loop = new BalancingLoop({
    picker: balancer,
    retry: createRetryPolicy({ maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 }),
    candidates: {
      cached: () => list.filter((i) => !evicted.includes(i.id)),
      load: async () => list,
      evict: (_svc, id) => {
        evicted.push(id);
      },
    },
    ...o,
  });
  const probe = (init: Partial<BalancedRequestInit> = {}) => new Probe(loop, { service: "svc", ...init });
  return { loop, balancer, evicted, probe };
}

const settle = () => new Promise<void>((r) => setTimeout(r, 20));

describe("balancing loop", () => {
  test("gone (no receiver): evicted and resent at once to another instance, for any request", () => {
    const { loop, balancer, evicted, probe } = setup();
    const p = probe({ retries: 0 });
    loop.dispatch(p);
    loop.published(p, 0, undefined);
    loop.published(p, 0, undefined);
    assert.equal(p.sentTo.length, 3, "two redirects, synchronously");
    assert.equal(new Set(p.sentTo).size, 3, "each to another instance");
    assert.deepEqual(evicted, p.sentTo.slice(0, 2));
    assert.deepEqual(p.kinds, ["redirect", "redirect"]);
    loop.published(p, 1, undefined);
    loop.succeeded(p);
    assert.equal(p.error, undefined);
    for (let i = 0; i < 3; i++) assert.equal(balancer.outstanding(iid(i)), 0, "every attempt was ended");
  });

  test("gone more often than the redirects allow: NoInstanceError with the reason", () => {
    const { loop, probe } = setup(6);
    const p = probe();
    loop.dispatch(p);
    for (let i = 0; i < 4; i++) loop.published(p, 0, undefined);
    assert.equal(p.sentTo.length, 4, "the first try and 3 redirects");
    assert.ok(p.error instanceof NoInstanceError);
    assert.equal(p.error.data?.reason, "no receiver");
  });

  test("draining: another instance at once, the draining one not evicted", () => {
    const { loop, evicted, probe } = setup();
    const p = probe();
    loop.dispatch(p);
    loop.failed(p, new NoInstanceError("svc", { data: { reason: "draining" } }));
    assert.equal(p.sentTo.length, 2);
    assert.notEqual(p.sentTo[0], p.sentTo[1]);
    assert.deepEqual(evicted, []);
  });

  test("not run (busy): retried after a backoff for any request that has retries; may have run: only when idempotent", async () => {
    const { loop, probe } = setup();
    const busy = probe({ retries: 2 });
    loop.dispatch(busy);
    loop.failed(busy, new BulkheadFullError("full"));
    assert.equal(busy.sentTo.length, 1, "not at once: after a backoff");
    await settle();
    assert.equal(busy.sentTo.length, 2);
    assert.deepEqual(busy.kinds, ["backoff"]);

    const lost = probe({ retries: 2 });
    loop.dispatch(lost);
    loop.failed(lost, new InstanceLostError("gone mid-call"));
    await settle();
    assert.equal(lost.sentTo.length, 1, "not idempotent: the handler may have run");
    assert.ok(lost.error instanceof InstanceLostError);

    const again = probe({ retries: 2, idempotent: true });
    loop.dispatch(again);
    loop.failed(again, new InstanceLostError("gone mid-call"));
    await settle();
    assert.equal(again.sentTo.length, 2);
    assert.notEqual(again.sentTo[0], again.sentTo[1], "to another instance");
  });

  test("a lone busy instance takes the retries, and the request ends with its error, not ERR_NO_INSTANCE", async () => {
    const { loop, probe } = setup(1);
    const p = probe({ retries: 2, idempotent: true });
    loop.dispatch(p);
    for (let i = 0; i < 3; i++) {
      loop.failed(p, new BulkheadFullError("full"));
      await settle();
    }
    assert.deepEqual(p.sentTo, [iid(0), iid(0), iid(0)]);
    assert.ok(p.error instanceof BulkheadFullError, `got ${p.error?.code}`);
  });

  test("final outcomes are not retried: non-retryable errors, and no retry starts past the deadline", async () => {
    const { loop, probe } = setup();
    const p = probe({ retries: 5, idempotent: true });
    loop.dispatch(p);
    loop.failed(p, new RemoteError("ERR_OUT_OF_STOCK", "none left"));
    assert.equal(p.error?.code, "ERR_OUT_OF_STOCK");
    const late = probe({ retries: 5, idempotent: true, deadline: Date.now() + 1 });
    loop.dispatch(late);
    await settle();
    loop.failed(late, new TimeoutError("remote timeout"));
    assert.ok(late.error instanceof TimeoutError, "the deadline passed: no retry");
    assert.equal(late.sentTo.length, 1);
  });

  test("the caller-side bulkhead: over maxInFlightPerService is ERR_BULKHEAD_FULL before anything is sent", () => {
    const { loop, probe } = setup(3, { maxInFlightPerService: 2 });
    const a = probe();
    const b = probe();
    const c = probe({ retries: 0 });
    loop.dispatch(a);
    loop.dispatch(b);
    loop.dispatch(c);
    assert.equal(a.sentTo.length + b.sentTo.length, 2);
    assert.equal(c.sentTo.length, 0, "never sent");
    assert.ok(isRedmeshError(c.error, ErrorCode.BULKHEAD_FULL));
    assert.equal(c.error?.data?.delivered, false);
    loop.succeeded(a);
    const d = probe();
    loop.dispatch(d);
    assert.equal(d.sentTo.length, 1, "a slot came back when an attempt ended");
  });

  test("a direct request goes to its instance, unknown to the cache or not, and is never redirected", () => {
    const { loop, probe } = setup();
    const unknown = "f".repeat(32);
    const p = probe({ iid: unknown });
    loop.dispatch(p);
    assert.deepEqual(p.sentTo, [undefined], "sent anyway: PUBLISH tells whether it is there");
    assert.equal(p.iid, unknown);
    loop.published(p, 0, undefined);
    assert.ok(p.error instanceof NoInstanceError);
    assert.equal(p.sentTo.length, 1);
  });

  test("Redis failing the PUBLISH, or an abandoned request: typed, at once, and the attempt is ended", () => {
    const { loop, balancer, probe } = setup();
    const p = probe({ retries: 3, idempotent: true });
    loop.dispatch(p);
    const down = new RemoteError(ErrorCode.REDIS_UNAVAILABLE, "down", { retryable: true });
    loop.published(p, 0, down);
    assert.equal(p.error, down);
    assert.equal(balancer.outstanding(p.iid), 0);
  });
});
