/**
 * The simplest {@link InstancePicker}: uniformly at random among instances that are neither draining
 * nor excluded, with no state. A bare balancing loop without a picker of its own uses it; services use
 * a {@link Balancer}.
 *
 * @module
 */

import { type Instance, InstanceStatus } from "../registry/index.js";
import type { InstancePicker, PickContext } from "./types.js";

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
