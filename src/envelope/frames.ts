/**
 * The hot-path wire codec: UMF short form, checked without building the long form, signed when a
 * secret is set, and coalesced frames (what one `PUBLISH` carries).
 *
 * A **frame** (format {@link FRAME_FORMAT}) is a JSON array of short-form UMF messages sent in one
 * `PUBLISH`. It travels only to instances that list the format in their `nodes` entry
 * (`rm.frames`); a one-message batch is sent as the plain message, so Hydra peers and older
 * redmesh instances only ever see single UMF objects.
 *
 * A **compact frame** (format {@link COMPACT_FRAME_FORMAT}) is the same array led by a header
 * `{"rm":2,"frm":"<sender route>"}`. Its messages may leave out `frm` (the header's applies) and
 * `to` (the receiving instance's own route applies): a reply then carries only its ids, type and
 * body, which halves what Redis relays and what the receiver parses. It is sent even for a single
 * message, and only to instances that list the format.
 *
 * @module
 */

import { safeJsonParse } from "../json.js";
import { type ReplayGuard, ReplayVerdict } from "./replay.js";
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  overLimit,
  serialize,
  tooLarge,
  type UmfShort,
  verifySignature,
} from "./umf.js";

/** Name of the frame format (a JSON array of short-form UMF messages) advertised in `rm.frames`. */
export const FRAME_FORMAT = "umf-array/1";

/** Name of the compact frame format (header + messages without routes) advertised in `rm.frames`. */
export const COMPACT_FRAME_FORMAT = "umf-array/2";

/** How a message may travel to one receiver: alone, in a frame, or in a compact frame. */
export const Framing = {
  PLAIN: 0,
  FRAME: 1,
  COMPACT: 2,
} as const;
/** Union of framings. */
export type FramingValue = (typeof Framing)[keyof typeof Framing];

/** Why an incoming payload was dropped. */
export const DropReason = {
  TOO_LARGE: "tooLarge",
  MALFORMED: "malformed",
  BAD_SIGNATURE: "badSignature",
  REPLAYED: "replayed",
} as const;
/** Union of drop reasons. */
export type DropReasonValue = (typeof DropReason)[keyof typeof DropReason];

/** Options of a {@link WireCodec}. */
export interface WireCodecOptions {
  /** Largest message, in bytes. @default 1048576 */
  maxBytes?: number;
  /** HMAC-SHA256 secret: messages are signed (and carry their time under the signature). */
  secret?: string | Buffer | undefined;
}

/**
 * One sender's encoding settings: the size limit and the signing secret. Every outgoing envelope of
 * an instance (messages, RPC requests, replies, cancels) is encoded through its codec.
 */
export class WireCodec {
  /** Largest message, in bytes. */
  readonly maxBytes: number;
  readonly #secret: string | Buffer | undefined;

  constructor(options: WireCodecOptions = {}) {
    this.maxBytes = options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.#secret = options.secret;
  }

  /** True when messages are signed (they then go through {@link serialize}, never a hand-written text). */
  get signing(): boolean {
    return this.#secret !== undefined;
  }

  /**
   * The wire text of a short-form message: signed when signing (with `ts` set first: receivers
   * refuse stale signed messages and replays), size-checked. Throws `MessageError`.
   */
  serialize(msg: UmfShort): string {
    if (this.#secret !== undefined && msg.ts === undefined) msg.ts = new Date().toISOString();
    return serialize(msg, this.maxBytes, this.#secret);
  }

  /** Throw `MessageError` `ERR_MESSAGE_TOO_LARGE` when a hand-built text is over the limit. */
  checkSize(text: string): string {
    if (overLimit(text, this.maxBytes)) throw tooLarge(text, this.maxBytes);
    return text;
  }
}

/** `{"rm":2,"frm":"<route>"}`: the header of every compact frame a sender with this route sends. */
export function compactFrameHeader(route: string): string {
  return `{"rm":2,"frm":${JSON.stringify(route)}}`;
}

/**
 * The text of one `PUBLISH` carrying `parts` (each a message's JSON). A compact frame always travels
 * behind its header, even with one message (its messages lack their routes); otherwise one message
 * goes alone and several as a JSON array.
 */
export function frameText(parts: readonly string[], framing: FramingValue, header: string): string {
  const n = parts.length;
  if (framing === Framing.COMPACT) return `[${header},${n === 1 ? parts[0] : parts.join(",")}]`;
  return n === 1 ? (parts[0] as string) : `[${parts.join(",")}]`;
}

const isStr = (v: unknown): boolean => v === undefined || typeof v === "string";
const isNum = (v: unknown): boolean => v === undefined || (typeof v === "number" && Number.isFinite(v));

/**
 * Check that a parsed value is a usable short-form message (routes and ids are strings, numbers
 * are finite). Long-form fields are accepted too (Hydra accepts both) and mapped to short names.
 */
export function asShort(v: unknown): UmfShort | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const o = v as Record<string, unknown>;
  if (o.frm === undefined && typeof o.from === "string") o.frm = o.from;
  if (o.bdy === undefined && o.body !== undefined) o.bdy = o.body;
  if (o.typ === undefined && typeof o.type === "string") o.typ = o.type;
  if (typeof o.to !== "string" || o.to.length === 0) return undefined;
  if (typeof o.frm !== "string" || o.frm.length === 0) return undefined;
  if (typeof o.mid !== "string" || o.mid.length === 0) return undefined;
  if (!isStr(o.rmid) || !isStr(o.typ) || !isStr(o.tp) || !isStr(o.cid) || !isStr(o.sig) || !isStr(o.via))
    return undefined;
  if (!isNum(o.dl) || !isNum(o.tmo)) return undefined;
  if (o.hdr !== undefined && (typeof o.hdr !== "object" || o.hdr === null || Array.isArray(o.hdr)))
    return undefined;
  return o as unknown as UmfShort;
}

/** Decoding settings of a receiver. */
export interface ReceiveOptions {
  maxBytes: number;
  secret?: string | Buffer | undefined;
  requireSignature: boolean;
  /** Refuses stale or already seen signed messages (when signatures are verified). */
  replay?: ReplayGuard | undefined;
  /** The receiver's own route (`<iid>@<svc>:/`): the `to` of compact-frame messages without one. */
  self?: string;
  /** Told the sender route of each compact frame (that sender reads compact frames too). */
  onCompact?: ((frm: string) => void) | undefined;
}

/**
 * Decode one payload (a plain message or a frame) and hand each valid message to `deliver`; report
 * every dropped one to `drop`. Never throws.
 */
export function receive(
  text: string,
  o: ReceiveOptions,
  deliver: (m: UmfShort) => void,
  drop: (reason: DropReasonValue) => void,
): void {
  // Size first: a payload over the limit is never parsed.
  if (overLimit(text, o.maxBytes)) {
    drop(DropReason.TOO_LARGE);
    return;
  }
  let parsed: unknown;
  try {
    parsed = safeJsonParse(text);
  } catch {
    drop(DropReason.MALFORMED);
    return;
  }
  if (!Array.isArray(parsed)) {
    one(parsed, o, deliver, drop);
    return;
  }
  const n = parsed.length;
  const head = n > 0 ? compactHeader(parsed[0]) : undefined;
  if (head === undefined) {
    for (let i = 0; i < n; i++) one(parsed[i], o, deliver, drop);
    return;
  }
  o.onCompact?.(head);
  const self = o.self ?? "";
  for (let i = 1; i < n; i++) {
    const item = parsed[i] as Record<string, unknown> | null;
    if (typeof item === "object" && item !== null && !Array.isArray(item)) {
      if (item.frm === undefined) item.frm = head;
      if (item.to === undefined) item.to = self;
    }
    one(item, o, deliver, drop);
  }
}

/** The sender route of a compact-frame header `{"rm":2,"frm":"…"}`, or `undefined`. */
function compactHeader(v: unknown): string | undefined {
  if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
  const h = v as { rm?: unknown; frm?: unknown };
  return h.rm === 2 && typeof h.frm === "string" && h.frm.length > 0 ? h.frm : undefined;
}

function one(
  item: unknown,
  o: ReceiveOptions,
  deliver: (m: UmfShort) => void,
  drop: (reason: DropReasonValue) => void,
): void {
  const m = asShort(item);
  if (!m) {
    drop(DropReason.MALFORMED);
    return;
  }
  if (o.secret !== undefined && (o.requireSignature || m.sig !== undefined)) {
    let ok = false;
    try {
      ok = verifySignature(m, o.secret);
    } catch {
      ok = false;
    }
    if (!ok) {
      drop(DropReason.BAD_SIGNATURE);
      return;
    }
    if (o.replay && o.replay.check(m.mid, m.ts) !== ReplayVerdict.OK) {
      drop(DropReason.REPLAYED);
      return;
    }
  } else if (o.requireSignature) {
    drop(DropReason.BAD_SIGNATURE);
    return;
  }
  deliver(m);
}
