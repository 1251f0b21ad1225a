import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { DropReason, receive } from "../../src/envelope/index.js";
import { computeSignature, ReplayGuard, type UmfShort } from "../../src/index.js";

const iso = (ms: number) => new Date(ms).toISOString();

describe("replay protection for signed messages", () => {
  test("accepted once inside the window; stale, future and unreadable timestamps refused", () => {
    const g = new ReplayGuard({ windowMs: 1000 });
    const now = 1_700_000_000_000;
    assert.equal(g.check("a", iso(now), now), "ok");
    assert.equal(g.check("a", iso(now), now + 10), "replayed");
    assert.equal(g.check("b", iso(now - 1001), now), "stale");
    assert.equal(g.check("c", iso(now + 1001), now), "stale");
    assert.equal(g.check("d", "yesterday", now), "stale");
    assert.equal(g.check("e", undefined, now), "stale");
    // Once the timestamp has left the window the id is forgotten: a replay is then stale anyway.
    assert.equal(g.check("f", iso(now + 5000), now + 5000), "ok");
    assert.equal(g.size, 1, "a swept: only f remains");
    assert.equal(g.check("a", iso(now), now + 5000), "stale");
  });

  test("memory stays bounded at maxEntries", () => {
    const g = new ReplayGuard({ windowMs: 60_000, maxEntries: 1000 });
    const now = Date.now();
    for (let i = 0; i < 10_000; i++) g.check(`m${i}`, iso(now), now);
    assert.equal(g.size, 1000);
  });

  test("property: through the receive path, replayed, tampered, wrong-key and unsigned messages are all refused", () => {
    const secret = "s3cret";
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 20 }), { minLength: 1, maxLength: 20 }),
        (mids) => {
          const guard = new ReplayGuard();
          const delivered: string[] = [];
          const dropped: string[] = [];
          const o = { maxBytes: 1 << 20, secret, requireSignature: true, replay: guard };
          const ts = new Date().toISOString();
          for (const mid of mids) {
            const m: UmfShort = { to: "svc:/", frm: "x:/", mid, ts, ver: "UMF/1.4.6", bdy: { mid } };
            const signed = { ...m, sig: computeSignature(m, secret) };
            const send = (x: unknown) =>
              receive(
                JSON.stringify(x),
                o,
                (d) => delivered.push(d.mid),
                (r) => dropped.push(r),
              );
            send(signed); // accepted
            send(signed); // replay
            send({ ...signed, bdy: { mid, evil: true } }); // tampered
            send({ ...m, sig: computeSignature(m, "wrong") }); // wrong key
            send(m); // unsigned
          }
          assert.deepEqual(delivered, mids);
          assert.equal(dropped.filter((r) => r === DropReason.REPLAYED).length, mids.length);
          assert.equal(dropped.filter((r) => r === DropReason.BAD_SIGNATURE).length, 3 * mids.length);
        },
      ),
      { numRuns: 500 },
    );
  });
});
