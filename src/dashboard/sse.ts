/**
 * One Server-Sent Events client with backpressure: while the socket's buffer is full, the newest
 * snapshot replaces any unsent one and log entries are dropped (counted, and the page is told how
 * many on `drain`); a client that stays too far behind is disconnected rather than buffered forever.
 *
 * @module
 */

import type { ServerResponse } from "node:http";
import type { LogLevelName } from "../log/index.js";

/** Serialise one SSE event. `data` is JSON, which holds no raw newline, so it is one `data:` line. */
export function sseEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** A connected SSE client. */
export class SseClient {
  readonly #res: ServerResponse;
  readonly #maxBufferedBytes: number;
  readonly #onGone: (c: SseClient) => void;
  /** Lowest log level this client asked for. */
  readonly minLevel: number;
  /** Level name this client asked for. */
  readonly level: LogLevelName;
  #congested = false;
  #pendingSnapshot: string | undefined;
  #droppedLogs = 0;
  #closed = false;
  /** Counters for stats and tests. */
  readonly stats = { events: 0, droppedLogs: 0, coalescedSnapshots: 0 };

  constructor(
    res: ServerResponse,
    options: {
      level: LogLevelName;
      minLevel: number;
      maxBufferedBytes: number;
      onGone: (c: SseClient) => void;
    },
  ) {
    this.#res = res;
    this.level = options.level;
    this.minLevel = options.minLevel;
    this.#maxBufferedBytes = options.maxBufferedBytes;
    this.#onGone = options.onGone;
    res.on("drain", () => this.#drained());
    // "close" fires when the browser goes away and when we end the response: forget the client either way.
    res.on("close", () => this.#gone());
    res.on("error", () => this.#gone());
  }

  /** True once the response is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** True while the socket buffer is over its high-water mark. */
  get congested(): boolean {
    return this.#congested;
  }

  /** Send a snapshot (coalesced with an unsent one while congested). */
  snapshot(json: string): void {
    const chunk = `event: snapshot\ndata: ${json}\n\n`;
    if (this.#congested) {
      if (this.#pendingSnapshot !== undefined) this.stats.coalescedSnapshots++;
      this.#pendingSnapshot = chunk;
      return;
    }
    this.#write(chunk);
  }

  /** Send a log entry (dropped and counted while congested). */
  log(chunk: string): void {
    if (this.#congested) {
      this.#droppedLogs++;
      this.stats.droppedLogs++;
      return;
    }
    this.#write(chunk);
  }

  /** Send any other event or an SSE comment (skipped while congested). */
  raw(chunk: string): void {
    if (!this.#congested) this.#write(chunk);
  }

  /** End the response (the browser's EventSource will reconnect unless the page is gone). */
  close(): void {
    if (this.#closed) return;
    this.#res.end();
    this.#gone();
  }

  #write(chunk: string): void {
    if (this.#closed) return;
    this.stats.events++;
    if (this.#res.write(chunk)) return;
    this.#congested = true;
    if (this.#res.writableLength > this.#maxBufferedBytes) {
      // Far behind (a stalled tab or a slow link): drop the client; EventSource reconnects later.
      this.#res.destroy();
      this.#gone();
    }
  }

  #drained(): void {
    if (this.#closed) return;
    this.#congested = false;
    if (this.#droppedLogs > 0) {
      const n = this.#droppedLogs;
      this.#droppedLogs = 0;
      this.#write(sseEvent("dropped", { count: n }));
    }
    const snap = this.#pendingSnapshot;
    this.#pendingSnapshot = undefined;
    if (snap !== undefined && !this.#congested) this.#write(snap);
    else if (snap !== undefined) this.#pendingSnapshot = snap;
  }

  #gone(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pendingSnapshot = undefined;
    this.#onGone(this);
  }
}
