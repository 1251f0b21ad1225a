/**
 * The dashboard's HTTP side: requests under the base path (the static page, `/snapshot.json`, the
 * SSE endpoint `/events`), and the server of its own that `listen()` opens. GET and HEAD only.
 *
 * @module
 */

import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ErrorCode, StateError, ValidationError } from "../errors.js";
import { isLogLevel, LogLevel } from "../log/index.js";
import type { Logger } from "../logger.js";
import type { DashboardSnapshot } from "./snapshot.js";
import { type SseClient, type SseClients, sseEvent } from "./sse.js";

/** Options of the dashboard's `listen()`. */
export interface DashboardListenOptions {
  /** TCP port; 0 picks a free one. @default 8090 */
  port?: number;
  /** Interface to bind. The dashboard has no authentication: keep it on loopback. @default "127.0.0.1" */
  host?: string;
}

/** Where `listen()` serves the page. */
export interface DashboardAddress {
  /** The page's URL (base path included). */
  url: string;
  /** The port bound (the one picked, for port 0). */
  port: number;
  /** The address bound. */
  host: string;
}

/** Options of {@link DashboardHttp}. */
export interface DashboardHttpOptions {
  /** URL path answered under (validated by the dashboard). */
  basePath: string;
  /** Namespace named in each stream's `hello`. */
  namespace: string;
  /** Where new streams join. */
  clients: SseClients;
  /** Diagnostics. */
  logger: Logger;
  /** Requests get a 503 unless this holds (not started, or stopping). */
  isRunning: () => boolean;
  /** One snapshot now, for `/snapshot.json`. */
  snapshot: () => Promise<DashboardSnapshot>;
  /** Sends a new stream, after its `hello`, what is known so far (last snapshot, log backlog). */
  welcome: (client: SseClient) => void;
}

const ASSETS: Record<string, string> = {
  "index.html": "text/html; charset=utf-8",
  "app.js": "text/javascript; charset=utf-8",
  "style.css": "text/css; charset=utf-8",
  "favicon.svg": "image/svg+xml",
};

// The page loads only its own files; nothing inline, nothing third party, no framing.
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Request routing and the server of `listen()`. */
export class DashboardHttp {
  readonly #o: DashboardHttpOptions;
  readonly #base: string;
  readonly #assets = new Map<string, Promise<Buffer>>();
  #server: Server | undefined;

  constructor(options: DashboardHttpOptions) {
    this.#o = options;
    this.#base = options.basePath;
  }

  /** The URL path answered under. */
  get basePath(): string {
    return this.#base;
  }

  /**
   * Open a server of its own on `options` and serve the dashboard there (`/` redirects to the base
   * path). `ready` runs once the options are checked, before binding (it starts the dashboard).
   */
  async listen(options: DashboardListenOptions, ready: () => Promise<void>): Promise<DashboardAddress> {
    const port = options.port ?? 8090;
    const host = options.host ?? "127.0.0.1";
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new ValidationError(`dashboard: port must be 0..65535, got ${String(port)}`, {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    if (this.#server) throw new StateError(ErrorCode.ALREADY_STARTED, "dashboard: already listening");
    await ready();
    if (this.#server) throw new StateError(ErrorCode.ALREADY_STARTED, "dashboard: already listening");
    const server = createServer((req, res) => {
      const path = (req.url ?? "/").split("?")[0];
      if (this.#base !== "" && path === "/") {
        res.writeHead(302, { location: `${this.#base}/` }).end();
        return;
      }
      this.handler(req, res);
    });
    this.#server = server;
    try {
      await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(port, host, () => {
          server.off("error", reject);
          resolve();
        });
      });
    } catch (err) {
      if (this.#server === server) this.#server = undefined;
      throw new ValidationError(`dashboard: cannot listen on ${host}:${port}: ${(err as Error).message}`, {
        code: ErrorCode.INVALID_OPTIONS,
        cause: err,
      });
    }
    if (this.#server !== server || !this.#o.isRunning()) {
      // Stopped while binding: the stop closed no server yet, so this one goes now.
      await this.#closeServer(server);
      throw new StateError(ErrorCode.NOT_RUNNING, "dashboard: stopped while starting to listen");
    }
    const addr = server.address() as AddressInfo;
    const shown = addr.family === "IPv6" ? `[${addr.address}]` : addr.address;
    return { url: `http://${shown}:${addr.port}${this.#base}/`, port: addr.port, host: addr.address };
  }

  /**
   * Close the server of `listen()`, if any. Its connections are dropped at once (keep-alive ones, and
   * requests still in flight): the event streams were ended before, the rest are short reads.
   */
  async close(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server) await this.#closeServer(server);
  }

  async #closeServer(server: Server): Promise<void> {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  /**
   * The request handler, for `node:http` or any framework that exposes Node's request and response.
   * Answers requests under the base path; anything else goes to `next` (or gets a 404).
   */
  readonly handler = (req: IncomingMessage, res: ServerResponse, next?: () => void): void => {
    let url: URL;
    try {
      url = new URL(req.url ?? "/", "http://dashboard.invalid");
    } catch {
      this.#plain(res, 400, "bad request URL");
      return;
    }
    const path = url.pathname;
    if (this.#base !== "" && path === this.#base) {
      res.writeHead(301, { location: `${this.#base}/${url.search}` }).end();
      return;
    }
    if (!path.startsWith(`${this.#base}/`)) {
      if (next) next();
      else this.#plain(res, 404, "not found");
      return;
    }
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      this.#plain(res, 405, "the dashboard is read-only: GET only");
      return;
    }
    if (!this.#o.isRunning()) {
      this.#plain(res, 503, "the dashboard is not running");
      return;
    }
    const rest = path.slice(this.#base.length + 1);
    if (rest === "events") {
      if (req.method === "HEAD") {
        res.writeHead(200, {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache",
        });
        res.end();
      } else this.#openStream(url, req, res);
      return;
    }
    if (rest === "snapshot.json") {
      void this.#o.snapshot().then(
        (snap) => {
          res.writeHead(200, { "content-type": "application/json", "cache-control": "no-store" });
          res.end(req.method === "HEAD" ? undefined : JSON.stringify(snap));
        },
        () => this.#plain(res, 503, "snapshot unavailable"),
      );
      return;
    }
    this.#serveAsset(rest === "" ? "index.html" : rest, req, res);
  };

  #serveAsset(name: string, req: IncomingMessage, res: ServerResponse): void {
    const type = ASSETS[name];
    if (type === undefined) {
      this.#plain(res, 404, "not found");
      return;
    }
    this.#asset(name).then(
      (body) => {
        res.writeHead(200, {
          "content-type": type,
          "content-length": body.length,
          "cache-control": "no-cache",
          "x-content-type-options": "nosniff",
          "referrer-policy": "no-referrer",
          ...(name === "index.html" ? { "content-security-policy": CSP, "x-frame-options": "DENY" } : {}),
        });
        res.end(req.method === "HEAD" ? undefined : body);
      },
      (err: unknown) => {
        this.#o.logger.error({ err, asset: name }, "dashboard: asset missing");
        this.#plain(res, 500, "dashboard asset missing (was the package built with its assets?)");
      },
    );
  }

  /** `GET /events`: an SSE stream filtered at `?level=` (default everything). */
  #openStream(url: URL, req: IncomingMessage, res: ServerResponse): void {
    const level = url.searchParams.get("level") ?? "trace";
    if (!isLogLevel(level)) {
      this.#plain(res, 400, `unknown level "${level}": use one of ${Object.keys(LogLevel).join(", ")}`);
      return;
    }
    req.socket.setNoDelay(true);
    req.socket.setKeepAlive(true);
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
      "x-content-type-options": "nosniff",
    });
    this.#o.clients.join(res, level, (client) => {
      // Reconnect after 2 s when the stream drops; then the hello with what is known so far.
      client.raw(`retry: 2000\n${sseEvent("hello", { namespace: this.#o.namespace, level })}`);
      this.#o.welcome(client);
    });
  }

  #plain(res: ServerResponse, status: number, text: string): void {
    if (res.headersSent) {
      res.end();
      return;
    }
    res.writeHead(status, {
      "content-type": "text/plain; charset=utf-8",
      "x-content-type-options": "nosniff",
    });
    res.end(`${text}\n`);
  }

  #asset(name: string): Promise<Buffer> {
    let p = this.#assets.get(name);
    if (!p) {
      p = readFile(new URL(`./public/${name}`, import.meta.url));
      p.catch(() => this.#assets.delete(name));
      this.#assets.set(name, p);
    }
    return p;
  }
}
