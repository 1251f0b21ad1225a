/**
 * A small Server-Sent Events reader for dashboard tests: opens a stream with fetch (undici), parses
 * events as they arrive and lets a test wait for the one it expects.
 */

/** One parsed SSE event. */
export interface SseEvent {
  event: string;
  data: string;
}

/** An open SSE stream. */
export interface SseStream {
  readonly status: number;
  readonly headers: Headers;
  /** Every event received so far, in order. */
  readonly events: SseEvent[];
  /** Resolves when the server ends the stream (or it errors). */
  readonly ended: Promise<void>;
  /** Wait for an event (already received at or after `from`, or still to come) that satisfies `pred`. */
  next(
    pred: (e: SseEvent) => boolean,
    options?: { timeoutMs?: number; from?: number; what?: string },
  ): Promise<SseEvent>;
  /** Parsed JSON of the latest `snapshot` event that satisfies `pred`, waiting for it. */
  snapshot<T = unknown>(pred: (s: T) => boolean, options?: { timeoutMs?: number; what?: string }): Promise<T>;
  /** Abort the request (the client goes away). */
  close(): void;
}

/** Open `url` as an SSE stream. */
export async function openSse(url: string): Promise<SseStream> {
  const abort = new AbortController();
  const res = await fetch(url, { signal: abort.signal, headers: { accept: "text/event-stream" } });
  const events: SseEvent[] = [];
  const waiters = new Set<() => void>();
  let done = false;
  const ended = (async () => {
    if (!res.body) return;
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = "";
    try {
      for (;;) {
        const { value, done: end } = await reader.read();
        if (end) break;
        buf += dec.decode(value, { stream: true });
        for (let i = buf.indexOf("\n\n"); i >= 0; i = buf.indexOf("\n\n")) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let event = "message";
          const data: string[] = [];
          for (const line of block.split("\n")) {
            if (line.startsWith("event: ")) event = line.slice(7);
            else if (line.startsWith("data: ")) data.push(line.slice(6));
          }
          if (data.length > 0) events.push({ event, data: data.join("\n") });
        }
        for (const w of waiters) w();
      }
    } catch {
      /* aborted */
    } finally {
      done = true;
      for (const w of waiters) w();
    }
  })();

  const next: SseStream["next"] = (pred, options = {}) => {
    const { timeoutMs = 5000, from = 0, what = "event" } = options;
    return new Promise((resolve, reject) => {
      const check = () => {
        for (let i = events.length - 1; i >= from; i--) {
          const e = events[i] as SseEvent;
          if (pred(e)) {
            cleanup();
            resolve(e);
            return;
          }
        }
        if (done) {
          cleanup();
          reject(new Error(`stream ended before ${what}`));
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(check);
      };
      waiters.add(check);
      check();
    });
  };

  return {
    status: res.status,
    headers: res.headers,
    events,
    ended,
    next,
    async snapshot<T>(pred: (s: T) => boolean, options: { timeoutMs?: number; what?: string } = {}) {
      // Only the latest snapshot counts: an older one that matched may be stale already.
      const e = await next(
        (ev) => {
          if (ev.event !== "snapshot") return false;
          const latest = [...events].reverse().find((x) => x.event === "snapshot");
          return latest === ev && pred(JSON.parse(ev.data) as T);
        },
        { what: "snapshot", ...options },
      );
      return JSON.parse(e.data) as T;
    },
    close() {
      abort.abort();
    },
  };
}
