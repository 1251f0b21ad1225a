import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { InFlight, settleWithin } from "../../src/async.js";

describe("settleWithin and InFlight", () => {
  test("settleWithin: true when the promise settles in time (a rejection too), false when time runs out", async () => {
    assert.equal(await settleWithin(sleep(5), 500), true);
    assert.equal(await settleWithin(Promise.reject(new Error("x")), 500), true);
    const t0 = performance.now();
    assert.equal(await settleWithin(new Promise(() => {}), 30), false);
    assert.ok(performance.now() - t0 < 500);
  });

  test("InFlight: whenIdle resolves when the last unit ends; an end function counts once", async () => {
    const w = new InFlight();
    assert.equal(await w.whenIdle(10), true, "idle at once");
    const a = w.begin();
    const b = w.begin();
    assert.equal(w.count, 2);
    const idle = w.whenIdle(1000);
    a();
    a(); // no effect the second time
    assert.equal(w.count, 1);
    setTimeout(b, 10);
    assert.equal(await idle, true);
    assert.equal(w.count, 0);
    const c = w.begin();
    assert.equal(await w.whenIdle(20), false, "time ran out with work in flight");
    c();
    assert.equal(w.count, 0);
  });
});
