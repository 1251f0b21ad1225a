/**
 * Pub/sub messaging: send (through the balancing loop), broadcast, inbound messages, coalesced
 * frames, and the port RPC uses.
 * @module
 */
export {
  type MessagePort,
  type MessageRouter,
  type MessagingStats,
  Messenger,
  type MessengerEvents,
  type MessengerOptions,
  type PublishListener,
  type PublishReceipt,
} from "./messenger.js";
