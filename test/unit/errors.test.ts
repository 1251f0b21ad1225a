import assert from "node:assert/strict";
import { describe, test } from "node:test";
import {
  ErrorCode,
  errorFromWire,
  errorToWire,
  RedmeshError,
  RemoteError,
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
