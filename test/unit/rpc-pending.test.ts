import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { LiveSet, PendingIndex } from "../../src/rpc/pending.js";

const PREFIX = "abcdef012345-";
const mid = (n: number) => PREFIX + n.toString(36);
const call = (m: string) => ({ mid: m });

describe("PendingIndex (pending calls by mid)", () => {
  test("finds, counts and removes calls made with this instance's mids", () => {
    const idx = new PendingIndex<{ mid: string }>(PREFIX);
    const calls = Array.from({ length: 100 }, (_, i) => call(mid(i + 1)));
    for (const c of calls) idx.add(c);
    assert.equal(idx.size, 100);
    for (const c of calls) assert.equal(idx.get(c.mid), c);
    assert.equal(idx.get(mid(101)), undefined, "never added");
    assert.equal(idx.delete(calls[5] as { mid: string }), true);
    assert.equal(idx.delete(calls[5] as { mid: string }), false, "a second delete finds nothing");
    assert.equal(idx.get(mid(6)), undefined);
    assert.equal(idx.size, 99);
  });

  test("a mid whose slot is taken by an older pending call, or of a foreign form, still works (overflow)", () => {
    const idx = new PendingIndex<{ mid: string }>(PREFIX);
    const old = call(mid(7));
    const same = call(mid(7 + 4096)); // same slot while `old` is pending
    const big = call(mid(2 ** 40 + 7)); // a counter beyond 32 bits with the same low bits
    const foreign = [call("some-uuid-4f0c"), call(`${PREFIX}NOT-base36`), call("other-7"), call(PREFIX)];
    for (const c of [old, same, big, ...foreign]) idx.add(c);
    assert.equal(idx.size, 7);
    for (const c of [old, same, big, ...foreign]) assert.equal(idx.get(c.mid), c, c.mid);
    // A reply carrying a mid in the same slot but not pending is not matched to the slot's call.
    assert.equal(idx.get(mid(7 + 2 * 4096)), undefined);
    assert.equal(idx.delete(old), true);
    assert.equal(idx.get(same.mid), same, "the overflowed call is still found once the slot is free");
    for (const c of [same, big, ...foreign]) assert.equal(idx.delete(c), true, c.mid);
    assert.equal(idx.size, 0);
    assert.deepEqual(idx.values(), []);
  });

  test("values() is a snapshot: deleting while iterating it visits every call once", () => {
    const idx = new PendingIndex<{ mid: string }>(PREFIX);
    const calls = [call(mid(1)), call(mid(2)), call(mid(1 + 4096)), call("foreign")];
    for (const c of calls) idx.add(c);
    const seen: string[] = [];
    for (const c of idx.values()) {
      seen.push(c.mid);
      idx.delete(c);
    }
    assert.deepEqual(seen.sort(), calls.map((c) => c.mid).sort());
    assert.equal(idx.size, 0);
  });

  test("an entry that equals another's mid but is a different object is not deleted by mistake", () => {
    const idx = new PendingIndex<{ mid: string }>(PREFIX);
    const a = call(mid(9));
    idx.add(a);
    assert.equal(idx.delete(call(mid(9))), false);
    assert.equal(idx.get(mid(9)), a);
  });
});

describe("LiveSet (running handlers)", () => {
  const entry = (id: number) => ({ id, slot: -1 });

  test("adds, removes from any position, keeps the others findable, and counts", () => {
    const set = new LiveSet<{ id: number; slot: number }>();
    const es = Array.from({ length: 10 }, (_, i) => entry(i));
    for (const e of es) set.add(e);
    set.add(es[3] as { id: number; slot: number }); // already in: no effect
    assert.equal(set.size, 10);
    for (const i of [0, 9, 4, 4]) set.delete(es[i] as { id: number; slot: number });
    assert.equal(set.size, 7);
    assert.deepEqual(
      set
        .values()
        .map((e) => e.id)
        .sort((a, b) => a - b),
      [1, 2, 3, 5, 6, 7, 8],
    );
    for (const e of set.values())
      assert.equal(
        set.find((x) => x.id === e.id),
        e,
      );
    assert.equal(
      set.find((x) => x.id === 4),
      undefined,
    );
    assert.equal((es[4] as { slot: number }).slot, -1, "a removed entry is marked out");
  });

  test("an entry of another set is not removed from this one", () => {
    const a = new LiveSet<{ id: number; slot: number }>();
    const b = new LiveSet<{ id: number; slot: number }>();
    const x = entry(1);
    const y = entry(2);
    a.add(x);
    b.add(y);
    assert.equal(a.delete(y), false);
    assert.equal(b.size, 1);
    assert.equal(a.size, 1);
  });

  test("values() is a snapshot: removing while iterating it visits every entry once", () => {
    const set = new LiveSet<{ id: number; slot: number }>();
    for (let i = 0; i < 5; i++) set.add(entry(i));
    const seen: number[] = [];
    for (const e of set.values()) {
      seen.push(e.id);
      set.delete(e);
    }
    assert.deepEqual(seen.sort(), [0, 1, 2, 3, 4]);
    assert.equal(set.size, 0);
  });
});
