/**
 * The load-balancing seam: every choice of a target instance (messages and RPC) goes through an
 * {@link InstancePicker}. The default picks uniformly at random among instances that are neither
 * draining nor excluded; real strategies (round-robin, least-outstanding, affinity, circuit
 * breakers) plug in through `createService({ picker })`.
 *
 * @module
 */

import { type Instance, InstanceStatus } from "../registry/index.js";

/** What a picker knows about the choice it is asked to make. */
export interface PickContext {
  /** Affinity key given by the caller (`call(…, { key })`), if any. */
  key?: string;
  /** Instances that must not be chosen (they already failed this call or message). */
  exclude?: ReadonlySet<string>;
  /** Target service. */
  service: string;
}

/** Chooses one instance among live candidates and (optionally) learns from outcomes. */
export interface InstancePicker {
  /**
   * Choose an instance, or `undefined` when none is acceptable. Throwing a `RedmeshError` (e.g.
   * `CircuitOpenError`) rejects the call with that error.
   */
  pick(candidates: readonly Instance[], ctx: PickContext): Instance | undefined;
  /** A request was sent to `iid`. */
  onStart?(service: string, iid: string): void;
  /** A request to `iid` ended (reply, error, timeout or loss). */
  onEnd?(service: string, iid: string, outcome: { ok: boolean; latencyMs: number; error?: unknown }): void;
}

/** True when the instance may get new work under `ctx`. */
export function isEligible(inst: Instance, ctx: PickContext): boolean {
  return inst.status !== InstanceStatus.DRAINING && !(ctx.exclude?.has(inst.id) ?? false);
}

/** Uniform random choice among eligible candidates (no allocation when none is excluded). */
export const randomPicker: InstancePicker = {
  pick(candidates, ctx) {
    const n = candidates.length;
    if (n === 0) return undefined;
    // Fast path: try a random one first; only scan when it is not eligible.
    const first = candidates[Math.floor(Math.random() * n)];
    if (first && isEligible(first, ctx)) return first;
    const ok: Instance[] = [];
    for (const c of candidates) if (isEligible(c, ctx)) ok.push(c);
    return ok.length === 0 ? undefined : ok[Math.floor(Math.random() * ok.length)];
  },
};
