/**
 * Token-bucket rate limit per client key (the client IP by default): each client has a bucket of
 * `burst` tokens refilled at `ratePerSec`; a request takes one token or is refused with the time until
 * the next token (the `Retry-After` of the 429). No timers: buckets refill lazily on use, and idle full
 * buckets are swept when the table grows past `maxClients`, so memory stays bounded under a flood of
 * distinct addresses.
 *
 * @module
 */

/** Options of the per-client rate limit. */
export interface RateLimitOptions {
  /** Sustained requests per second per client. */
  ratePerSec: number;
  /**
   * Bucket size: requests a client may make at once after being idle.
   * @default ratePerSec (one second's worth)
   */
  burst?: number;
  /**
   * Most clients tracked at once; past it, full (idle) buckets are dropped, then the oldest.
   * @default 100000
   */
  maxClients?: number;
}

/** Result of {@link TokenBucketLimiter.take}. */
export type RateDecision = { ok: true } | { ok: false; retryAfterMs: number };

interface Bucket {
  tokens: number;
  at: number;
}

/** The limiter. `now` is injectable for tests. */
export class TokenBucketLimiter {
  readonly #rate: number;
  readonly #burst: number;
  readonly #max: number;
  readonly #now: () => number;
  readonly #buckets = new Map<string, Bucket>();

  constructor(options: RateLimitOptions, now: () => number = () => performance.now()) {
    if (!(options.ratePerSec > 0) || !Number.isFinite(options.ratePerSec)) {
      throw new RangeError("rateLimit.ratePerSec must be a positive number");
    }
    this.#rate = options.ratePerSec / 1000;
    this.#burst = options.burst ?? options.ratePerSec;
    if (!(this.#burst >= 1)) throw new RangeError("rateLimit.burst must be at least 1");
    this.#max = options.maxClients ?? 100_000;
    this.#now = now;
  }

  /** Clients currently tracked. */
  get size(): number {
    return this.#buckets.size;
  }

  /** Take one token for `key`. */
  take(key: string): RateDecision {
    const now = this.#now();
    let b = this.#buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.#burst, b.tokens + (now - b.at) * this.#rate);
      b.at = now;
    } else {
      if (this.#buckets.size >= this.#max) this.#sweep(now);
      b = { tokens: this.#burst, at: now };
      this.#buckets.set(key, b);
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return { ok: true };
    }
    return { ok: false, retryAfterMs: Math.ceil((1 - b.tokens) / this.#rate) };
  }

  #sweep(now: number): void {
    for (const [k, b] of this.#buckets) {
      if (b.tokens + (now - b.at) * this.#rate >= this.#burst) this.#buckets.delete(k);
    }
    // Still full: drop the oldest insertions (Map keeps insertion order).
    const excess = this.#buckets.size - Math.floor(this.#max * 0.9);
    if (excess > 0) {
      let n = 0;
      for (const k of this.#buckets.keys()) {
        if (n++ >= excess) break;
        this.#buckets.delete(k);
      }
    }
  }
}
