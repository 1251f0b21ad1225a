/**
 * Pub/sub messaging: send, broadcast, inbound messages, coalesced frames, the instance picker seam.
 * @module
 */
export {
  type MessageRouter,
  type MessagingStats,
  Messenger,
  type MessengerEvents,
  type MessengerOptions,
  type PublishListener,
  parseTarget,
} from "./messenger.js";
export { type InstancePicker, isEligible, type PickContext, randomPicker } from "./picker.js";
export { ReplayGuard, type ReplayGuardOptions, ReplayVerdict, type ReplayVerdictValue } from "./replay.js";
export {
  asShort,
  COMPACT_FRAME_FORMAT,
  DropReason,
  type DropReasonValue,
  FRAME_FORMAT,
  Framing,
  type FramingValue,
  overLimit,
  receive,
  serialize,
  splitRoute,
} from "./wire.js";
