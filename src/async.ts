/**
 * Two small waiting tools several layers share: a bounded wait for a promise, and a counter of work
 * in flight that `stop()` can wait on.
 *
 * @module
 */

/**
 * Wait for `p` at most `timeoutMs`; never rejects (a rejection counts as settled). Resolves `true` when
 * `p` settled in time, `false` when the time ran out. Leaves no timer behind.
 */
export async function settleWithin(p: Promise<unknown>, timeoutMs: number): Promise<boolean> {
  let t: NodeJS.Timeout | undefined;
  const settled = await Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => {
      t = setTimeout(() => resolve(false), timeoutMs);
    }),
  ]);
  clearTimeout(t);
  return settled;
}

/** Work in flight (calls, jobs, requests): counted by {@link begin}, waited for by {@link whenIdle}. */
export class InFlight {
  #count = 0;
  #waiters: Array<() => void> = [];

  /** Units of work in flight now. */
  get count(): number {
    return this.#count;
  }

  /** Count one unit; returns the function that ends it (calling it again has no effect). */
  begin(): () => void {
    this.#count++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      this.#count--;
      if (this.#count === 0) for (const w of this.#waiters.splice(0)) w();
    };
  }

  /** Wait until nothing is in flight, at most `timeoutMs`: `true` when idle, `false` when time ran out. */
  whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.#count === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const done = () => {
        clearTimeout(t);
        resolve(true);
      };
      const t = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w !== done);
        resolve(false);
      }, timeoutMs);
      this.#waiters.push(done);
    });
  }
}
