import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { CorsPolicy } from "../../src/gateway/cors.js";
import { forwardHeaders, stripHopByHop } from "../../src/gateway/headers.js";
import { normalizePath } from "../../src/gateway/path.js";
import { TokenBucketLimiter } from "../../src/gateway/rate-limit.js";

describe("gateway path normalisation", () => {
  test("decodes once, keeps the query, drops dot and empty segments, keeps a trailing slash", () => {
    assert.deepEqual(normalizePath("/v1//orders/./a%20b/?x=%2F1"), {
      segments: ["v1", "orders", "a b"],
      path: "/v1/orders/a%20b/",
      query: "x=%2F1",
    });
    assert.deepEqual(normalizePath("/"), { segments: [], path: "/", query: "" });
    // %252e decodes once to the literal text "%2e", which is no traversal and is re-encoded as sent.
    const twice = normalizePath("/a/%252e%252e/b");
    assert.ok(!("problem" in twice));
    if (!("problem" in twice)) {
      assert.deepEqual(twice.segments, ["a", "%2e%2e", "b"]);
      assert.equal(twice.path, "/a/%252e%252e/b");
    }
  });

  test("rejects traversal, encoded separators, NUL, bad encoding and non-origin targets", () => {
    const cases: Array<[string, string]> = [
      ["/a/../b", "traversal"],
      ["/a/%2e%2e/b", "traversal"],
      ["/a/.%2E", "traversal"],
      ["/a%2fb", "encoded-slash"],
      ["/a%2Fb", "encoded-slash"],
      ["/a%5Cb", "encoded-slash"],
      ["/a\\b", "encoded-slash"],
      ["/a%00b", "nul"],
      ["/a\0b", "nul"],
      ["/a%zz", "bad-encoding"],
      ["/a%E0%A4%A", "bad-encoding"],
      ["http://evil/x", "not-origin-form"],
      ["*", "not-origin-form"],
      [`/${"a".repeat(9000)}`, "too-long"],
    ];
    for (const [target, problem] of cases) {
      const r = normalizePath(target);
      assert.ok("problem" in r, `${target} should be rejected`);
      if ("problem" in r) assert.equal(r.problem, problem, target);
    }
  });

  test("property: normalising the normalised path is the identity, and no segment is . or ..", () => {
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 8 }), { maxLength: 6 }), (parts) => {
        const target = `/${parts.map((p) => encodeURIComponent(p)).join("/")}`;
        const r = normalizePath(target);
        if ("problem" in r) return true;
        if (r.segments.some((s) => s === "." || s === ".." || s.includes("/") || s.includes("\0")))
          return false;
        const again = normalizePath(r.path);
        return (
          !("problem" in again) &&
          again.path === r.path &&
          again.segments.join("\n") === r.segments.join("\n")
        );
      }),
      { numRuns: 10_000 },
    );
  });
});

describe("gateway headers", () => {
  test("strips hop-by-hop headers and those named in Connection", () => {
    const out = stripHopByHop({
      connection: "keep-alive, X-Secret",
      "keep-alive": "timeout=5",
      "x-secret": "1",
      "proxy-authorization": "Basic x",
      "proxy-foo": "y",
      te: "trailers",
      trailer: "x",
      "transfer-encoding": "chunked",
      upgrade: "websocket",
      "content-type": "text/plain",
      "x-keep": "yes",
    });
    assert.deepEqual(out, { "content-type": "text/plain", "x-keep": "yes" });
  });

  test("adds X-Forwarded-* and the request id, appends to a prior X-Forwarded-For, drops Host", () => {
    const out = forwardHeaders(
      { host: "api.example", "x-forwarded-for": "10.0.0.1", accept: "*/*" },
      { ip: "127.0.0.1", proto: "http", host: "api.example", requestId: "rid-1" },
    );
    assert.deepEqual(out, {
      accept: "*/*",
      "x-forwarded-for": "10.0.0.1, 127.0.0.1",
      "x-forwarded-proto": "http",
      "x-forwarded-host": "api.example",
      "x-request-id": "rid-1",
    });
  });
});

describe("gateway rate limit", () => {
  test("token bucket: burst, then one token per 1/rate, with Retry-After", () => {
    let now = 0;
    const l = new TokenBucketLimiter({ ratePerSec: 2, burst: 3 }, () => now);
    assert.ok(l.take("a").ok && l.take("a").ok && l.take("a").ok);
    const d = l.take("a");
    assert.equal(d.ok, false);
    if (!d.ok) assert.equal(d.retryAfterMs, 500);
    assert.ok(l.take("b").ok, "clients are independent");
    now += 500;
    assert.ok(l.take("a").ok);
    assert.equal(l.take("a").ok, false);
  });

  test("bounded memory: idle buckets are swept when the table is full", () => {
    let now = 0;
    const l = new TokenBucketLimiter({ ratePerSec: 10, maxClients: 100 }, () => now);
    for (let i = 0; i < 1000; i++) {
      l.take(`c${i}`);
      now += 1;
    }
    assert.ok(l.size <= 100, `size ${l.size}`);
  });

  test("rejects nonsense options", () => {
    assert.throws(() => new TokenBucketLimiter({ ratePerSec: 0 }), RangeError);
    assert.throws(() => new TokenBucketLimiter({ ratePerSec: 5, burst: 0 }), RangeError);
  });
});

describe("gateway CORS policy", () => {
  const p = new CorsPolicy({ origins: ["https://app.example"], methods: ["GET", "POST"] });
  test("allowed origins get headers, others none", () => {
    assert.equal(
      p.responseHeaders("https://app.example")["access-control-allow-origin"],
      "https://app.example",
    );
    assert.deepEqual(p.responseHeaders("https://evil.example"), {});
    assert.deepEqual(p.responseHeaders(undefined), {});
  });
  test("preflight checks origin and method", () => {
    const h = p.preflightHeaders("https://app.example", {
      "access-control-request-method": "POST",
      "access-control-request-headers": "content-type",
    });
    assert.equal(h?.["access-control-allow-methods"], "GET, POST");
    assert.equal(h?.["access-control-allow-headers"], "content-type");
    assert.equal(
      p.preflightHeaders("https://app.example", { "access-control-request-method": "DELETE" }),
      undefined,
    );
    assert.equal(
      p.preflightHeaders("https://evil.example", { "access-control-request-method": "GET" }),
      undefined,
    );
  });
});
