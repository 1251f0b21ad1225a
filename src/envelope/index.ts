/**
 * The wire: UMF envelopes (long and short form, signing), coalesced frames, the RPC envelopes,
 * replay protection and the one route parser. Every envelope redmesh sends or receives is encoded
 * and decoded here.
 * @module
 */

export {
  asShort,
  COMPACT_FRAME_FORMAT,
  compactFrameHeader,
  DropReason,
  type DropReasonValue,
  FRAME_FORMAT,
  Framing,
  type FramingValue,
  frameText,
  type ReceiveOptions,
  receive,
  WireCodec,
  type WireCodecOptions,
} from "./frames.js";
export { decodeJobEntry, encodeJobEntry, type JobEnvelope, reencodeJobEntry } from "./job.js";
export { ReplayGuard, type ReplayGuardOptions, ReplayVerdict, type ReplayVerdictValue } from "./replay.js";
export {
  formatRoute,
  normalizeRoutePattern,
  parseRoute,
  parseTarget,
  type Route,
  type RouteParts,
  splitRoute,
} from "./route.js";
export {
  encodeCancel,
  encodeError,
  encodeReply,
  encodeRequest,
  methodOf,
  type RpcRequestFields,
  RpcType,
  type RpcTypeValue,
  replyFraming,
  requestRoute,
} from "./rpc.js";
export {
  type CodecOptions,
  computeSignature,
  createMessage,
  DEFAULT_MAX_MESSAGE_BYTES,
  decode,
  encode,
  fromObject,
  type MessageExtras,
  overLimit,
  safeJsonParse,
  serialize,
  shortMessage,
  tooLarge,
  toShort,
  UMF_VERSION,
  type UmfInit,
  type UmfMessage,
  type UmfShort,
  verifySignature,
} from "./umf.js";
