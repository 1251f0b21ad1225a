/**
 * Helpers for the balancer tests: fake instances (no Redis needed to pick among them), a manual
 * clock, and a fixed table of load figures.
 */
import type { Instance, InstanceStatusValue, LoadFigures, LoadSource } from "../../src/index.js";

/** A 32-hex instance id derived from a number (stable across runs). */
export function iid(n: number): string {
  return n.toString(16).padStart(32, "0");
}

/** An instance of `service` as discovery would return it. */
export function instance(id: string, status: InstanceStatusValue = "ok", service = "svc"): Instance {
  return { service, id, deadline: Number.MAX_SAFE_INTEGER, node: undefined, redmesh: true, status };
}

/** `n` instances with ids iid(0)…iid(n-1) (or from `start`). */
export function instances(n: number, start = 0, service = "svc"): Instance[] {
  return Array.from({ length: n }, (_, i) => instance(iid(start + i), "ok", service));
}

/** A clock the test moves by hand. */
export class ManualClock {
  now = 1_000_000;
  readonly fn = (): number => this.now;
  advance(ms: number): void {
    this.now += ms;
  }
}

/** A load source answering from a table (what a LoadTracker would have read). */
export class FixedLoad implements LoadSource {
  readonly table = new Map<string, LoadFigures>();
  set(id: string, f: Partial<LoadFigures>): void {
    this.table.set(id, { inFlight: 0, lagMs: 20, status: "ok", readAt: 0, ...f });
  }
  get(_service: string, id: string): LoadFigures | undefined {
    return this.table.get(id);
  }
}

/** Count how often each instance id is picked over `n` picks. */
export function tally(n: number, pickOne: (i: number) => Instance | undefined): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const p = pickOne(i);
    if (p) out.set(p.id, (out.get(p.id) ?? 0) + 1);
  }
  return out;
}
