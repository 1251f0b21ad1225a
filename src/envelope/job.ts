/**
 * The queue entry envelope: a Hydra-compatible UMF message in short form (`to`, `frm`, `mid`, `ts`,
 * `ver`, `bdy`) plus redmesh's bookkeeping in `rmq` (attempts, backoff, last error), which Hydra
 * ignores. A Hydra `queueMessage` (no `rmq`, long or short field names) decodes like any other entry.
 * What `rmq` means is the queue's business (`queue/job.ts`); its shape on the wire is here.
 *
 * @module
 */

import { ErrorCode, MessageError, SerializationError } from "../errors.js";
import { overLimit, tooLarge, UMF_VERSION } from "./umf.js";

/** An entry as decoded: the whole object (rewritten with new bookkeeping later), its id and body. */
export interface JobEnvelope {
  /** The parsed object, only read (so `__proto__` keys are never copied anywhere). */
  obj: Record<string, unknown>;
  /** `mid` (or Hydra's `id`). */
  id: string;
  /** `bdy` (or `body`). */
  body: unknown;
  /** `rmq` when it is an object, else `undefined`. */
  rmq: Record<string, unknown> | undefined;
}

/**
 * Encode an entry. Throws `SerializationError` when the body cannot be serialised, `MessageError`
 * `ERR_MESSAGE_TOO_LARGE` over `maxBytes`.
 */
export function encodeJobEntry(
  to: string,
  frm: string,
  mid: string,
  body: unknown,
  rmq: object | undefined,
  maxBytes: number = Number.POSITIVE_INFINITY,
): string {
  let entry: string;
  try {
    entry = JSON.stringify({ to, frm, mid, ts: new Date().toISOString(), ver: UMF_VERSION, bdy: body, rmq });
  } catch (cause) {
    throw new SerializationError(`job body cannot be serialised to JSON: ${(cause as Error).message}`, {
      cause,
    });
  }
  if (overLimit(entry, maxBytes)) throw tooLarge(entry, maxBytes);
  return entry;
}

/** The same entry with new bookkeeping (same id, same body, every other field kept). */
export function reencodeJobEntry(e: JobEnvelope, rmq: object): string {
  return JSON.stringify({ ...e.obj, rmq });
}

/**
 * Decode an entry found in a list. Never throws: a malformed entry gives a `MessageError` (returned,
 * not thrown) whose message says why.
 */
export function decodeJobEntry(raw: string, maxBytes: number): JobEnvelope | MessageError {
  if (overLimit(raw, maxBytes))
    return new MessageError(ErrorCode.MESSAGE_TOO_LARGE, `entry is larger than ${maxBytes} bytes`);
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    return malformed(`entry is not JSON: ${(err as Error).message}`);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    return malformed("entry is not a JSON object (expected a UMF message)");
  }
  const obj = v as Record<string, unknown>;
  let body: unknown;
  if (Object.hasOwn(obj, "bdy")) body = obj.bdy;
  else if (Object.hasOwn(obj, "body")) body = obj.body;
  else return malformed("entry has no bdy (not a UMF message)");
  const mid = obj.mid ?? obj.id;
  const id = typeof mid === "string" && mid.length > 0 ? mid : typeof mid === "number" ? String(mid) : "";
  if (id === "") return malformed("entry has no mid (not a UMF message)");
  const m = obj.rmq;
  const rmq =
    typeof m === "object" && m !== null && !Array.isArray(m) ? (m as Record<string, unknown>) : undefined;
  return { obj, id, body, rmq };
}

function malformed(reason: string): MessageError {
  return new MessageError(ErrorCode.INVALID_MESSAGE, reason);
}
