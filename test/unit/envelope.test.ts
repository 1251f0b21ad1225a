import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import {
  createMessage,
  decode,
  encode,
  formatRoute,
  fromObject,
  MessageError,
  normalizeRoutePattern,
  parseRoute,
  safeJsonParse,
  toShort,
  UMF_VERSION,
  ValidationError,
} from "../../src/index.js";

describe("UMF envelope", () => {
  test("short and long forms round-trip, with Hydra's field names", () => {
    const m = createMessage({
      to: "inventory:/reserve",
      from: "orders:/",
      body: { sku: "A1" },
      headers: { a: 1 },
      timeout: 2000,
      deadline: 123,
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      correlationId: "c1",
    });
    assert.equal(m.version, UMF_VERSION);
    assert.match(m.mid, /^[0-9a-f-]{36}$/);
    const s = toShort(m);
    assert.deepEqual(Object.keys(s).sort(), [
      "bdy",
      "cid",
      "dl",
      "frm",
      "hdr",
      "mid",
      "tmo",
      "to",
      "tp",
      "ts",
      "ver",
    ]);
    assert.deepEqual(fromObject(s), m);
    // Hydra's long form is accepted as well.
    assert.deepEqual(fromObject({ ...m }), m);
    assert.deepEqual(decode(encode(m)), m);
  });

  test("malformed messages are typed MessageErrors", () => {
    for (const bad of [
      "{",
      "null",
      "[]",
      '"x"',
      '{"frm":"a:/","mid":"1","bdy":1}',
      '{"to":"a:/","frm":"b:/","mid":5}',
    ]) {
      assert.throws(
        () => decode(bad),
        (e: unknown) => e instanceof MessageError && e.code === "ERR_INVALID_MESSAGE",
        bad,
      );
    }
    assert.throws(() => decode('{"to":"a:/","frm":"b:/","mid":"1","tmo":"soon"}'), /tmo/);
  });

  test("the size limit is enforced before parsing, both ways", () => {
    const big = createMessage({ to: "a:/", from: "b:/", body: "x".repeat(2000) });
    assert.throws(
      () => encode(big, { maxBytes: 1000 }),
      (e: unknown) => e instanceof MessageError && e.code === "ERR_MESSAGE_TOO_LARGE",
    );
    const text = encode(big);
    assert.throws(
      () => decode(text, { maxBytes: 1000 }),
      (e: unknown) => e instanceof MessageError && e.code === "ERR_MESSAGE_TOO_LARGE",
    );
    // Multi-byte characters count as bytes, not UTF-16 units.
    const emoji = createMessage({ to: "a:/", from: "b:/", body: "😀".repeat(300) });
    assert.throws(() => encode(emoji, { maxBytes: 1000 }), /exceeds/);
  });

  test("__proto__ and constructor payloads do not pollute, at any depth", () => {
    const payloads = [
      '{"to":"a:/","frm":"b:/","mid":"1","bdy":{"__proto__":{"polluted":1}}}',
      '{"to":"a:/","frm":"b:/","mid":"1","bdy":[[{"x":{"__proto__":{"polluted":1}}}]]}',
      '{"to":"a:/","frm":"b:/","mid":"1","__proto__":{"polluted":1},"bdy":{"constructor":{"prototype":{"polluted":1}}}}',
    ];
    for (const p of payloads) {
      const m = decode(p);
      const copy = Object.assign({}, m.body as object);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
      assert.equal((copy as Record<string, unknown>).polluted, undefined);
      assert.equal(JSON.stringify(m).includes("__proto__"), false);
    }
    // A plain string value "constructor" is data, not a key, and survives.
    assert.deepEqual(safeJsonParse('{"a":"constructor","constructor":"x"}'), {
      a: "constructor",
      constructor: "x",
    });
  });

  test("deep nesting and huge numbers are parsed or rejected, never crash", () => {
    // 10^6-deep nesting: over the default 1 MiB limit it is refused before parsing; under a raised
    // limit it parses (V8's JSON.parse does not recurse on the stack) without crashing.
    const deep = `{"to":"a:/","frm":"b:/","mid":"1","bdy":${"[".repeat(1_000_000)}${"]".repeat(1_000_000)}}`;
    assert.throws(
      () => decode(deep),
      (e: unknown) => e instanceof MessageError && e.code === "ERR_MESSAGE_TOO_LARGE",
    );
    assert.doesNotThrow(() => decode(deep, { maxBytes: 10_000_000 }));
    const deepProto = `{"to":"a:/","frm":"b:/","mid":"1","bdy":${'{"__proto__":'.repeat(1_000_000)}1${"}".repeat(1_000_000)}}`;
    assert.doesNotThrow(() => decode(deepProto, { maxBytes: 100_000_000 }));
    assert.equal(Object.getPrototypeOf({}), Object.prototype, "no prototype pollution");
    assert.equal(({} as Record<string, unknown>)["1"], undefined);
    assert.equal(decode('{"to":"a:/","frm":"b:/","mid":"1","bdy":1e400}').body, Number.POSITIVE_INFINITY);
  });

  test("HMAC-SHA256 signatures: signed verifies; unsigned, tampered and wrong-key rejected", () => {
    const secret = "s3cret";
    const m = createMessage({ to: "a:/", from: "b:/", body: { n: 1 } });
    const text = encode(m, { secret });
    assert.equal(decode(text, { secret, requireSignature: true }).body instanceof Object, true);
    const bad = (e: unknown) => e instanceof MessageError && e.code === "ERR_BAD_SIGNATURE";
    assert.throws(() => decode(encode(m), { secret, requireSignature: true }), bad);
    assert.throws(() => decode(text.replace('"n":1', '"n":2'), { secret, requireSignature: true }), bad);
    assert.throws(() => decode(text, { secret: "other", requireSignature: true }), bad);
  });

  test("property: decode never throws anything but MessageError", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string(),
          fc.json(),
          fc.jsonValue().map((v) => JSON.stringify(v)),
        ),
        (s) => {
          try {
            decode(s);
          } catch (e) {
            return e instanceof MessageError;
          }
          return true;
        },
      ),
      { numRuns: 10_000 },
    );
  });

  test("routes parse and format", () => {
    const iid = "0123456789abcdef0123456789abcdef";
    assert.deepEqual(parseRoute("inventory:/reserve"), { service: "inventory", path: "/reserve" });
    assert.deepEqual(parseRoute(`${iid}@inventory:/`), { service: "inventory", instance: iid, path: "/" });
    assert.deepEqual(parseRoute("orders:[get]/v1/orders/42"), {
      service: "orders",
      verb: "get",
      path: "/v1/orders/42",
    });
    assert.deepEqual(parseRoute("orders:"), { service: "orders", path: "/" });
    for (const r of ["orders:[get]/v1/orders/42", `${iid}@inventory:/x`])
      assert.equal(formatRoute(parseRoute(r)), r);
    for (const bad of [
      "",
      "orders",
      ":/",
      "Orders:/",
      "xyz@orders:/",
      "orders:/a b",
      "orders:nope",
      "a:\u0000",
    ]) {
      assert.throws(
        () => parseRoute(bad),
        (e: unknown) => e instanceof ValidationError && e.code === "ERR_INVALID_ROUTE",
        bad,
      );
    }
    assert.equal(normalizeRoutePattern("[GET]/v1/x/:id"), "[get]/v1/x/:id");
    assert.throws(() => normalizeRoutePattern("[get]v1"), ValidationError);
  });
});
