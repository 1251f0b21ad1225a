/**
 * Replay protection for signed messages: a signed message is accepted once, and only while its
 * timestamp (covered by the signature) is within a window of the receiver's clock. Message ids seen
 * inside the window are remembered in a bounded, insertion-ordered map swept from its oldest end, so
 * the check costs one map lookup and memory stays bounded.
 *
 * @module
 */

/** Options of {@link ReplayGuard}. */
export interface ReplayGuardOptions {
  /**
   * Largest accepted distance between a message's timestamp and this clock (both ways: clock skew
   * between hosts counts). Messages older than this are refused as stale.
   * @default 30000
   */
  windowMs?: number;
  /**
   * Most message ids remembered. Past it the oldest are forgotten early; the window then shrinks to
   * what the map holds, so size it above (messages per second × window seconds).
   * @default 200000
   */
  maxEntries?: number;
}

/** Verdict of {@link ReplayGuard.check}. */
export const ReplayVerdict = {
  OK: "ok",
  /** The timestamp is missing, unreadable, or outside the window. */
  STALE: "stale",
  /** This message id was already accepted inside the window. */
  REPLAYED: "replayed",
} as const;
/** Union of verdicts. */
export type ReplayVerdictValue = (typeof ReplayVerdict)[keyof typeof ReplayVerdict];

/** Remembers the ids of accepted signed messages for a window. */
export class ReplayGuard {
  readonly #windowMs: number;
  readonly #max: number;
  /** mid → time it may be forgotten (epoch ms); insertion order ≈ expiry order. */
  readonly #seen = new Map<string, number>();

  constructor(options: ReplayGuardOptions = {}) {
    this.#windowMs = options.windowMs ?? 30_000;
    this.#max = options.maxEntries ?? 200_000;
  }

  /** Ids remembered now. */
  get size(): number {
    return this.#seen.size;
  }

  /** Check one message and, when it passes, remember its id. */
  check(mid: string, ts: string | undefined, now = Date.now()): ReplayVerdictValue {
    const t = typeof ts === "string" ? Date.parse(ts) : Number.NaN;
    if (!Number.isFinite(t) || Math.abs(now - t) > this.#windowMs) return ReplayVerdict.STALE;
    this.#sweep(now);
    if (this.#seen.has(mid)) return ReplayVerdict.REPLAYED;
    // Forgettable once its timestamp has left the window: a replay after that is refused as stale.
    this.#seen.set(mid, t + this.#windowMs);
    if (this.#seen.size > this.#max) {
      const oldest = this.#seen.keys().next();
      if (!oldest.done) this.#seen.delete(oldest.value);
    }
    return ReplayVerdict.OK;
  }

  #sweep(now: number): void {
    // Entries are in arrival order; timestamps differ by skew, so stop at the first live one.
    for (const [mid, until] of this.#seen) {
      if (until > now) break;
      this.#seen.delete(mid);
    }
  }
}
