/**
 * What both upstreams (HTTP in `upstream-http.ts`, RPC in `upstream-rpc.ts`) share with the gateway's
 * pick/retry loop: the outcome of one attempt, and the request-body limit's error and message.
 *
 * @module
 */

/** The outcome of forwarding one request to one instance. */
export interface Attempt {
  /** `ok`: answered; `retry`: nothing was answered, another instance may take it; `fail`: answered with an error. */
  outcome: "ok" | "retry" | "fail";
  /** Set when the instance is to blame (reported to the balancer's `onEnd`). */
  error?: unknown;
  /**
   * Why a `retry`: the connection could not be made (nothing was sent: another instance at once), or
   * it closed before any response byte (the request may have run: repeated after a backoff, and only
   * because the request is idempotent).
   */
  reason?: "connect failed" | "closed early";
}

/** Raised while counting a request body that went past `maxBodyBytes`. */
export class BodyTooLarge extends Error {
  override name = "BodyTooLarge";
}

/** The 413 message. */
export function tooLargeMessage(max: number): string {
  return `the request body exceeds the ${max}-byte limit`;
}
