import assert from "node:assert/strict";
import { describe, test } from "node:test";
import fc from "fast-check";
import { buildRouteTable, parsePattern, RouteTable, splitPath } from "../../src/gateway/router.js";

const segs = (p: string) => splitPath(p);

function found(t: RouteTable, method: string, path: string) {
  const m = t.match(method, segs(path));
  assert.equal(m.kind, "found", `${method} ${path} should match, got ${m.kind}`);
  if (m.kind !== "found") throw new Error("unreachable");
  return m;
}

describe("gateway route patterns", () => {
  test("parses verbs, params and wildcards", () => {
    assert.deepEqual(parsePattern("[GET]/v1/orders/:id"), {
      method: "get",
      path: "/v1/orders/:id",
      segments: [
        { kind: "static", value: "v1" },
        { kind: "static", value: "orders" },
        { kind: "param", name: "id" },
      ],
    });
    assert.equal(parsePattern("/v1/x/*")?.method, "all");
    assert.equal(parsePattern("[all]/v1/x/*rest")?.segments.at(-1)?.kind, "wildcard");
  });

  test("rejects unusable patterns instead of throwing", () => {
    for (const bad of [
      "",
      "v1/no-slash",
      "[get]",
      "/a/*/b",
      "/a/:",
      "/a/:1x",
      "/has space",
      42 as unknown as string,
    ]) {
      assert.equal(parsePattern(bad), undefined, String(bad));
    }
    const t = new RouteTable();
    assert.equal(t.add("svc", "/a/*/b"), false);
    assert.equal(t.size, 0);
  });
});

describe("gateway route table", () => {
  const table = buildRouteTable({
    orders: [
      "[get]/v1/orders/:id",
      "[post]/v1/orders",
      "[get]/v1/orders/:id/items/:item",
      "[delete]/v1/orders/:id",
    ],
    specials: ["[get]/v1/orders/special"],
    files: ["[get]/v1/files/*path", "/v1/any"],
    catchall: ["[get]/v1/*"],
    root: ["[get]/"],
  });

  test("extracts path params by name", () => {
    const m = found(table, "GET", "/v1/orders/42/items/7");
    assert.deepEqual(m.route.services, ["orders"]);
    assert.deepEqual({ ...m.params }, { id: "42", item: "7" });
  });

  test("static beats param beats wildcard", () => {
    assert.deepEqual(found(table, "GET", "/v1/orders/special").route.services, ["specials"]);
    assert.deepEqual(found(table, "GET", "/v1/orders/43").route.services, ["orders"]);
    const w = found(table, "GET", "/v1/other/thing");
    assert.deepEqual(w.route.services, ["catchall"]);
    assert.equal(w.params["*"], "other/thing");
  });

  test("a longer literal prefix beats a shorter one", () => {
    const m = found(table, "GET", "/v1/files/a/b.txt");
    assert.deepEqual(m.route.services, ["files"]);
    assert.equal(m.params.path, "a/b.txt");
  });

  test("method-aware: 405 with Allow when only the method is wrong, 404 when nothing matches", () => {
    assert.deepEqual(found(table, "DELETE", "/v1/orders/9").route.services, ["orders"]);
    const m = table.match("PUT", segs("/v1/orders"));
    assert.equal(m.kind, "method-not-allowed");
    // `[get]/v1/*` matches /v1/orders too, so GET (and HEAD) are allowed as well.
    if (m.kind === "method-not-allowed") assert.deepEqual(m.allow, ["GET", "HEAD", "POST"]);
    assert.equal(table.match("GET", segs("/v2/nothing")).kind, "not-found");
  });

  test("a less specific path takes a method the most specific one lacks", () => {
    // POST /v1/orders/1 has no route at `:id` for POST; the `[get]/v1/*` wildcard is GET only → 405.
    const m = table.match("POST", segs("/v1/orders/1"));
    assert.equal(m.kind, "method-not-allowed");
    if (m.kind === "method-not-allowed") assert.deepEqual(m.allow, ["DELETE", "GET", "HEAD"]);
    const t = buildRouteTable({ a: ["[get]/x/:id"], b: ["[post]/x/*"] });
    assert.deepEqual(found(t, "POST", "/x/1").route.services, ["b"]);
  });

  test("verb-less routes answer every method; HEAD falls back to GET", () => {
    assert.deepEqual(found(table, "PATCH", "/v1/any").route.services, ["files"]);
    assert.deepEqual(found(table, "HEAD", "/v1/orders/1").route.services, ["orders"]);
    assert.deepEqual(found(table, "GET", "/").route.services, ["root"]);
  });

  test("a named method beats [all] at the same pattern", () => {
    const t = buildRouteTable({ a: ["/p"], b: ["[get]/p"] });
    assert.deepEqual(found(t, "GET", "/p").route.services, ["b"]);
    assert.deepEqual(found(t, "POST", "/p").route.services, ["a"]);
  });

  test("several services registering one pattern are all kept, sorted", () => {
    const t = buildRouteTable({ zeta: ["[get]/s"], alpha: ["[get]/s"] });
    assert.deepEqual(found(t, "GET", "/s").route.services, ["alpha", "zeta"]);
    assert.equal(t.size, 1);
  });

  test("param names come from the matched route, not from a sibling sharing the position", () => {
    const t = buildRouteTable({ a: ["[get]/u/:id", "[get]/u/:key/b"] });
    assert.deepEqual({ ...found(t, "GET", "/u/1").params }, { id: "1" });
    assert.deepEqual({ ...found(t, "GET", "/u/2/b").params }, { key: "2" });
  });

  test("params object has no prototype (no pollution through names)", () => {
    const t = buildRouteTable({ a: ["[get]/u/:constructor"] });
    const m = found(t, "GET", "/u/__proto__");
    assert.equal(Object.getPrototypeOf(m.params), null);
    assert.equal(m.params.constructor, "__proto__");
  });
});

// ---- properties ----

const segArb = fc.stringMatching(/^[a-z0-9]{1,6}$/);
const pathArb = fc.array(segArb, { minLength: 0, maxLength: 5 });

describe("gateway route table properties", () => {
  test("a static route always matches its own path exactly, with no params", () => {
    fc.assert(
      fc.property(pathArb, fc.constantFrom("get", "post", "put", "delete"), (parts, verb) => {
        const t = buildRouteTable({ s: [`[${verb}]/${parts.join("/")}`] });
        const m = t.match(verb.toUpperCase(), parts);
        return m.kind === "found" && Object.keys(m.params).length === 0;
      }),
    );
  });

  test("a param route binds every replaced segment; a static sibling always wins on its own path", () => {
    fc.assert(
      fc.property(
        fc.array(segArb, { minLength: 1, maxLength: 5 }),
        fc.array(fc.boolean(), { minLength: 5, maxLength: 5 }),
        (parts, mask) => {
          // With no param the two patterns are the same route (both services share it): nothing to test.
          if (!mask.slice(0, parts.length).some(Boolean)) return true;
          const pattern = parts.map((p, i) => (mask[i] ? `:p${i}` : p)).join("/");
          const t = buildRouteTable({ dyn: [`[get]/${pattern}`], fixed: [`[get]/${parts.join("/")}`] });
          const m = t.match("GET", parts);
          if (m.kind !== "found" || m.route.services[0] !== "fixed") return false;
          const other = parts.map((p, i) => (mask[i] ? `${p}x` : p));
          const d = t.match("GET", other);
          if (d.kind !== "found" || d.route.services[0] !== "dyn") return false;
          return parts.every((_, i) => !mask[i] || d.params[`p${i}`] === other[i]);
        },
      ),
    );
  });

  test("most specific wins: the winner is the lexicographic maximum of (static > param > wildcard)", () => {
    // Reference: brute force over every candidate route, ranking segment by segment.
    const rank = (pattern: string, path: string[]): number[] | undefined => {
      const ps = splitPath(pattern);
      const r: number[] = [];
      for (let i = 0; i < ps.length; i++) {
        const p = ps[i] as string;
        if (p.startsWith("*")) return [...r, 0];
        if (i >= path.length) return undefined;
        if (p.startsWith(":")) r.push(1);
        else if (p === path[i]) r.push(2);
        else return undefined;
      }
      // An exact end (0.5) beats a wildcard matching the empty rest (0).
      return ps.length === path.length ? [...r, 0.5] : undefined;
    };
    const cmp = (a: number[], b: number[]) => {
      for (let i = 0; i < Math.min(a.length, b.length); i++)
        if (a[i] !== b[i]) return (a[i] ?? 0) - (b[i] ?? 0);
      return a.length - b.length;
    };
    const small = fc.constantFrom("a", "b");
    const patSeg = fc.oneof(small, fc.constant(":x"));
    const patternArb = fc
      .tuple(fc.array(patSeg, { minLength: 0, maxLength: 3 }), fc.boolean())
      .map(([ps, wild]) => `/${[...ps, ...(wild ? ["*"] : [])].join("/")}`);
    fc.assert(
      fc.property(
        fc.uniqueArray(patternArb, { minLength: 1, maxLength: 8 }),
        fc.array(small, { maxLength: 4 }),
        (patterns, path) => {
          const routes: Record<string, string[]> = {};
          patterns.forEach((p, i) => {
            routes[`s${i}`] = [`[get]${p}`];
          });
          const t = buildRouteTable(routes);
          const m = t.match("GET", path);
          const ranked = patterns
            .map((p, i) => ({ i, r: rank(p, path) }))
            .filter((x): x is { i: number; r: number[] } => x.r !== undefined);
          if (ranked.length === 0) return m.kind === "not-found";
          ranked.sort((x, y) => cmp(y.r, x.r));
          if (m.kind !== "found") return false;
          // Patterns that normalise to the same trie position (":x" vs another param name) tie.
          const best = ranked
            .filter((x) => cmp(x.r, (ranked[0] as { r: number[] }).r) === 0)
            .map((x) => `s${x.i}`);
          return best.includes(m.route.services[0] as string);
        },
      ),
      { numRuns: 500 },
    );
  });

  test("matching never throws on arbitrary segments and methods", () => {
    const t = buildRouteTable({ a: ["[get]/x/:id", "/y/*", "[post]/"] });
    fc.assert(
      fc.property(fc.string(), fc.array(fc.string(), { maxLength: 6 }), (method, parts) => {
        const m = t.match(method, parts);
        return m.kind === "found" || m.kind === "not-found" || m.kind === "method-not-allowed";
      }),
    );
  });
});
