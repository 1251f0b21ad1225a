/**
 * The RPC envelopes (docs/rpc.md "Wire"): request, result, error and cancel, all UMF short form.
 *
 * - request `rpc` to `<iid>@<svc>:/<method>`: `mid`, `bdy` (params), `tmo`, `dl` (absolute deadline),
 *   `cid` (correlation id), `tp` (W3C traceparent);
 * - result `rpc.r` / error `rpc.e` (`bdy` = `{ code, message, data, retryable }`) to the caller's `frm`,
 *   `rmid` = the request's `mid`;
 * - cancel `rpc.c` to the request's route, `rmid` = the request's `mid`.
 *
 * In a frame and unsigned (every redmesh peer, the hot path) the JSON is written directly: ids,
 * service names and methods are validated and need no escaping, and a compact frame leaves out the
 * routes its header implies. Otherwise (Hydra peers, signing) the envelope is built as an object and
 * serialised by the sender's {@link WireCodec}. Both give the same message.
 *
 * @module
 */

import { SerializationError, type WireError } from "../errors.js";
import { Framing, type FramingValue, type WireCodec } from "./frames.js";
import { UMF_VERSION, type UmfShort } from "./umf.js";

/** UMF `typ` values used by RPC. */
export const RpcType = {
  REQUEST: "rpc",
  RESULT: "rpc.r",
  ERROR: "rpc.e",
  CANCEL: "rpc.c",
} as const;
/** Union of RPC message types. */
export type RpcTypeValue = (typeof RpcType)[keyof typeof RpcType];

/** What a request carries. A pending call implements it, so that encoding allocates no object. */
export interface RpcRequestFields {
  /** The target instance. */
  readonly iid: string;
  /** The target service. */
  readonly service: string;
  /** Method name (validated: `[A-Za-z0-9_.\-/]{1,128}`). */
  readonly method: string;
  /** Message id. */
  readonly mid: string;
  /** Params (`bdy`). */
  readonly params: unknown;
  /** Timeout in ms (`tmo`). */
  readonly timeoutMs: number;
  /** Absolute deadline, epoch ms (`dl`). */
  readonly deadline: number;
  /** Correlation id. */
  readonly cid: string | undefined;
  /** W3C traceparent. */
  readonly tp: string | undefined;
}

/** The route of a request: `<iid>@<svc>:/<method>`. */
export function requestRoute(iid: string, service: string, method: string): string {
  return `${iid}@${service}:/${method}`;
}

/** The method a request's `to` names (`<iid>@<svc>:/<method>` → `<method>`), `""` when none. */
export function methodOf(to: string): string {
  const colon = to.indexOf(":");
  if (colon < 0) return "";
  return to.charCodeAt(colon + 1) === 47 /* "/" */ ? to.slice(colon + 2) : to.slice(colon + 1);
}

/** `JSON.stringify` of a body, as a typed error when it cannot be serialised. */
function bodyJson(value: unknown): string | undefined {
  try {
    return JSON.stringify(value);
  } catch (cause) {
    throw new SerializationError("the message body cannot be serialised to JSON", { cause });
  }
}

/**
 * Encode a request from `frm` (the caller's route) for a receiver reading `framing`. Throws
 * `SerializationError` or `MessageError` (too large).
 */
export function encodeRequest(
  r: RpcRequestFields,
  frm: string,
  framing: FramingValue,
  codec: WireCodec,
): string {
  if (framing !== Framing.PLAIN && !codec.signing) {
    const body = bodyJson(r.params);
    // In a compact frame the header carries `frm`.
    return codec.checkSize(
      `{"to":"${r.iid}@${r.service}:/${r.method}"${framing === Framing.COMPACT ? "" : `,"frm":"${frm}"`},"mid":"${r.mid}","typ":"rpc"${
        body === undefined ? "" : `,"bdy":${body}`
      },"tmo":${r.timeoutMs},"dl":${r.deadline}${r.cid === undefined ? "" : `,"cid":${JSON.stringify(r.cid)}`}${
        r.tp === undefined ? "" : `,"tp":${JSON.stringify(r.tp)}`
      }}`,
    );
  }
  const msg = {
    to: requestRoute(r.iid, r.service, r.method),
    frm,
    mid: r.mid,
    typ: RpcType.REQUEST,
    bdy: r.params,
    tmo: r.timeoutMs,
    dl: r.deadline,
  } as UmfShort;
  if (framing === Framing.PLAIN) {
    // Plain UMF for Hydra and unknown peers: with the fields Hydra expects.
    msg.ts = new Date().toISOString();
    msg.ver = UMF_VERSION;
  }
  if (r.cid !== undefined) msg.cid = r.cid;
  if (r.tp !== undefined) msg.tp = r.tp;
  return codec.serialize(msg);
}

/**
 * Encode the reply (`rpc.r` with a result, `rpc.e` with a {@link WireError}) to `request`, sent with
 * `mid`. In a compact frame the caller knows who it is and the frame's header says who answers.
 * Throws `SerializationError` or `MessageError` (too large).
 */
export function encodeReply(
  request: UmfShort,
  mid: string,
  typ: typeof RpcType.RESULT | typeof RpcType.ERROR,
  body: unknown,
  framing: FramingValue,
  codec: WireCodec,
): string {
  if (framing !== Framing.PLAIN && !codec.signing) {
    const json = bodyJson(body);
    const tail = `"mid":"${mid}","rmid":${JSON.stringify(request.mid)},"typ":"${typ}"${
      json === undefined ? "" : `,"bdy":${json}`
    }}`;
    return codec.checkSize(
      framing === Framing.COMPACT
        ? `{${tail}`
        : `{"to":${JSON.stringify(request.frm)},"frm":${JSON.stringify(request.to)},${tail}`,
    );
  }
  return codec.serialize({
    to: request.frm,
    frm: request.to,
    mid,
    rmid: request.mid,
    typ,
    bdy: body,
  } as UmfShort);
}

/** Encode the error reply to `request` (see {@link encodeReply}). */
export function encodeError(
  request: UmfShort,
  mid: string,
  error: WireError,
  framing: FramingValue,
  codec: WireCodec,
): string {
  return encodeReply(request, mid, RpcType.ERROR, error, framing, codec);
}

/** Encode the cancel of the request `requestMid` sent to `to`, from `frm`. */
export function encodeCancel(
  to: string,
  frm: string,
  mid: string,
  requestMid: string,
  codec: WireCodec,
): string {
  return codec.serialize({ to, frm, mid, rmid: requestMid, typ: RpcType.CANCEL } as UmfShort);
}

/** The framing a reply to `request` may use: only redmesh callers send `rpc`, and all read frames. */
export function replyFraming(request: UmfShort, readsCompact: boolean): FramingValue {
  if (request.typ !== RpcType.REQUEST) return Framing.PLAIN;
  return readsCompact ? Framing.COMPACT : Framing.FRAME;
}
