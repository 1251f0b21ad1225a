/** HTTP helpers for gateway tests: an undici client with its own agent, and raw-socket requests. */
import { connect } from "node:net";
import { Readable } from "node:stream";
import { Agent, request } from "undici";

/** A response read whole. */
export interface TestResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: <T = Record<string, unknown>>() => T;
}

/** A client on a private agent (closed with `close()`, so no keep-alive socket outlives the test). */
export function createTestClient() {
  const agent = new Agent({ keepAliveTimeout: 1000 });
  return {
    agent,
    async req(
      url: string,
      opts: {
        method?: string;
        headers?: Record<string, string>;
        body?: string | Buffer | AsyncIterable<Buffer>;
      } = {},
    ): Promise<TestResponse> {
      const r = await request(url, {
        dispatcher: agent,
        method: (opts.method ?? "GET") as "GET",
        headers: opts.headers ?? {},
        body:
          opts.body === undefined
            ? null
            : typeof opts.body === "string" || Buffer.isBuffer(opts.body)
              ? opts.body
              : Readable.from(opts.body),
      });
      const text = await r.body.text();
      return {
        status: r.statusCode,
        headers: r.headers,
        text,
        json: <T>() => JSON.parse(text) as T,
      };
    },
    close: () => agent.close(),
  };
}

/**
 * Send raw bytes on a fresh TCP connection and resolve with everything read until the server closes
 * it (or `timeoutMs`). For request targets a client library would normalise, and for slow clients.
 */
export function rawHttp(
  port: number,
  chunks: string[],
  { gapMs = 0, timeoutMs = 5000 } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, "127.0.0.1");
    let out = "";
    const t = setTimeout(() => {
      s.destroy();
      resolve(out);
    }, timeoutMs);
    s.on("data", (d) => {
      out += String(d);
    });
    s.on("error", (e) => {
      clearTimeout(t);
      if (out) resolve(out);
      else reject(e);
    });
    s.on("close", () => {
      clearTimeout(t);
      resolve(out);
    });
    s.on("connect", async () => {
      for (const c of chunks) {
        if (s.destroyed) return;
        s.write(c);
        if (gapMs) await new Promise((r) => setTimeout(r, gapMs));
      }
    });
  });
}

/** Status code of a raw HTTP response text. */
export function rawStatus(text: string): number {
  return Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
}

/** Body of a raw HTTP response text (de-chunked when `Transfer-Encoding: chunked`). */
export function rawBody(text: string): string {
  const i = text.indexOf("\r\n\r\n");
  const head = text.slice(0, i);
  let rest = text.slice(i + 4);
  if (!/^transfer-encoding:\s*chunked/im.test(head)) return rest;
  let out = "";
  for (;;) {
    const eol = rest.indexOf("\r\n");
    const size = Number.parseInt(rest.slice(0, eol), 16);
    if (!(size > 0)) return out;
    out += rest.slice(eol + 2, eol + 2 + size);
    rest = rest.slice(eol + 2 + size + 2);
  }
}
