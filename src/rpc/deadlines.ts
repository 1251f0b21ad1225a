/**
 * One timer for many deadlines: armed for the earliest known deadline; when it fires, the owner
 * sweeps its entries, expires the due ones and returns the next earliest. No timer per call (a
 * timer and a closure per call cost throughput and GC at high concurrency).
 *
 * @module
 */

/** A single re-armable timer driven by a sweep function. */
export class DeadlineTimer {
  readonly #sweep: (now: number) => number;
  #timer: NodeJS.Timeout | undefined;
  #at = Number.POSITIVE_INFINITY;
  readonly #fire = () => {
    this.#timer = undefined;
    this.#at = Number.POSITIVE_INFINITY;
    const next = this.#sweep(Date.now());
    if (next !== Number.POSITIVE_INFINITY) this.arm(next);
  };

  /** `sweep(now)` expires what is due and returns the earliest remaining deadline (or +Infinity). */
  constructor(sweep: (now: number) => number) {
    this.#sweep = sweep;
  }

  /** Make sure the timer fires no later than `deadline` (epoch ms). */
  arm(deadline: number): void {
    if (deadline >= this.#at) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#at = deadline;
    // +1: fire when the deadline has passed, not a hair before it.
    this.#timer = setTimeout(this.#fire, Math.max(0, deadline - Date.now() + 1));
    // Pending calls do not keep a process alive on their own (its sockets do).
    this.#timer.unref();
  }

  /** Cancel the timer. */
  clear(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#at = Number.POSITIVE_INFINITY;
  }
}
