/**
 * A TCP fault proxy to put between redmesh and a test Redis: add latency, black-hole traffic (sockets
 * stay open, nothing flows — a dead-but-open connection), reset every connection, or cut a connection
 * after N bytes. Everything it opens is closed by `close()`.
 */
import { createServer, type Server, Socket } from "node:net";

export interface FaultProxy {
  readonly port: number;
  /** `redis://127.0.0.1:<proxy port>` */
  readonly url: string;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** Live client connections now. */
  readonly open: number;
  /** Delay every chunk by `ms` in each direction (0 turns it off). */
  latency(ms: number): void;
  /**
   * Stop forwarding in both directions while on; sockets stay open. Like a stalled network path: data
   * is held back (TCP backpressure), not dropped, and flows again in order when turned off.
   * `scope: "open"` freezes only the connections open now and lets new ones through: a dead-but-open
   * socket (dropped NAT state, a half-open peer) while the server itself is fine.
   */
  blackhole(on: boolean, scope?: "all" | "open"): void;
  /** Destroy every open connection with a TCP reset. */
  resetAll(): void;
  /**
   * Cut connections (with a reset) once they have carried `bytes` more bytes upstream, counted from
   * this call for open connections and from the start for new ones; `undefined` turns it off.
   */
  cutAfter(bytes: number | undefined): void;
  close(): Promise<void>;
}

export async function startFaultProxy(targetPort: number, targetHost = "127.0.0.1"): Promise<FaultProxy> {
  let delayMs = 0;
  let holing = false;
  let cutBytes: number | undefined;
  let accepted = 0;
  const pairs = new Set<[Socket, Socket]>();
  const counters = new Set<{ n: number }>();

  const pipe = (from: Socket, to: Socket, counter?: { n: number }) => {
    from.on("data", (chunk: Buffer) => {
      if (counter) {
        counter.n += chunk.length;
        if (cutBytes !== undefined && counter.n > cutBytes) {
          from.resetAndDestroy();
          to.resetAndDestroy();
          return;
        }
      }
      if (delayMs > 0) {
        const t = setTimeout(() => {
          if (!to.destroyed) to.write(chunk);
        }, delayMs);
        t.unref();
      } else if (!to.destroyed) to.write(chunk);
    });
  };

  const server: Server = createServer((client) => {
    accepted++;
    const upstream = new Socket();
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    const counter = { n: 0 };
    counters.add(counter);
    const end = () => {
      counters.delete(counter);
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
    upstream.connect(targetPort, targetHost);
    pipe(client, upstream, counter);
    pipe(upstream, client);
    if (holing) {
      client.pause();
      upstream.pause();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const addr = server.address();
  const port = typeof addr === "object" && addr ? addr.port : 0;

  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    get accepted() {
      return accepted;
    },
    get open() {
      return pairs.size;
    },
    latency(ms) {
      delayMs = ms;
    },
    blackhole(on, scope = "all") {
      holing = on && scope === "all";
      for (const [a, b] of pairs) {
        if (on) {
          a.pause();
          b.pause();
        } else {
          a.resume();
          b.resume();
        }
      }
    },
    resetAll() {
      for (const [a, b] of [...pairs]) {
        a.resetAndDestroy();
        b.resetAndDestroy();
      }
    },
    cutAfter(bytes) {
      cutBytes = bytes;
      for (const c of counters) c.n = 0;
    },
    async close() {
      for (const [a, b] of [...pairs]) {
        a.destroy();
        b.destroy();
      }
      pairs.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
