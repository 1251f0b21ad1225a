/**
 * The seam between the balancer and its callers (messaging, RPC): an {@link InstancePicker} chooses
 * one instance among the live candidates and is told when a request starts and ends, so that it can
 * count outstanding requests and drive the per-instance circuit breakers.
 *
 * @module
 */

import type { Instance } from "../registry/index.js";

/** What the caller knows about the request an instance is picked for. */
export interface PickContext {
  /** Affinity key (e.g. a user or order id): the same key goes to the same instance while it lives. */
  key?: string;
  /** Instance ids not to pick (e.g. those a retry already tried). */
  exclude?: ReadonlySet<string>;
  /** The target service. */
  service: string;
}

/** Chooses an instance for a request and learns from how requests end. */
export interface InstancePicker {
  /**
   * Pick one of `candidates`, or `undefined` when none may take work (none, all draining or
   * excluded). May throw a `CircuitOpenError` when every remaining candidate's circuit is open.
   */
  pick(candidates: readonly Instance[], ctx: PickContext): Instance | undefined;
  /** A request was sent to `iid`. */
  onStart?(service: string, iid: string): void;
  /** A request to `iid` ended (call once per `onStart`). */
  onEnd?(service: string, iid: string, outcome: { ok: boolean; latencyMs: number; error?: unknown }): void;
}

/** How a request to an instance ended, as {@link InstancePicker.onEnd} reports it. */
export type RequestOutcome = Parameters<NonNullable<InstancePicker["onEnd"]>>[2];

/** The balancing strategies. */
export const Strategy = {
  /** Uniformly random among eligible instances. */
  RANDOM: "random",
  /** Each eligible instance in turn. */
  ROUND_ROBIN: "round-robin",
  /** Power of two choices on outstanding requests, blended with published load. */
  LEAST_OUTSTANDING: "least-outstanding",
  /** Consistent hashing on `ctx.key`; falls back to another strategy without a key. */
  AFFINITY: "affinity",
} as const;
/** Union of strategy names. */
export type StrategyName = (typeof Strategy)[keyof typeof Strategy];

/** A source of uniform random numbers in `[0, 1)` (`Math.random` by default; seeded in tests). */
export type RandomSource = () => number;

/** A clock returning milliseconds (`Date.now` by default; injected in tests). */
export type ClockMs = () => number;
