/**
 * CORS with an explicit allow-list of origins (Fetch standard §3.2). Requests from origins not on the
 * list get no CORS headers (the browser then blocks the response); preflights (`OPTIONS` with
 * `Access-Control-Request-Method`) are answered by the gateway itself and never reach a service.
 *
 * @module
 */

import type { IncomingHttpHeaders } from "node:http";

/** CORS options. */
export interface CorsOptions {
  /** Allowed origins, exactly as browsers send them (`https://app.example.com`), or `"*"` for any. */
  origins: readonly string[] | "*";
  /**
   * Methods allowed in preflights.
   * @default ["GET","HEAD","POST","PUT","PATCH","DELETE"]
   */
  methods?: readonly string[];
  /**
   * Request headers allowed in preflights; by default those the preflight asks for.
   * @default the requested headers
   */
  allowHeaders?: readonly string[];
  /** Response headers exposed to scripts. @default ["x-request-id"] */
  exposeHeaders?: readonly string[];
  /** Send `Access-Control-Allow-Credentials: true` (never combined with `*`). @default false */
  credentials?: boolean;
  /** Preflight cache lifetime in seconds. @default 600 */
  maxAgeSec?: number;
}

const DEFAULT_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];

/** Evaluates the CORS policy for one request. */
export class CorsPolicy {
  readonly #any: boolean;
  readonly #origins: ReadonlySet<string>;
  readonly #o: CorsOptions;

  constructor(options: CorsOptions) {
    this.#o = options;
    this.#any = options.origins === "*";
    this.#origins = new Set(options.origins === "*" ? [] : options.origins);
  }

  /** True when `origin` is allowed. */
  allows(origin: string): boolean {
    return this.#any || this.#origins.has(origin);
  }

  /** True when the request is a CORS preflight. */
  static isPreflight(method: string | undefined, headers: IncomingHttpHeaders): boolean {
    return method === "OPTIONS" && typeof headers["access-control-request-method"] === "string";
  }

  /** Headers for an actual (non-preflight) response; empty when the origin is absent or not allowed. */
  responseHeaders(origin: string | undefined): Record<string, string> {
    if (origin === undefined || !this.allows(origin)) return {};
    const h: Record<string, string> = {
      "access-control-allow-origin": this.#allowOrigin(origin),
      vary: "Origin",
    };
    if (this.#o.credentials) h["access-control-allow-credentials"] = "true";
    const expose = this.#o.exposeHeaders ?? ["x-request-id"];
    if (expose.length > 0) h["access-control-expose-headers"] = expose.join(", ");
    return h;
  }

  /**
   * Headers answering a preflight, or `undefined` when the origin or the requested method is not
   * allowed (the gateway then answers 403 without CORS headers).
   */
  preflightHeaders(
    origin: string | undefined,
    headers: IncomingHttpHeaders,
  ): Record<string, string> | undefined {
    if (origin === undefined || !this.allows(origin)) return undefined;
    const methods = (this.#o.methods ?? DEFAULT_METHODS).map((m) => m.toUpperCase());
    const asked = String(headers["access-control-request-method"] ?? "").toUpperCase();
    if (!methods.includes(asked)) return undefined;
    const requested = String(headers["access-control-request-headers"] ?? "");
    const allowHeaders = this.#o.allowHeaders ? this.#o.allowHeaders.join(", ") : requested;
    const h: Record<string, string> = {
      "access-control-allow-origin": this.#allowOrigin(origin),
      "access-control-allow-methods": methods.join(", "),
      "access-control-max-age": String(this.#o.maxAgeSec ?? 600),
      vary: "Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
    };
    if (allowHeaders) h["access-control-allow-headers"] = allowHeaders;
    if (this.#o.credentials) h["access-control-allow-credentials"] = "true";
    return h;
  }

  #allowOrigin(origin: string): string {
    // With credentials the literal origin is required; `*` is refused by browsers.
    return this.#any && !this.#o.credentials ? "*" : origin;
  }
}
