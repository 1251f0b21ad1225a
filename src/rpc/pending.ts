/**
 * The two per-call indexes of RPC: the calls of one instance that await a reply, found by the
 * reply's `rmid` ({@link PendingIndex}), and the handlers running on it ({@link LiveSet}).
 *
 * Why not a `Map<mid, call>`: every call adds one entry and deletes it, so the Map rehashes into a
 * new table every few dozen calls, and V8 leaves each replaced table linked to its successor with
 * its entries in place. Once one of those tables reaches the old generation, every later table and
 * every call in it stays reachable through scavenges until the next full GC, and calls cost more
 * CPU for the life of the process (docs/benchmarks.md "Design notes" has the measurement).
 *
 * This index keeps calls in a fixed ring of slots chosen by the counter in the mid this instance
 * made (`<prefix><counter base 36>`, see `MessagePort.nextMid`). A slot is cleared when its call
 * settles, so the ring holds live calls only and is never replaced. A mid of another form, or one
 * whose slot is still taken by an older call, goes to an overflow Map, which is rarely used.
 */

/** An entry: anything with the mid it was sent with. */
export interface HasMid {
  readonly mid: string;
}

/** Ring size: 4096 slots (32 KiB), allocated on the first call. More calls in flight overflow to a Map. */
const SLOTS = 4096;
const MASK = SLOTS - 1;

/** The counter of `mid` if it is `<prefix><base-36 digits>`, else -1. Allocates nothing. */
function counterOf(mid: string, prefix: string): number {
  const start = prefix.length;
  const end = mid.length;
  if (end <= start || end - start > 10 || !mid.startsWith(prefix)) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = mid.charCodeAt(i);
    let d: number;
    if (c >= 48 && c <= 57) d = c - 48;
    else if (c >= 97 && c <= 122) d = c - 87;
    else return -1;
    n = n * 36 + d;
  }
  return n;
}

/** Pending calls by mid: a ring of slots for this instance's own mids, a Map for the rest. */
export class PendingIndex<T extends HasMid> {
  readonly #prefix: string;
  #slots: (T | undefined)[] | undefined;
  readonly #overflow = new Map<string, T>();
  #size = 0;

  /** `prefix` is what every mid this instance makes starts with. */
  constructor(prefix: string) {
    this.#prefix = prefix;
  }

  /** How many calls are pending. */
  get size(): number {
    return this.#size;
  }

  /** Add `entry` (its mid must not be pending already). */
  add(entry: T): void {
    const n = counterOf(entry.mid, this.#prefix);
    if (n >= 0) {
      this.#slots ??= new Array<T | undefined>(SLOTS).fill(undefined);
      const i = n & MASK;
      if (this.#slots[i] === undefined) {
        this.#slots[i] = entry;
        this.#size++;
        return;
      }
    }
    this.#overflow.set(entry.mid, entry);
    this.#size++;
  }

  /** The pending entry sent with `mid`, if any. */
  get(mid: string): T | undefined {
    const slots = this.#slots;
    if (slots !== undefined) {
      const n = counterOf(mid, this.#prefix);
      if (n >= 0) {
        const e = slots[n & MASK];
        if (e !== undefined && e.mid === mid) return e;
      }
    }
    return this.#overflow.size === 0 ? undefined : this.#overflow.get(mid);
  }

  /** Remove `entry`; false if it was not pending. */
  delete(entry: T): boolean {
    const slots = this.#slots;
    if (slots !== undefined) {
      const n = counterOf(entry.mid, this.#prefix);
      if (n >= 0) {
        const i = n & MASK;
        if (slots[i] === entry) {
          slots[i] = undefined;
          this.#size--;
          return true;
        }
      }
    }
    if (this.#overflow.size !== 0 && this.#overflow.get(entry.mid) === entry) {
      this.#overflow.delete(entry.mid);
      this.#size--;
      return true;
    }
    return false;
  }

  /** A snapshot of the pending entries (safe to settle them while iterating it). */
  values(): T[] {
    const out: T[] = [];
    if (this.#size === 0) return out;
    const slots = this.#slots;
    if (slots !== undefined) for (const e of slots) if (e !== undefined) out.push(e);
    for (const e of this.#overflow.values()) out.push(e);
    return out;
  }
}

/** An entry of a {@link LiveSet}: its position there, -1 when it is not in one. */
export interface HasSlot {
  slot: number;
}

/**
 * The handlers running on an instance (for cancels, deadlines and stop): an array of live entries
 * where each entry knows its index, so adding and removing are O(1) without a Map (whose rehashes
 * keep replaced tables and their entries reachable, see the module comment). Finding one by a
 * predicate is a scan: only cancels do that, and they are rare.
 */
export class LiveSet<T extends HasSlot> {
  readonly #items: T[] = [];

  /** How many entries are in the set. */
  get size(): number {
    return this.#items.length;
  }

  /** Add `entry` (no effect if it is in already). */
  add(entry: T): void {
    if (entry.slot >= 0) return;
    entry.slot = this.#items.length;
    this.#items.push(entry);
  }

  /** Remove `entry`; false if it was not in the set. */
  delete(entry: T): boolean {
    const i = entry.slot;
    const items = this.#items;
    if (i < 0 || items[i] !== entry) return false;
    const last = items.pop() as T;
    if (last !== entry) {
      items[i] = last;
      last.slot = i;
    }
    entry.slot = -1;
    return true;
  }

  /** The first entry for which `match` is true. */
  find(match: (entry: T) => boolean): T | undefined {
    for (const e of this.#items) if (match(e)) return e;
    return undefined;
  }

  /** A snapshot of the entries (safe to remove them while iterating it). */
  values(): T[] {
    return this.#items.slice();
  }
}
