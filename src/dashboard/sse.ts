/**
 * Server-Sent Events: one client with backpressure ({@link SseClient}) and the set of connected
 * clients the dashboard fans out to ({@link SseClients}).
 *
 * One client with backpressure. Writes go through while the response holds less
 * than `maxBufferedBytes` unsent; past that the client is congested until the socket drains: the
 * newest snapshot replaces any unsent one and log entries are dropped (counted; the page is told how
 * many once it drains). A client congested for longer than `stalledMs` (a frozen tab, a dead link)
 * is disconnected at its next send, so nothing is buffered forever. (Node's own `write() === false`
 * threshold, 16 KiB, is too low for this: a burst of log entries would congest every client.)
 *
 * @module
 */

import type { ServerResponse } from "node:http";
import { type LogEntry, LogLevel, type LogLevelName } from "../log/index.js";

/** Serialise one SSE event. `data` is JSON, which holds no raw newline, so it is one `data:` line. */
export function sseEvent(event: string, data: unknown): string {
  return `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;
}

/** A connected SSE client. */
export class SseClient {
  readonly #res: ServerResponse;
  readonly #maxBufferedBytes: number;
  readonly #stalledMs: number;
  readonly #onGone: (c: SseClient) => void;
  /** Lowest log level this client asked for. */
  readonly minLevel: number;
  /** Level name this client asked for. */
  readonly level: LogLevelName;
  /** Since when the client is congested (epoch ms), 0 when it is not. */
  #congestedSince = 0;
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
      stalledMs: number;
      onGone: (c: SseClient) => void;
    },
  ) {
    this.#res = res;
    this.level = options.level;
    this.minLevel = options.minLevel;
    this.#maxBufferedBytes = options.maxBufferedBytes;
    this.#stalledMs = options.stalledMs;
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

  /** True while more than `maxBufferedBytes` wait to be sent. */
  get congested(): boolean {
    return this.#congestedSince !== 0;
  }

  /** Send a snapshot (coalesced with an unsent one while congested). */
  snapshot(json: string): void {
    const chunk = `event: snapshot\ndata: ${json}\n\n`;
    if (this.#stillCongested()) {
      if (this.#pendingSnapshot !== undefined) this.stats.coalescedSnapshots++;
      this.#pendingSnapshot = chunk;
      return;
    }
    this.#write(chunk);
  }

  /** Send a log entry (dropped and counted while congested). */
  log(chunk: string): void {
    if (this.#stillCongested()) {
      this.#droppedLogs++;
      this.stats.droppedLogs++;
      return;
    }
    this.#write(chunk);
  }

  /** Send any other event or an SSE comment (skipped while congested). */
  raw(chunk: string): void {
    if (!this.#stillCongested()) this.#write(chunk);
  }

  /** End the response (the browser's EventSource will reconnect unless the page is gone). */
  close(): void {
    if (this.#closed) return;
    this.#res.end();
    this.#gone();
  }

  /** Drop the connection at once, without flushing what is unsent (a forced stop). */
  destroy(): void {
    if (this.#closed) return;
    this.#res.destroy();
    this.#gone();
  }

  /** Congested now? Disconnects a client that has been congested for longer than `stalledMs`. */
  #stillCongested(): boolean {
    if (this.#congestedSince === 0) return false;
    if (Date.now() - this.#congestedSince > this.#stalledMs) {
      this.#res.destroy();
      this.#gone();
    }
    return true;
  }

  #write(chunk: string): void {
    if (this.#closed) return;
    this.stats.events++;
    this.#res.write(chunk);
    // Over the limit: hold back until "drain" (emitted once Node's buffer is empty again, which it will
    // be since write() returned false far below this limit).
    if (this.#res.writableLength > this.#maxBufferedBytes) this.#congestedSince = Date.now();
  }

  #drained(): void {
    if (this.#closed || this.#congestedSince === 0) return;
    this.#congestedSince = 0;
    if (this.#droppedLogs > 0) {
      const n = this.#droppedLogs;
      this.#droppedLogs = 0;
      this.#write(sseEvent("dropped", { count: n }));
    }
    const snap = this.#pendingSnapshot;
    this.#pendingSnapshot = undefined;
    if (snap !== undefined) this.#write(snap);
  }

  #gone(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#pendingSnapshot = undefined;
    this.#onGone(this);
  }
}

/** Options of {@link SseClients}. */
export interface SseClientsOptions {
  /** Unsent bytes before a client counts as congested. */
  maxBufferedBytes: number;
  /** A client congested for longer than this is disconnected, in ms. */
  stalledMs: number;
  /** SSE comment period, so proxies keep idle streams open, in ms. */
  heartbeatMs: number;
  /** The first client joined (the active period begins). */
  onFirst: () => void;
  /** The last client left (the active period ends). */
  onLast: () => void;
}

/** The connected clients: fan-out of snapshots and log entries, the heartbeat, first/last notices. */
export class SseClients {
  readonly #o: SseClientsOptions;
  readonly #clients = new Set<SseClient>();
  #heartbeat: NodeJS.Timeout | undefined;
  #served = 0;
  /** Log entries dropped for clients that are gone. */
  #droppedByGone = 0;

  constructor(options: SseClientsOptions) {
    this.#o = options;
  }

  /** Connected clients. */
  get size(): number {
    return this.#clients.size;
  }

  /** Clients seen in total. */
  get served(): number {
    return this.#served;
  }

  /** Log entries not sent to congested clients, in total (gone ones included). */
  get droppedLogs(): number {
    let n = this.#droppedByGone;
    for (const c of this.#clients) n += c.stats.droppedLogs;
    return n;
  }

  /**
   * Add a client on `res` (headers already written). `greet` sends it its first events before the
   * first client's `onFirst` runs.
   */
  join(res: ServerResponse, level: LogLevelName, greet: (c: SseClient) => void): SseClient {
    const client = new SseClient(res, {
      level,
      minLevel: LogLevel[level],
      maxBufferedBytes: this.#o.maxBufferedBytes,
      stalledMs: this.#o.stalledMs,
      onGone: (c) => this.#leave(c),
    });
    this.#clients.add(client);
    this.#served++;
    greet(client);
    if (this.#clients.size === 1 && this.#clients.has(client)) {
      this.#heartbeat ??= setInterval(() => {
        for (const c of this.#clients) c.raw(": ping\n\n");
      }, this.#o.heartbeatMs);
      this.#o.onFirst();
    }
    return client;
  }

  /** Send a snapshot (JSON) to every client. */
  snapshot(json: string): void {
    for (const c of this.#clients) c.snapshot(json);
  }

  /** Send a batch of log entries (one `logs` event), each client getting those at or above its level. */
  logs(entries: readonly LogEntry[]): void {
    for (const c of this.#clients) {
      const mine = entries.filter((e) => LogLevel[e.level] >= c.minLevel);
      if (mine.length > 0) c.log(sseEvent("logs", mine));
    }
  }

  /** Send one log entry (a `log` event) to the clients whose level it reaches. */
  log(entry: LogEntry): void {
    const chunk = sseEvent("log", entry);
    const lv = LogLevel[entry.level];
    for (const c of this.#clients) if (lv >= c.minLevel) c.log(chunk);
  }

  /** End every stream (`force`: drop the connections without flushing). */
  closeAll(force: boolean): void {
    for (const c of [...this.#clients]) {
      if (force) c.destroy();
      else c.close();
    }
  }

  #leave(c: SseClient): void {
    if (!this.#clients.delete(c)) return;
    this.#droppedByGone += c.stats.droppedLogs;
    if (this.#clients.size > 0) return;
    clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    this.#o.onLast();
  }
}
