import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { compareVersions, nextVersion, schemaMessage } from "../../src/config/index.js";
import { levelFromNumber, MAX_FIELDS_CHARS, parseStreamEntry } from "../../src/log/index.js";
import { compareIds, stringifyFields } from "../../src/log/types.js";

describe("config versions", () => {
  test("natural order", () => {
    const v = ["1.10", "1.9", "2", "10", "1.0.0", "1.0.0-rc1", "0.9"];
    assert.deepEqual(v.sort(compareVersions), ["0.9", "1.0.0", "1.0.0-rc1", "1.9", "1.10", "2", "10"]);
  });
  test("next version bumps the last number", () => {
    assert.equal(nextVersion(undefined), "1");
    assert.equal(nextVersion("7"), "8");
    assert.equal(nextVersion("1.0.9"), "1.0.10");
    assert.equal(nextVersion("v2-beta"), "v3-beta");
    assert.equal(nextVersion("beta"), "beta.1");
    assert.equal(nextVersion("99999999999999999999"), "100000000000000000000");
  });
  test("schema messages: zod-like issues, errors, anything", () => {
    assert.equal(
      schemaMessage({
        issues: [
          { path: ["a", 0], message: "bad" },
          { path: [], message: "worse" },
        ],
      }),
      "a.0: bad; (root): worse",
    );
    assert.equal(schemaMessage(new Error("nope")), "nope");
    assert.equal(schemaMessage("plain"), "plain");
  });
});

describe("log entries", () => {
  test("fields never throw: errors, BigInt, cycles, throwing toJSON, huge", () => {
    const cyc: Record<string, unknown> = { a: 1 };
    cyc.self = cyc;
    const out = JSON.parse(stringifyFields({ err: new Error("x"), n: 10n, cyc }));
    assert.equal(out.err.message, "x");
    assert.equal(out.n, "10");
    assert.equal(out.cyc.self, "[Circular]");
    const bad = JSON.parse(
      stringifyFields({
        x: {
          toJSON: () => {
            throw new Error("boom");
          },
        },
      }),
    );
    assert.match(bad._unserializable, /boom/);
    const big = JSON.parse(stringifyFields({ s: "x".repeat(MAX_FIELDS_CHARS + 1) }));
    assert.match(big._truncated, /limit/);
  });
  test("parse stream entries (RESP2 arrays and RESP3 maps), reject foreign ones", () => {
    const e = parseStreamEntry([
      "5-1",
      [
        "ts",
        "4.5",
        "level",
        "warn",
        "service",
        "s",
        "instance",
        "i",
        "msg",
        "m",
        "fields",
        '{"a":1}',
        "cid",
        "c",
      ],
    ]);
    assert.deepEqual(e, {
      id: "5-1",
      ts: 4.5,
      level: "warn",
      service: "s",
      instance: "i",
      msg: "m",
      fields: { a: 1 },
      cid: "c",
    });
    assert.equal(parseStreamEntry(["1-0", { level: "info", msg: "x" }])?.msg, "x");
    assert.equal(parseStreamEntry(["1-0", ["level", "loud"]]), undefined);
    assert.equal(parseStreamEntry("nope"), undefined);
    assert.deepEqual(parseStreamEntry(["1-0", ["level", "info", "fields", "{bad"]])?.fields, {
      _raw: "{bad",
    });
    // Prototype pollution attempts in fields are scrubbed.
    const p = parseStreamEntry(["1-0", ["level", "info", "fields", '{"__proto__":{"x":1}}']]);
    assert.equal(({} as Record<string, unknown>).x, undefined);
    assert.ok(p);
  });
  test("ids compare numerically; pino levels map to names", () => {
    assert.ok(compareIds("9-0", "10-0") < 0);
    assert.ok(compareIds("10-2", "10-10") < 0);
    assert.equal(compareIds("3-3", "3-3"), 0);
    assert.deepEqual([10, 20, 30, 35, 40, 50, 60, 70].map(levelFromNumber), [
      "trace",
      "debug",
      "info",
      "info",
      "warn",
      "error",
      "fatal",
      "fatal",
    ]);
  });
});
