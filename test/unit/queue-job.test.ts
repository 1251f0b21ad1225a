/** Pure tests of queue entries: encoding, parsing (Hydra messages, malformed input), backoff. */
import assert from "node:assert/strict";
import { test } from "node:test";
import fc from "fast-check";
import {
  backoffDelay,
  encodeJob,
  type JobDefaults,
  malformedDeadLetter,
  parseEntry,
  resolveBackoff,
} from "../../src/queue/job.js";

const defaults: JobDefaults = { attempts: 3, backoff: [100, "e", 60_000] };
const enc = { to: "svc:/", from: "me:/", attempts: 3, backoff: defaults.backoff, explicit: false };

test("a job without options is a plain Hydra UMF entry (no rmq) and parses back with defaults", () => {
  const e = encodeJob({ a: 1 }, undefined, enc, 1 << 20);
  const obj = JSON.parse(e.entry);
  assert.deepEqual(Object.keys(obj), ["to", "frm", "mid", "ts", "ver", "bdy"]);
  assert.equal(obj.ver, "UMF/1.4.6");
  const p = parseEntry(e.entry, defaults, 1 << 20);
  assert.ok(p.ok);
  assert.equal(p.entry.id, e.id);
  assert.deepEqual(p.entry.body, { a: 1 });
  assert.deepEqual(p.entry.meta, { a: 3, n: 0, b: 100, bt: "e", bm: 60_000 });
});

test("options travel in rmq; jobId marks the entry unique", () => {
  const e = encodeJob(
    1,
    { attempts: 5, backoff: 20, jobId: "j1", delay: 10, priority: "high" },
    enc,
    1 << 20,
  );
  assert.equal(e.id, "j1");
  assert.equal(e.unique, "j1");
  assert.equal(e.delay, 10);
  assert.equal(e.priority, "1");
  const p = parseEntry(e.entry, defaults, 1 << 20);
  assert.ok(p.ok);
  assert.deepEqual(p.entry.meta, { a: 5, n: 0, b: 20, bt: "f", bm: 60_000, u: 1 });
});

test("backoff: fixed, exponential, capped", () => {
  assert.deepEqual(resolveBackoff(50), [50, "f", 60_000]);
  const m = { a: 9, n: 0, b: 100, bt: "e" as const, bm: 500 };
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((k) => backoffDelay(m, k)),
    [100, 200, 400, 500, 500],
  );
  assert.equal(backoffDelay({ ...m, bt: "f" }, 4), 100);
  assert.throws(() => resolveBackoff({ type: "linear", delay: 1 }), /fixed/);
  assert.throws(() => resolveBackoff(-1), /milliseconds/);
});

test("malformed entries give a reason, never a throw (property)", () => {
  fc.assert(
    fc.property(fc.string(), (raw) => {
      const r = parseEntry(raw, defaults, 1 << 20);
      if (!r.ok) assert.ok(r.reason.length > 0);
    }),
  );
  for (const raw of ["{", "[]", "null", "1", '"x"', '{"mid":"a"}', '{"bdy":1}']) {
    const r = parseEntry(raw, defaults, 1 << 20);
    assert.equal(r.ok, false, raw);
  }
  const big = parseEntry(JSON.stringify({ mid: "a", bdy: "x".repeat(100) }), defaults, 50);
  assert.equal(big.ok, false);
});

test("bad rmq fields fall back to defaults; __proto__ in a body is inert", () => {
  const raw = '{"mid":"m","bdy":{"__proto__":{"polluted":true}},"rmq":{"a":-1,"n":"x","bt":"?"}}';
  const r = parseEntry(raw, defaults, 1 << 20);
  assert.ok(r.ok);
  assert.deepEqual(r.entry.meta, { a: 3, n: 0, b: 100, bt: "e", bm: 60_000 });
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test("a malformed entry's dead letter keeps the raw text and the reason", () => {
  const d = JSON.parse(malformedDeadLetter("garbage", "not JSON", "svc:/", 4));
  assert.equal(d.rmq.raw, "garb");
  assert.equal(d.rmq.e, "malformed entry: not JSON");
  assert.equal(d.bdy, null);
});
