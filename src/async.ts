/**
 * Two small waiting tools several layers share: a bounded wait for a promise, and a counter of work
 * in flight that `stop()` can wait on.
 *
 * @module
 */

/**
 * Wait for `p` at most `timeoutMs`, or until `signal` aborts (a forced stop); never rejects (a
 * rejection counts as settled). Resolves `true` when `p` settled in time, `false` when the time ran
 * out or the signal fired. Leaves no timer or listener behind.
 */
export async function settleWithin(
  p: Promise<unknown>,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<boolean> {
  if (signal?.aborted) return false;
  let t: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const settled = await Promise.race([
    p.then(
      () => true,
      () => true,
    ),
    new Promise<false>((resolve) => {
      t = setTimeout(() => resolve(false), timeoutMs);
      if (signal) {
        onAbort = () => resolve(false);
        signal.addEventListener("abort", onAbort, { once: true });
      }
    }),
  ]);
  clearTimeout(t);
  if (onAbort) signal?.removeEventListener("abort", onAbort);
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

  /**
   * Wait until nothing is in flight, at most `timeoutMs` (and not past `signal`): `true` when idle,
   * `false` when the time ran out or the signal fired.
   */
  whenIdle(timeoutMs: number, signal?: AbortSignal): Promise<boolean> {
    if (this.#count === 0) return Promise.resolve(true);
    if (signal?.aborted) return Promise.resolve(false);
    return new Promise<boolean>((resolve) => {
      const finish = (idle: boolean) => {
        clearTimeout(t);
        signal?.removeEventListener("abort", onAbort);
        this.#waiters = this.#waiters.filter((w) => w !== done);
        resolve(idle);
      };
      const done = () => finish(true);
      const onAbort = () => finish(false);
      const t = setTimeout(() => finish(false), timeoutMs);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiters.push(done);
    });
  }
}
