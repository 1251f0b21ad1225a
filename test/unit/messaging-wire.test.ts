import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  asShort,
  computeSignature,
  createService,
  DropReason,
  type DropReasonValue,
  randomPicker,
  receive,
  serialize,
  splitRoute,
  type UmfShort,
  ValidationError,
} from "../../src/index.js";
import type { Instance } from "../../src/registry/index.js";

const msg = (extra: Partial<UmfShort> = {}): UmfShort => ({
  to: "a:/",
  frm: "i@b:/",
  mid: "1",
  ts: "t",
  ver: "v",
  bdy: 1,
  ...extra,
});

describe("messaging wire codec", () => {
  const run = (text: string, o: { secret?: string; requireSignature?: boolean; maxBytes?: number } = {}) => {
    const got: UmfShort[] = [];
    const dropped: DropReasonValue[] = [];
    receive(
      text,
      { maxBytes: o.maxBytes ?? 1024, secret: o.secret, requireSignature: o.requireSignature ?? false },
      (m) => got.push(m),
      (r) => dropped.push(r),
    );
    return { got, dropped };
  };

  test("plain messages and frames decode; bad items in a frame are dropped one by one", () => {
    assert.equal(run(JSON.stringify(msg())).got.length, 1);
    const frame = `[${JSON.stringify(msg({ mid: "1" }))},{"to":1},${JSON.stringify(msg({ mid: "2" }))}]`;
    const r = run(frame);
    assert.deepEqual(
      r.got.map((m) => m.mid),
      ["1", "2"],
    );
    assert.deepEqual(r.dropped, [DropReason.MALFORMED]);
    assert.deepEqual(run("{nope").dropped, [DropReason.MALFORMED]);
    assert.deepEqual(run("x".repeat(2000)).dropped, [DropReason.TOO_LARGE]);
  });

  test("compact frames: the header's route fills frm, the receiver's own route fills to", () => {
    const got: UmfShort[] = [];
    const dropped: DropReasonValue[] = [];
    const senders: string[] = [];
    const o = {
      maxBytes: 1024,
      requireSignature: false,
      self: "me@a:/",
      onCompact: (f: string) => senders.push(f),
    };
    receive(
      `[{"rm":2,"frm":"you@b:/"},{"mid":"1","rmid":"0","typ":"rpc.r","bdy":1},5,{"to":"x@a:/m","frm":"z@c:/","mid":"2"},{"mid":""}]`,
      o,
      (m) => got.push(m),
      (r) => dropped.push(r),
    );
    assert.deepEqual(senders, ["you@b:/"]);
    assert.deepEqual(
      got.map((m) => [m.to, m.frm, m.mid]),
      [
        ["me@a:/", "you@b:/", "1"],
        ["x@a:/m", "z@c:/", "2"],
      ],
    );
    assert.deepEqual(dropped, [DropReason.MALFORMED, DropReason.MALFORMED]);
    // Not a header (wrong version, no route): the array is an ordinary frame, its items checked one by one.
    const plain = run(`[{"rm":3,"frm":"you@b:/"},{"rm":2,"frm":""},${JSON.stringify(msg())}]`);
    assert.equal(plain.got.length, 1);
    assert.deepEqual(plain.dropped, [DropReason.MALFORMED, DropReason.MALFORMED]);
    // Without routes and outside a compact frame a message is malformed.
    assert.deepEqual(run(`[{"mid":"1","rmid":"0","typ":"rpc.r"}]`).dropped, [DropReason.MALFORMED]);
  });

  test("asShort checks field types and maps the long form", () => {
    assert.equal(asShort({ ...msg(), dl: "soon" }), undefined);
    assert.equal(asShort({ ...msg(), hdr: [] }), undefined);
    assert.equal(asShort({ ...msg(), mid: "" }), undefined);
    assert.equal(asShort(null), undefined);
    const long = asShort({ to: "a:/", from: "i@b:/", mid: "1", body: { x: 1 }, type: "t" });
    assert.equal(long?.frm, "i@b:/");
    assert.deepEqual(long?.bdy, { x: 1 });
    assert.equal(long?.typ, "t");
  });

  test("signatures: verified when present, required under enforcement", () => {
    const signed = JSON.parse(serialize(msg(), 1024, "k")) as UmfShort;
    assert.equal(typeof signed.sig, "string");
    assert.equal(run(JSON.stringify(signed), { secret: "k", requireSignature: true }).got.length, 1);
    assert.deepEqual(run(JSON.stringify(msg()), { secret: "k", requireSignature: true }).dropped, [
      DropReason.BAD_SIGNATURE,
    ]);
    assert.deepEqual(run(JSON.stringify({ ...signed, bdy: 2 }), { secret: "k" }).dropped, [
      DropReason.BAD_SIGNATURE,
    ]);
    assert.equal(signed.sig, computeSignature(msg(), "k"));
  });

  test("serialize enforces the size limit", () => {
    assert.throws(() => serialize(msg({ bdy: "x".repeat(2000) }), 1024), /exceeds the 1024-byte limit/);
    assert.throws(() => serialize(msg({ bdy: 10n as unknown as number }), 1024), /cannot be serialised/);
  });

  test("splitRoute", () => {
    assert.deepEqual(splitRoute("abc@svc:/m"), { iid: "abc", service: "svc", path: "/m" });
    assert.deepEqual(splitRoute("svc:[get]/x"), { iid: "", service: "svc", path: "[get]/x" });
    assert.equal(splitRoute("@:/"), undefined);
  });

  test("randomPicker skips draining and excluded instances", () => {
    const inst = (id: string, status: Instance["status"] = "ok"): Instance => ({
      service: "s",
      id,
      deadline: Date.now() + 1000,
      node: undefined,
      redmesh: true,
      status,
    });
    const c = [inst("a", "draining"), inst("b"), inst("c")];
    for (let i = 0; i < 50; i++) {
      const p = randomPicker.pick(c, { service: "s", exclude: new Set(["c"]) });
      assert.equal(p?.id, "b");
    }
    assert.equal(randomPicker.pick([inst("a", "draining")], { service: "s" }), undefined);
  });

  test("service options are checked by hand with clear messages", () => {
    assert.throws(
      () => createService({ name: "ok", port: 70000, rpcTimeoutMs: 0, bogus: 1 } as never),
      (e: unknown) =>
        e instanceof ValidationError &&
        e.code === "ERR_INVALID_OPTIONS" &&
        /port: must be between 0 and 65535/.test(e.message) &&
        /rpcTimeoutMs/.test(e.message) &&
        /bogus: unknown option/.test(e.message),
    );
    assert.throws(() => createService({ name: "ok", requireSignature: true }), /needs a secret/);
    assert.throws(() => createService({ name: "ok", picker: {} as never }), /pick/);
  });
});
