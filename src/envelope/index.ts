/**
 * UMF envelopes and routes.
 * @module
 */

export { formatRoute, normalizeRoutePattern, parseRoute, type Route } from "./route.js";
export {
  type CodecOptions,
  computeSignature,
  createMessage,
  DEFAULT_MAX_MESSAGE_BYTES,
  decode,
  encode,
  fromObject,
  safeJsonParse,
  toShort,
  UMF_VERSION,
  type UmfInit,
  type UmfMessage,
  type UmfShort,
  verifySignature,
} from "./umf.js";
