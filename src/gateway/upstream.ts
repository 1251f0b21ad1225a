/**
 * What both upstreams (HTTP in `upstream-http.ts`, RPC in `upstream-rpc.ts`) share with the gateway's
 * pick/retry loop: the outcome of one attempt, and the request-body limit's error and message.
 *
 * @module
 */

/** The outcome of forwarding one request to one instance. */
export interface Attempt {
  /** `ok`: answered; `retry`: nothing was sent, another instance may take it; `fail`: answered with an error. */
  outcome: "ok" | "retry" | "fail";
  /** Set when the instance is to blame (reported to the balancer's `onEnd`). */
  error?: unknown;
}

/** Raised while counting a request body that went past `maxBodyBytes`. */
export class BodyTooLarge extends Error {
  override name = "BodyTooLarge";
}

/** The 413 message. */
export function tooLargeMessage(max: number): string {
  return `the request body exceeds the ${max}-byte limit`;
}
