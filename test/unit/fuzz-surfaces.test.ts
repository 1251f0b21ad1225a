import { describe, test } from "node:test";
import fc from "fast-check";
import { normalizePath } from "../../src/gateway/path.js";
import { createKeys, normalizeRoutePattern, parseRoute, ValidationError } from "../../src/index.js";

// Strings made to hurt: glob and key separators, braces (hash tags), escapes, NUL, Unicode, long ones.
const nasty = fc.oneof(
  fc.string({ unit: "binary", maxLength: 64 }),
  fc.stringMatching(/^[\s\S]{0,40}$/),
  fc
    .array(
      fc.constantFrom(
        ":",
        "*",
        "?",
        "[",
        "]",
        "{",
        "}",
        "\\",
        "\0",
        "/",
        "..",
        "%2F",
        "%00",
        "é",
        "🦄",
        " ",
        "[get]",
      ),
      {
        maxLength: 20,
      },
    )
    .map((a) => a.join("")),
  fc.constant("a".repeat(20_000)),
  fc.constant(`[get]/${"x/".repeat(10_000)}`),
);

describe("bad input: route patterns, routes and paths (10,000 cases each)", () => {
  test("route patterns are normalised to a safe form or refused with ERR_INVALID_ROUTE, nothing else", () => {
    fc.assert(
      fc.property(nasty, (s) => {
        let out: string;
        try {
          out = normalizeRoutePattern(s);
        } catch (e) {
          return e instanceof ValidationError && e.code === "ERR_INVALID_ROUTE";
        }
        // Accepted: printable, no NUL or whitespace, idempotent.
        return !/[\0\s]/.test(out) && normalizeRoutePattern(out) === out;
      }),
      { numRuns: 10_000 },
    );
  });

  test("UMF routes parse or are refused; a parsed route never names another service than it says", () => {
    const keys = createKeys({ namespace: "fz" });
    fc.assert(
      fc.property(
        nasty,
        fc.constantFrom("", "orders:", "orders:/", "0123456789abcdef0123456789abcdef@orders:"),
        (s, prefix) => {
          let r: ReturnType<typeof parseRoute>;
          try {
            r = parseRoute(prefix + s);
          } catch (e) {
            return e instanceof ValidationError;
          }
          // The service name is one that keys accept, so it can never reach into another key space.
          return (
            keys.serviceChannel(r.service).startsWith("fz:service:mc:") && !/[:*?[\]{}\\\s\0]/.test(r.service)
          );
        },
      ),
      { numRuns: 10_000 },
    );
  });

  test("gateway request targets: normalised without traversal or NUL, or refused", () => {
    fc.assert(
      fc.property(nasty, (s) => {
        const r = normalizePath(s.startsWith("/") ? s : `/${s}`);
        if ("problem" in r) return true;
        return r.segments.every((x) => x !== "." && x !== ".." && !x.includes("\0") && !x.includes("/"));
      }),
      { numRuns: 10_000 },
    );
  });
});
