/**
 * A consistent-hash ring with virtual nodes over instance ids (Karger et al. 1997; the ketama layout
 * that memcached clients use). Each member owns `virtualNodes` points on a 32-bit circle; a key goes
 * to the owner of the first point at or after the key's hash. When a member leaves, only the keys it
 * owned move (to the next points' owners); every other key stays where it was.
 *
 * Points depend only on the member ids, so every caller that sees the same instances maps a key to
 * the same instance.
 *
 * @module
 */

import { ErrorCode, ValidationError } from "../errors.js";
import { hash32 } from "./random.js";

/**
 * Points per member. 160 is ketama's choice (40 hashes × 4 points); docs/balancing.md gives the
 * spread it yields.
 */
export const DEFAULT_VIRTUAL_NODES = 160;

/** Points are packed as `hash × 2^21 + member index` in a float64 (exact up to 2^53). */
const INDEX_SPAN = 2 ** 21;

/** A consistent-hash ring over string ids. */
export class HashRing {
  readonly #virtualNodes: number;
  readonly #members = new Set<string>();
  #points = new Float64Array(0);
  #owners: string[] = [];
  #dirty = false;

  /** @param virtualNodes points per member (1-10000). @default 160 */
  constructor(virtualNodes: number = DEFAULT_VIRTUAL_NODES) {
    if (!Number.isInteger(virtualNodes) || virtualNodes < 1 || virtualNodes > 10_000) {
      throw new ValidationError(
        `virtualNodes must be an integer from 1 to 10000, got ${String(virtualNodes)}`,
        {
          code: ErrorCode.INVALID_OPTIONS,
        },
      );
    }
    this.#virtualNodes = virtualNodes;
  }

  /** Number of members. */
  get size(): number {
    return this.#members.size;
  }

  /** True when `id` is a member. */
  has(id: string): boolean {
    return this.#members.has(id);
  }

  /** The member ids. */
  members(): IterableIterator<string> {
    return this.#members.values();
  }

  /** Add a member (no effect if present). */
  add(id: string): void {
    if (this.#members.has(id)) return;
    if (this.#members.size + 1 >= INDEX_SPAN) {
      throw new ValidationError(`a hash ring holds at most ${INDEX_SPAN - 1} members`, {
        code: ErrorCode.INVALID_OPTIONS,
      });
    }
    this.#members.add(id);
    this.#dirty = true;
  }

  /** Remove a member (no effect if absent). */
  remove(id: string): void {
    if (this.#members.delete(id)) this.#dirty = true;
  }

  /** Make the members exactly `ids`. Returns true when that changed anything. */
  setMembers(ids: Iterable<string>): boolean {
    const next = new Set(ids);
    let changed = next.size !== this.#members.size;
    if (!changed) for (const id of next) if (!this.#members.has(id)) changed = true;
    if (!changed) return false;
    this.#members.clear();
    for (const id of next) this.add(id);
    this.#dirty = true;
    return true;
  }

  #rebuild(): void {
    // Member indices follow the sorted ids, so ties between equal hashes break the same way in
    // every process.
    const ids = [...this.#members].sort();
    const v = this.#virtualNodes;
    const points = new Float64Array(ids.length * v);
    let n = 0;
    for (let m = 0; m < ids.length; m++) {
      const id = ids[m]!;
      for (let i = 0; i < v; i++) points[n++] = hash32(`${id}#${i}`) * INDEX_SPAN + m;
    }
    points.sort();
    this.#points = points;
    this.#owners = ids;
    this.#dirty = false;
  }

  /**
   * The owner of `key`: the member of the first point at or after `hash32(key)`, walking clockwise
   * past members `accept(id, arg)` rejects. `undefined` when no member is accepted. (`arg` saves hot
   * callers a closure per lookup.)
   */
  lookup<A = undefined>(key: string, accept?: (id: string, arg: A) => boolean, arg?: A): string | undefined {
    if (this.#dirty) this.#rebuild();
    const points = this.#points;
    const len = points.length;
    if (len === 0) return undefined;
    const target = hash32(key) * INDEX_SPAN;
    // First point >= target (binary search), wrapping to 0.
    let lo = 0;
    let hi = len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (points[mid]! < target) lo = mid + 1;
      else hi = mid;
    }
    const owners = this.#owners;
    const first = owners[points[lo % len]! % INDEX_SPAN]!;
    if (!accept || accept(first, arg as A)) return first;
    const rejected = new Set<string>([first]);
    for (let step = 1; step < len && rejected.size < owners.length; step++) {
      const id = owners[points[(lo + step) % len]! % INDEX_SPAN]!;
      if (rejected.has(id)) continue;
      if (accept(id, arg as A)) return id;
      rejected.add(id);
    }
    return undefined;
  }
}
