/**
 * Small deterministic helpers: a seeded PRNG for reproducible tests and benchmarks, and a 32-bit
 * string hash for the consistent-hash ring.
 *
 * @module
 */

import type { RandomSource } from "./types.js";

/**
 * A seeded pseudo-random source (mulberry32: 32-bit state, passes the usual statistical batteries for
 * this use, and is tiny). Not for cryptography.
 */
export function seededRandom(seed: number): RandomSource {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * 32-bit hash of a string: FNV-1a over UTF-16 code units followed by murmur3's `fmix32` finaliser.
 * FNV-1a alone clusters similar strings (ids that differ in one suffix, as virtual nodes do); the
 * finaliser spreads them over the whole ring.
 */
export function hash32(value: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < value.length; i++) {
    h ^= value.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
