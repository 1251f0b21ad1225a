/**
 * UMF (Universal Messaging Format) envelopes, as Hydra sends them (DESIGN.md §3).
 *
 * In memory a message is in the long form ({@link UmfMessage}); on the wire it is the short form
 * (`to, frm, mid, rmid, ts, ver, typ, via, fwd, hdr, tmo, sig, aut, bdy`) plus the few fields redmesh
 * adds, which Hydra ignores (`dl` deadline, `tp` W3C traceparent, `cid` correlation id).
 *
 * Decoding is defensive: the size limit is checked before parsing, parsing never pollutes prototypes
 * (`__proto__` and object-valued `constructor` keys are removed), and every failure is a typed
 * {@link MessageError}, never anything else.
 *
 * @module
 */

import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { ErrorCode, MessageError, SerializationError, ValidationError } from "../errors.js";
import { safeJsonParse } from "../json.js";

export { safeJsonParse } from "../json.js";

/** The UMF version Hydra 1.9 stamps on its messages; redmesh uses the same. */
export const UMF_VERSION = "UMF/1.4.6";

/** Default maximum encoded size of one message: 1 MiB (DESIGN.md §3). */
export const DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024;

/** A UMF message in the long form. `body` is any JSON value. */
export interface UmfMessage<B = unknown> {
  /** Destination route, e.g. `inventory:/reserve` or `3f2a…@inventory:/`. */
  to: string;
  /** Sender route, e.g. `orders:/` or `<iid>@orders:/`. */
  from: string;
  /** Message id (UUIDv4). */
  mid: string;
  /** Id of the message this one replies to. */
  rmid?: string;
  /** ISO-8601 creation time. */
  timestamp: string;
  /** Format version, `UMF/1.4.6`. */
  version: string;
  /** Message type (free-form in Hydra; redmesh uses it for RPC kinds). */
  type?: string;
  /** Route of an intermediary (gateway) the reply should travel through. */
  via?: string;
  /** Forwarding route. */
  forward?: string;
  /** Free-form headers. */
  headers?: Record<string, unknown>;
  /** Timeout in milliseconds (Hydra's `tmo`). */
  timeout?: number;
  /** HMAC signature (hex) of the short form without `sig`. */
  signature?: string;
  /** Authorization token. */
  authorization?: string;
  /** Payload. */
  body: B;
  /** redmesh: absolute deadline, epoch milliseconds. */
  deadline?: number;
  /** redmesh: W3C `traceparent` header value. */
  traceparent?: string;
  /** redmesh: correlation id that flows through calls, jobs and logs. */
  correlationId?: string;
}

/** The short (wire) form of a UMF message. */
export interface UmfShort {
  to: string;
  frm: string;
  mid: string;
  rmid?: string;
  ts: string;
  ver: string;
  typ?: string;
  via?: string;
  fwd?: string;
  hdr?: Record<string, unknown>;
  tmo?: number;
  sig?: string;
  aut?: string;
  bdy: unknown;
  dl?: number;
  tp?: string;
  cid?: string;
}

/** Long-name → short-name map (Hydra's `toShort`), plus redmesh's additions. */
const LONG_TO_SHORT = {
  to: "to",
  from: "frm",
  mid: "mid",
  rmid: "rmid",
  timestamp: "ts",
  version: "ver",
  type: "typ",
  via: "via",
  forward: "fwd",
  headers: "hdr",
  timeout: "tmo",
  signature: "sig",
  authorization: "aut",
  body: "bdy",
  deadline: "dl",
  traceparent: "tp",
  correlationId: "cid",
} as const satisfies Record<keyof UmfMessage, keyof UmfShort>;

type LongKey = keyof typeof LONG_TO_SHORT;
const LONG_KEYS = Object.keys(LONG_TO_SHORT) as LongKey[];

/** Fields to create a message from; everything but `to`, `from` and `body` has a default. */
export type UmfInit<B = unknown> = Omit<UmfMessage<B>, "mid" | "timestamp" | "version"> &
  Partial<Pick<UmfMessage<B>, "mid" | "timestamp" | "version">>;

/** Create a message with a fresh `mid`, the current timestamp and the UMF version. */
export function createMessage<B>(init: UmfInit<B>): UmfMessage<B> {
  if (typeof init.to !== "string" || init.to.length === 0) {
    throw new ValidationError("a message needs a non-empty `to` route", { code: ErrorCode.INVALID_MESSAGE });
  }
  if (typeof init.from !== "string" || init.from.length === 0) {
    throw new ValidationError("a message needs a non-empty `from` route", {
      code: ErrorCode.INVALID_MESSAGE,
    });
  }
  return {
    ...init,
    mid: init.mid ?? randomUUID(),
    timestamp: init.timestamp ?? new Date().toISOString(),
    version: init.version ?? UMF_VERSION,
  };
}

/** Extras of a plain message: its UMF `typ` and headers. */
export interface MessageExtras {
  /** UMF `typ`. */
  type?: string;
  /** UMF `hdr`. */
  headers?: Record<string, unknown>;
}

/** A plain message (what `send` and `broadcast` publish), short form, stamped now. */
export function shortMessage(
  to: string,
  frm: string,
  mid: string,
  body: unknown,
  extras: MessageExtras = {},
): UmfShort {
  const msg: UmfShort = { to, frm, mid, ts: new Date().toISOString(), ver: UMF_VERSION, bdy: body };
  if (extras.type !== undefined) msg.typ = extras.type;
  if (extras.headers !== undefined) msg.hdr = extras.headers;
  return msg;
}

/** Convert to the short (wire) form. Absent fields stay absent. */
export function toShort(msg: UmfMessage): UmfShort {
  const out: Record<string, unknown> = {};
  for (const k of LONG_KEYS) {
    const v = msg[k];
    if (v !== undefined) out[LONG_TO_SHORT[k]] = v;
  }
  return out as unknown as UmfShort;
}

/**
 * Convert a parsed object in either form (short or long, as Hydra accepts both) to the long form,
 * checking field types. Throws {@link MessageError} `ERR_INVALID_MESSAGE`.
 */
export function fromObject(obj: unknown): UmfMessage {
  if (typeof obj !== "object" || obj === null || Array.isArray(obj)) {
    throw invalid("a message must be a JSON object");
  }
  const o = obj as Record<string, unknown>;
  const pick = (k: LongKey): unknown => {
    const short = LONG_TO_SHORT[k];
    return Object.hasOwn(o, short) ? o[short] : Object.hasOwn(o, k) ? o[k] : undefined;
  };
  const to = pick("to");
  const from = pick("from");
  if (typeof to !== "string" || to.length === 0) throw invalid("`to` must be a non-empty string");
  if (typeof from !== "string" || from.length === 0) throw invalid("`frm` must be a non-empty string");
  const mid = pick("mid");
  if (typeof mid !== "string" || mid.length === 0) throw invalid("`mid` must be a non-empty string");
  const msg: UmfMessage = {
    to,
    from,
    mid,
    timestamp: optString(pick("timestamp"), "ts") ?? new Date().toISOString(),
    version: optString(pick("version"), "ver") ?? UMF_VERSION,
    body: pick("body") ?? null,
  };
  const rmid = optString(pick("rmid"), "rmid");
  if (rmid !== undefined) msg.rmid = rmid;
  const type = optString(pick("type"), "typ");
  if (type !== undefined) msg.type = type;
  const via = optString(pick("via"), "via");
  if (via !== undefined) msg.via = via;
  const fwd = optString(pick("forward"), "fwd");
  if (fwd !== undefined) msg.forward = fwd;
  const sig = optString(pick("signature"), "sig");
  if (sig !== undefined) msg.signature = sig;
  const aut = optString(pick("authorization"), "aut");
  if (aut !== undefined) msg.authorization = aut;
  const tp = optString(pick("traceparent"), "tp");
  if (tp !== undefined) msg.traceparent = tp;
  const cid = optString(pick("correlationId"), "cid");
  if (cid !== undefined) msg.correlationId = cid;
  const hdr = pick("headers");
  if (hdr !== undefined && hdr !== null) {
    if (typeof hdr !== "object" || Array.isArray(hdr)) throw invalid("`hdr` must be an object");
    msg.headers = hdr as Record<string, unknown>;
  }
  const tmo = optNumber(pick("timeout"), "tmo");
  if (tmo !== undefined) msg.timeout = tmo;
  const dl = optNumber(pick("deadline"), "dl");
  if (dl !== undefined) msg.deadline = dl;
  return msg;
}

function optString(v: unknown, field: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "string") throw invalid(`\`${field}\` must be a string`);
  return v;
}

function optNumber(v: unknown, field: string): number | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) throw invalid(`\`${field}\` must be a finite number`);
  return v;
}

function invalid(reason: string, cause?: unknown): MessageError {
  return new MessageError(ErrorCode.INVALID_MESSAGE, `malformed message: ${reason}`, cause ? { cause } : {});
}

/** Options for {@link encode} and {@link decode}. */
export interface CodecOptions {
  /**
   * Maximum encoded size in bytes.
   * @default 1048576 (1 MiB)
   */
  maxBytes?: number;
  /** Shared secret for HMAC-SHA256 signatures. When set, {@link encode} signs. */
  secret?: string | Buffer;
  /**
   * When true, {@link decode} rejects unsigned or badly signed messages (needs `secret`).
   * @default false
   */
  requireSignature?: boolean;
}

/** HMAC-SHA256 (hex) over the JSON of the short form without `sig`. */
export function computeSignature(short: UmfShort, secret: string | Buffer): string {
  const { sig: _sig, ...rest } = short;
  return createHmac("sha256", secret).update(JSON.stringify(rest)).digest("hex");
}

/** Constant-time check of a message's signature. */
export function verifySignature(short: UmfShort, secret: string | Buffer): boolean {
  if (typeof short.sig !== "string" || short.sig.length !== 64) return false;
  const expected = Buffer.from(computeSignature(short, secret), "hex");
  const got = Buffer.from(short.sig, "hex");
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/** Byte length of `text` only when it could exceed `max` (counting costs; most messages are small). */
export function overLimit(text: string, max: number): boolean {
  if (text.length > max) return true;
  return text.length * 3 > max && Buffer.byteLength(text) > max;
}

/**
 * Serialise a short-form message, signing it when `secret` is given. Throws `MessageError`
 * (`ERR_MESSAGE_TOO_LARGE`, `ERR_INVALID_MESSAGE`).
 */
export function serialize(msg: UmfShort, maxBytes: number, secret?: string | Buffer): string {
  let text: string;
  try {
    if (secret !== undefined) {
      delete msg.sig;
      msg.sig = computeSignature(msg, secret);
    }
    text = JSON.stringify(msg);
  } catch (cause) {
    throw new SerializationError("the message body cannot be serialised to JSON", { cause });
  }
  if (overLimit(text, maxBytes)) throw tooLarge(text, maxBytes);
  return text;
}

/** The typed error for a message over the size limit. */
export function tooLarge(text: string, maxBytes: number): MessageError {
  const bytes = Buffer.byteLength(text);
  return new MessageError(
    ErrorCode.MESSAGE_TOO_LARGE,
    `message of ${bytes} bytes exceeds the ${maxBytes}-byte limit`,
    { data: { bytes, maxBytes } },
  );
}

/**
 * Encode a message to its wire text (short form JSON), signing it when a secret is given.
 * Throws {@link MessageError} `ERR_MESSAGE_TOO_LARGE` over the limit, `ERR_INVALID_MESSAGE` when the
 * body cannot be serialised.
 */
export function encode(msg: UmfMessage, options: CodecOptions = {}): string {
  return serialize(toShort(msg), options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES, options.secret);
}

/**
 * Decode wire text (or bytes) into a long-form message: size check first, then a pollution-safe
 * parse, then field checks and, when required, signature verification. Only ever throws
 * {@link MessageError}.
 */
export function decode(data: string | Buffer, options: CodecOptions = {}): UmfMessage {
  const max = options.maxBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const bytes =
    typeof data === "string" ? (data.length * 3 > max ? Buffer.byteLength(data) : 0) : data.length;
  if (bytes > max) {
    throw new MessageError(
      ErrorCode.MESSAGE_TOO_LARGE,
      `message of ${bytes} bytes exceeds the ${max}-byte limit`,
      {
        data: { bytes, maxBytes: max },
      },
    );
  }
  let parsed: unknown;
  try {
    parsed = safeJsonParse(typeof data === "string" ? data : data.toString("utf8"));
  } catch (cause) {
    throw invalid("not valid JSON", cause);
  }
  const msg = fromObject(parsed);
  if (options.requireSignature) {
    if (options.secret === undefined) {
      throw new MessageError(ErrorCode.BAD_SIGNATURE, "signature required but no secret is configured");
    }
    if (msg.signature === undefined) throw new MessageError(ErrorCode.BAD_SIGNATURE, "message is not signed");
    if (!verifySignature(toShort(msg), options.secret)) {
      throw new MessageError(ErrorCode.BAD_SIGNATURE, "message signature does not verify");
    }
  }
  return msg;
}
