/**
 * The one route parser. UMF routes are `[<iid>@]<svc>:[<verb>]<path>` (DESIGN.md §3), e.g.
 * `inventory:/reserve`, `3f2a…@inventory:/`, `orders:[get]/v1/orders/42`; a call or send target is
 * the head of a route, `[<iid>@]<svc>`. {@link splitRoute} cuts a route into its parts without
 * checking them (the hot path reads routes the sender built); {@link parseRoute} and
 * {@link parseTarget} cut the same way and validate every part.
 *
 * @module
 */

import { ErrorCode, ValidationError } from "../errors.js";
import { assertInstanceId, assertServiceName, isInstanceId, isServiceName } from "../keys.js";

/** A parsed UMF route. */
export interface Route {
  /** Target service name. */
  service: string;
  /** Target instance id, when the route names one. */
  instance?: string;
  /** HTTP verb in lower case, when the route names one. */
  verb?: string;
  /** Path, always starting with `/`. */
  path: string;
}

const VERB_RE = /^\[([a-z]{1,16})\]/;
// Printable ASCII without whitespace or quotes: what an HTTP path or a UMF method may contain.
const PATH_RE = /^\/[\x21-\x7e]*$/;

/** The parts of a route, unchecked: instance id (or ""), service, and everything after the colon. */
export interface RouteParts {
  iid: string;
  service: string;
  path: string;
}

/**
 * Cut a route `[<iid>@]<svc>:<rest>` into its parts without validating them (a route without a colon
 * is all head). `undefined` when there is no service name.
 */
export function splitRoute(route: string): RouteParts | undefined {
  const colon = route.indexOf(":");
  const head = colon < 0 ? route : route.slice(0, colon);
  const at = head.indexOf("@");
  const service = at < 0 ? head : head.slice(at + 1);
  if (service.length === 0) return undefined;
  return { iid: at < 0 ? "" : head.slice(0, at), service, path: colon < 0 ? "" : route.slice(colon + 1) };
}

/**
 * Parse a call or send target, `svc` or `iid@svc`. Throws {@link ValidationError}
 * (`ERR_INVALID_NAME`, `ERR_INVALID_INSTANCE_ID`) when a part is invalid.
 */
export function parseTarget(target: string): { service: string; iid: string } {
  if (typeof target !== "string" || target.length === 0) {
    throw new ValidationError("target must be a service name or `iid@service`", {
      code: ErrorCode.INVALID_NAME,
    });
  }
  const at = target.indexOf("@");
  const iid = at < 0 ? "" : target.slice(0, at);
  const service = at < 0 ? target : target.slice(at + 1);
  if (at >= 0) assertInstanceId(iid);
  assertServiceName(service);
  return { service, iid };
}

/** Parse a route string. Throws {@link ValidationError} `ERR_INVALID_ROUTE` when malformed. */
export function parseRoute(route: unknown): Route {
  if (typeof route !== "string" || route.length === 0 || route.length > 2048) {
    throw bad(route, "expected a string of 1-2048 characters");
  }
  const colon = route.indexOf(":");
  if (colon <= 0) throw bad(route, 'expected "<service>:<path>"');
  const parts = splitRoute(route) ?? { iid: "", service: "", path: "" };
  const instance = route.lastIndexOf("@", colon) >= 0 ? parts.iid : undefined;
  if (instance !== undefined && !isInstanceId(instance)) {
    throw bad(route, "the instance id must be 32 lower-case hex characters");
  }
  const head = parts.service;
  const name: string = head;
  let rest = parts.path;
  if (!isServiceName(name)) throw bad(route, `"${head.slice(0, 64)}" is not a valid service name`);
  let verb: string | undefined;
  const m = VERB_RE.exec(rest);
  if (m) {
    verb = m[1];
    rest = rest.slice(m[0].length);
  }
  if (rest === "") rest = "/";
  if (!PATH_RE.test(rest))
    throw bad(route, "the path must start with / and hold no spaces or control characters");
  const out: Route = { service: head, path: rest };
  if (instance !== undefined) out.instance = instance;
  if (verb !== undefined) out.verb = verb;
  return out;
}

/** Format a route back to its string form. */
export function formatRoute(route: Route): string {
  const inst = route.instance ? `${route.instance}@` : "";
  const verb = route.verb ? `[${route.verb}]` : "";
  return `${inst}${route.service}:${verb}${route.path}`;
}

/**
 * Validate an HTTP route pattern as stored in the Hydra routes set: `[verb]/path` where the path may
 * hold `:param` segments, e.g. `[get]/v1/orders/:id`. Returns it normalised (verb lower-cased).
 */
export function normalizeRoutePattern(pattern: unknown): string {
  if (typeof pattern !== "string" || pattern.length === 0 || pattern.length > 1024) {
    throw bad(pattern, "expected a string of 1-1024 characters");
  }
  let rest = pattern;
  let verb = "";
  const m = /^\[([A-Za-z]{1,16})\]/.exec(rest);
  if (m?.[1]) {
    verb = `[${m[1].toLowerCase()}]`;
    rest = rest.slice(m[0].length);
  }
  if (!PATH_RE.test(rest))
    throw bad(pattern, "the path must start with / and hold no spaces or control characters");
  return `${verb}${rest}`;
}

function bad(route: unknown, reason: string): ValidationError {
  const shown = typeof route === "string" ? JSON.stringify(route.slice(0, 80)) : typeof route;
  return new ValidationError(`invalid route ${shown}: ${reason}`, { code: ErrorCode.INVALID_ROUTE });
}
