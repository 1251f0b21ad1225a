/**
 * Deadlines for Redis commands that fire even when the server has stopped answering.
 *
 * node-redis' per-command `timeout` only guards a command while it waits to be written: once it is on
 * the wire, a frozen or black-holed server keeps it pending forever. And a timer per command costs
 * about a third of the throughput. This tracker keeps every pending deadline in one set swept by a
 * single timer armed for the earliest one, so a command costs one small record, and a wedged server
 * still turns into a typed {@link TimeoutError} on time.
 *
 * @module
 */
import { TimeoutError } from "../errors.js";

interface Entry {
  at: number;
  what: string;
  ms: number;
  reject: (err: Error) => void;
}

/** One set of pending deadlines with one timer. */
export class DeadlineTracker {
  readonly #entries = new Set<Entry>();
  #timer: NodeJS.Timeout | undefined;
  #armedAt = Number.POSITIVE_INFINITY;
  /** Deadlines that fired since creation. */
  expired = 0;

  /** Pending deadlines now. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Settle like `p`, or reject with a {@link TimeoutError} after `ms` if `p` has not settled.
   * A late settlement of `p` is swallowed (never an unhandled rejection).
   */
  track<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const entry: Entry = { at: Date.now() + ms, what, ms, reject };
      this.#entries.add(entry);
      this.#arm(entry.at);
      p.then(
        (v) => {
          if (this.#entries.delete(entry)) resolve(v);
        },
        (e: unknown) => {
          if (this.#entries.delete(entry)) reject(e);
        },
      );
    });
  }

  /** Reject every pending deadline now with `err` (used on close). */
  rejectAll(err: Error): void {
    const all = [...this.#entries];
    this.#entries.clear();
    this.#disarm();
    for (const e of all) e.reject(err);
  }

  #arm(at: number): void {
    if (at >= this.#armedAt) return;
    this.#disarm();
    this.#armedAt = at;
    this.#timer = setTimeout(() => this.#sweep(), Math.max(0, at - Date.now()));
    this.#timer.unref();
  }

  #disarm(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
  }

  #sweep(): void {
    this.#timer = undefined;
    this.#armedAt = Number.POSITIVE_INFINITY;
    const now = Date.now();
    let next = Number.POSITIVE_INFINITY;
    for (const e of this.#entries) {
      if (e.at <= now) {
        this.#entries.delete(e);
        this.expired++;
        e.reject(
          new TimeoutError(`Redis ${e.what} did not answer within ${e.ms} ms`, { data: { command: e.what } }),
        );
      } else if (e.at < next) next = e.at;
    }
    if (next !== Number.POSITIVE_INFINITY) this.#arm(next);
  }
}
