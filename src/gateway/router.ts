/**
 * The gateway's route table: which service answers `METHOD /path`.
 *
 * Patterns come from the registry's route sets (Hydra's `[verb]/path` strings, validated with
 * {@link normalizeRoutePattern}): `[get]/v1/orders/:id`, `[post]/v1/orders`, `/v1/x/*`. A pattern with no
 * verb, or with `[all]`, answers every method. Segments are static text, `:name` parameters (one
 * segment) or a trailing `*` / `*name` wildcard (the rest of the path, possibly empty).
 *
 * Most specific wins, segment by segment from the left: a static segment beats a parameter, which beats
 * a wildcard; so `/v1/orders/new` beats `/v1/orders/:id` beats `/v1/*`, and a longer literal prefix
 * beats a shorter one. At one pattern, a route naming the method beats one answering every method.
 * When the most specific path has no route for the method, less specific paths are tried; when no
 * path accepts the method at all the result says which methods would have matched (for a 405).
 *
 * The table is a trie, so a lookup costs O(path segments), not O(routes).
 *
 * @module
 */

import { normalizeRoutePattern } from "../envelope/index.js";

/** Verb that stands for every method (also used for patterns without a verb). */
export const ANY_METHOD = "all";

/** One registered route. */
export interface RouteEntry {
  /** The normalised pattern as registered, e.g. `[get]/v1/orders/:id`. */
  readonly pattern: string;
  /** Lower-case verb, or {@link ANY_METHOD}. */
  readonly method: string;
  /** Path part of the pattern. */
  readonly path: string;
  /** Services that registered this pattern, sorted (several may; the gateway tries them in order). */
  readonly services: readonly string[];
}

/** Result of {@link RouteTable.match}. */
export type RouteMatch =
  | { readonly kind: "found"; readonly route: RouteEntry; readonly params: Record<string, string> }
  | { readonly kind: "method-not-allowed"; readonly allow: readonly string[] }
  | { readonly kind: "not-found" };

/** A pattern that {@link parsePattern} understood. */
export interface ParsedPattern {
  method: string;
  path: string;
  segments: Segment[];
}

type Segment =
  | { kind: "static"; value: string }
  | { kind: "param"; name: string }
  | { kind: "wildcard"; name: string };

interface Node {
  statics: Map<string, Node>;
  param: Node | undefined;
  /** Routes ending in a wildcard at this depth, by method. */
  wildcard: Map<string, RouteEntryMut> | undefined;
  /** Routes ending exactly here, by method. */
  routes: Map<string, RouteEntryMut>;
}

interface RouteEntryMut {
  pattern: string;
  method: string;
  path: string;
  services: string[];
  /** Names of the parameters (and of the wildcard, last) in path order. */
  names: string[];
}

const newNode = (): Node => ({
  statics: new Map(),
  param: undefined,
  wildcard: undefined,
  routes: new Map(),
});

/**
 * Parse and validate one route pattern. Returns `undefined` for a pattern the gateway cannot serve (it
 * is skipped, not fatal: one bad route set must not take the gateway down).
 */
export function parsePattern(raw: string): ParsedPattern | undefined {
  let norm: string;
  try {
    norm = normalizeRoutePattern(raw);
  } catch {
    return undefined;
  }
  let method = ANY_METHOD;
  let path = norm;
  const m = /^\[([a-z]+)\]/.exec(norm);
  if (m?.[1]) {
    method = m[1];
    path = norm.slice(m[0].length);
  }
  const parts = splitPath(path);
  const segments: Segment[] = [];
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i] as string;
    if (p.startsWith(":")) {
      const name = p.slice(1);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return undefined;
      segments.push({ kind: "param", name });
    } else if (p.startsWith("*")) {
      // A wildcard only makes sense at the end.
      if (i !== parts.length - 1) return undefined;
      const name = p.length > 1 ? p.slice(1) : "*";
      if (name !== "*" && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) return undefined;
      segments.push({ kind: "wildcard", name });
    } else {
      segments.push({ kind: "static", value: p });
    }
  }
  return { method, path, segments };
}

/** Split a path into its non-empty segments (empty segments from `//` or a trailing `/` are ignored). */
export function splitPath(path: string): string[] {
  return path.split("/").filter((s) => s.length > 0);
}

/** A route table, rebuilt from the registry whenever routes change. */
export class RouteTable {
  readonly #root = newNode();
  #size = 0;

  /** Number of distinct (method, pattern) routes. */
  get size(): number {
    return this.#size;
  }

  /** Add `pattern` for `service`. Returns false when the pattern is not usable (and skips it). */
  add(service: string, pattern: string): boolean {
    const parsed = parsePattern(pattern);
    if (!parsed) return false;
    let node = this.#root;
    let target: Map<string, RouteEntryMut> = node.routes;
    for (const seg of parsed.segments) {
      if (seg.kind === "static") {
        let next = node.statics.get(seg.value);
        if (!next) {
          next = newNode();
          node.statics.set(seg.value, next);
        }
        node = next;
        target = node.routes;
      } else if (seg.kind === "param") {
        // One parameter node per position: `/a/:id` and `/a/:key/b` share it; names live on the routes.
        if (!node.param) node.param = newNode();
        node = node.param;
        target = node.routes;
      } else {
        if (!node.wildcard) node.wildcard = new Map();
        target = node.wildcard;
      }
    }
    const method = parsed.method;
    const existing = target.get(method);
    const pat = method === ANY_METHOD ? parsed.path : `[${method}]${parsed.path}`;
    if (existing) {
      if (!existing.services.includes(service)) {
        existing.services.push(service);
        existing.services.sort();
      }
    } else {
      const names = parsed.segments.flatMap((x) => (x.kind === "static" ? [] : [x.name]));
      target.set(method, { pattern: pat, method, path: parsed.path, services: [service], names });
      this.#size++;
    }
    return true;
  }

  /**
   * Find the route for `method` (any case) and an already normalised, decoded list of path segments.
   * Parameters are returned by name.
   */
  match(method: string, segments: readonly string[]): RouteMatch {
    const m = method.toLowerCase();
    const allow = new Set<string>();
    const values: string[] = [];
    const found = this.#search(this.#root, segments, 0, m, values, allow);
    if (found) {
      const params: Record<string, string> = Object.create(null);
      found.route.names.forEach((name, i) => {
        params[name] = found.values[i] ?? "";
      });
      const { names: _names, ...route } = found.route;
      return { kind: "found", route, params };
    }
    if (allow.size > 0) {
      return { kind: "method-not-allowed", allow: [...allow].map((x) => x.toUpperCase()).sort() };
    }
    return { kind: "not-found" };
  }

  #pick(routes: Map<string, RouteEntryMut>, method: string, allow: Set<string>): RouteEntryMut | undefined {
    if (routes.size === 0) return undefined;
    const r =
      routes.get(method) ??
      // HEAD is answered by a GET route (RFC 9110 §9.3.2), as every HTTP server does.
      (method === "head" ? routes.get("get") : undefined) ??
      routes.get(ANY_METHOD);
    if (r) return r;
    for (const k of routes.keys()) {
      allow.add(k);
      if (k === "get") allow.add("head");
    }
    return undefined;
  }

  #search(
    node: Node,
    segs: readonly string[],
    i: number,
    method: string,
    values: string[],
    allow: Set<string>,
  ): { route: RouteEntryMut; values: string[] } | undefined {
    if (i === segs.length) {
      const r = this.#pick(node.routes, method, allow);
      if (r) return { route: r, values: [...values] };
    } else {
      const seg = segs[i] as string;
      const st = node.statics.get(seg);
      if (st) {
        const r = this.#search(st, segs, i + 1, method, values, allow);
        if (r) return r;
      }
      if (node.param) {
        values.push(seg);
        const r = this.#search(node.param, segs, i + 1, method, values, allow);
        values.pop();
        if (r) return r;
      }
    }
    if (node.wildcard) {
      const r = this.#pick(node.wildcard, method, allow);
      if (r) return { route: r, values: [...values, segs.slice(i).join("/")] };
    }
    return undefined;
  }

  /** Every route, sorted by pattern (for diagnostics and tests). */
  entries(): RouteEntry[] {
    const out: RouteEntry[] = [];
    const add = (r: RouteEntryMut) =>
      out.push({ pattern: r.pattern, method: r.method, path: r.path, services: [...r.services] });
    const walk = (n: Node) => {
      for (const r of n.routes.values()) add(r);
      if (n.wildcard) for (const r of n.wildcard.values()) add(r);
      for (const c of n.statics.values()) walk(c);
      if (n.param) walk(n.param);
    };
    walk(this.#root);
    return out.sort((a, b) => a.pattern.localeCompare(b.pattern));
  }
}

/** Build a table from `{ service: [pattern, …] }` (what `Discovery.routes()` returns). */
export function buildRouteTable(routes: Readonly<Record<string, readonly string[]>>): RouteTable {
  const t = new RouteTable();
  for (const svc of Object.keys(routes).sort()) for (const p of routes[svc] ?? []) t.add(svc, p);
  return t;
}
