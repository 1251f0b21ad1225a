/**
 * Request-target normalisation, done once before routing so that what is matched is exactly what is
 * forwarded (no second decoding anywhere downstream).
 *
 * Rules: the target must be origin-form (`/…`); each segment is percent-decoded exactly once; a
 * segment that decodes to `..` (traversal), that contains an encoded `/` or `\` (`%2F`, `%5C`: it would
 * change the segment structure for an upstream that decodes again), a NUL byte (raw or `%00`), or
 * broken percent-encoding is rejected; `.` and empty segments (`//`) are dropped. The upstream path is
 * rebuilt from the decoded segments, re-encoded, with the trailing slash and the raw query kept.
 *
 * @module
 */

/** Why a path was rejected (the gateway answers 400 with this code). */
export const PathProblem = {
  NOT_ORIGIN_FORM: "not-origin-form",
  TRAVERSAL: "traversal",
  ENCODED_SLASH: "encoded-slash",
  NUL: "nul",
  BAD_ENCODING: "bad-encoding",
  TOO_LONG: "too-long",
} as const;
/** Union of {@link PathProblem} values. */
export type PathProblemValue = (typeof PathProblem)[keyof typeof PathProblem];

/** A normalised request target. */
export interface NormalizedPath {
  /** Decoded segments, for routing (no empty, `.` or `..` segments). */
  segments: string[];
  /** The path to send upstream: re-encoded segments, trailing slash kept, no query. */
  path: string;
  /** Raw query string without the `?` (empty when absent). */
  query: string;
}

/** Longest request target accepted (the route parser's own limit is 2048). */
export const MAX_TARGET_LENGTH = 8192;

const ENCODED_SEPARATOR_RE = /%(2f|5c)/i;

/** Normalise a raw request target; returns the problem instead of throwing. */
export function normalizePath(target: string): NormalizedPath | { problem: PathProblemValue } {
  if (target.length > MAX_TARGET_LENGTH) return { problem: PathProblem.TOO_LONG };
  if (!target.startsWith("/")) return { problem: PathProblem.NOT_ORIGIN_FORM };
  const q = target.indexOf("?");
  const rawPath = q < 0 ? target : target.slice(0, q);
  const query = q < 0 ? "" : target.slice(q + 1);
  if (rawPath.includes("\0") || query.includes("\0")) return { problem: PathProblem.NUL };
  const segments: string[] = [];
  for (const raw of rawPath.split("/")) {
    if (raw.length === 0) continue;
    if (ENCODED_SEPARATOR_RE.test(raw)) return { problem: PathProblem.ENCODED_SLASH };
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return { problem: PathProblem.BAD_ENCODING };
    }
    if (seg.includes("\0")) return { problem: PathProblem.NUL };
    if (seg === "..") return { problem: PathProblem.TRAVERSAL };
    if (seg === ".") continue;
    // A raw backslash is a separator to some upstreams (Windows, some frameworks): treat it as one.
    if (seg.includes("\\")) return { problem: PathProblem.ENCODED_SLASH };
    segments.push(seg);
  }
  const trailing = rawPath.length > 1 && rawPath.endsWith("/") && segments.length > 0;
  const path = `/${segments.map(encodeSegment).join("/")}${trailing ? "/" : ""}`;
  return { segments, path, query };
}

/** Percent-encode one decoded segment for the upstream request line (RFC 3986 `pchar`). */
export function encodeSegment(seg: string): string {
  // encodeURIComponent leaves A-Z a-z 0-9 - _ . ! ~ * ' ( ) alone; `pchar` also allows these unescaped.
  return encodeURIComponent(seg).replace(/%(3A|40|24|26|2B|2C|3B|3D)/g, (m) => decodeURIComponent(m));
}
