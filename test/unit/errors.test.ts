import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import {
  BulkheadFullError,
  CircuitOpenError,
  ConnectionError,
  ErrorCode,
  errorFromWire,
  errorToWire,
  InstanceLostError,
  NoInstanceError,
  RedmeshError,
  RemoteError,
  SerializationError,
  TimeoutError,
  ValidationError,
} from "../../src/index.js";

describe("errors", () => {
  test("every error has a name, a stable code, retryable and an optional cause", () => {
    const cause = new Error("low level");
    const e = new TimeoutError("too slow", { cause, data: { ms: 5 } });
    assert.equal(e.name, "TimeoutError");
    assert.equal(e.code, ErrorCode.TIMEOUT);
    assert.equal(e.retryable, true);
    assert.equal(e.cause, cause);
    assert.ok(e instanceof RedmeshError && e instanceof Error);
    const codes = Object.values(ErrorCode);
    assert.equal(new Set(codes).size, codes.length, "codes are unique");
    for (const c of codes) assert.match(c, /^ERR_[A-Z_]+$/);
  });

  test("errors cross the wire as {code, message, data, retryable} and come back typed", () => {
    const w = errorToWire(new ValidationError("bad sku", { data: { field: "sku" } }));
    assert.deepEqual(w, {
      code: "ERR_VALIDATION",
      message: "bad sku",
      retryable: false,
      data: { field: "sku" },
    });
    const back = errorFromWire(JSON.parse(JSON.stringify(w)));
    assert.ok(back instanceof ValidationError);
    assert.deepEqual(back.data, { field: "sku" });
    const custom = errorFromWire({ code: "E_OUT_OF_STOCK", message: "none left", retryable: true });
    assert.ok(custom instanceof RemoteError);
    assert.equal(custom.code, "E_OUT_OF_STOCK");
    assert.equal(custom.retryable, true);
    const plain = errorToWire(Object.assign(new Error("boom"), { code: "E_X", stack: "secret stack" }));
    assert.deepEqual(plain, { code: "E_X", message: "boom", retryable: false });
    assert.equal(errorFromWire(null).code, ErrorCode.REMOTE);
    assert.equal(errorFromWire({ code: 5, message: {} }).message, "remote error");
  });
});

describe("error catalogue", () => {
  test("every ErrorCode is documented in docs/errors.md, and the docs name no code the code lacks", () => {
    const doc = readFileSync(join(process.cwd(), "docs", "errors.md"), "utf8");
    const documented = new Set([...doc.matchAll(/^\| `(ERR_[A-Z_]+)`/gm)].map((m) => m[1]));
    const codes = new Set<string>(Object.values(ErrorCode));
    for (const c of codes) assert.ok(documented.has(c), `${c} is missing from docs/errors.md`);
    for (const c of documented)
      assert.ok(codes.has(c as string), `docs/errors.md lists ${c}, ErrorCode has no such code`);
  });

  test("the wire table rebuilds each code as its own class", () => {
    const cases: Array<[RedmeshError, new (...a: never[]) => RedmeshError]> = [
      [new NoInstanceError("orders", { data: { reason: "draining" } }), NoInstanceError],
      [new InstanceLostError("gone"), InstanceLostError],
      [new SerializationError("bigint"), SerializationError],
      [new BulkheadFullError("full"), BulkheadFullError],
      [new CircuitOpenError("open"), CircuitOpenError],
      [new ConnectionError("down"), ConnectionError],
      [new TimeoutError("late"), TimeoutError],
    ];
    for (const [e, cls] of cases) {
      const back = errorFromWire(JSON.parse(JSON.stringify(e.toJSON())));
      assert.ok(back instanceof cls, `${e.code} comes back as ${cls.name}, got ${back.name}`);
      assert.equal(back.code, e.code);
      assert.equal(back.message, e.message);
      assert.deepEqual(back.data, e.data);
      assert.equal(back.retryable, e.retryable);
    }
    const own = errorFromWire({ code: "ERR_OUT_OF_STOCK", message: "none left", retryable: false });
    assert.ok(own instanceof RemoteError);
    assert.equal(own.code, "ERR_OUT_OF_STOCK");
  });
});
