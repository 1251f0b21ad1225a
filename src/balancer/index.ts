/**
 * Load balancing and resilience: the one balancing loop every call, send and gateway request runs
 * (pick → bulkhead → attempt → classify → retry), instance pickers (random, round-robin,
 * least-outstanding, affinity), per-instance circuit breakers, load figures from health snapshots,
 * bulkheads and the retry policy.
 * @module
 */
export {
  Balancer,
  type BalancerEvents,
  type BalancerOptions,
  type BalancerStats,
  type BreakerEvent,
  createBalancer,
  DEFAULT_BALANCER_OPTIONS,
  type InstanceStats,
  type KeylessStrategyName,
  type LeaveSource,
} from "./balancer.js";
export {
  Bulkhead,
  type BulkheadAcquireOptions,
  type BulkheadOptions,
  type BulkheadRelease,
  type BulkheadStats,
  createBulkhead,
} from "./bulkhead.js";
export {
  type BreakerSnapshot,
  BreakerState,
  type BreakerStateValue,
  type BreakerTransition,
  CircuitBreaker,
  type CircuitBreakerOptions,
  classifyOutcome,
  DEFAULT_BREAKER_OPTIONS,
  type OutcomeClass,
  resolveBreakerOptions,
} from "./circuit-breaker.js";
export { DEFAULT_VIRTUAL_NODES, HashRing } from "./hash-ring.js";
export {
  DEFAULT_LOAD_TRACKER_OPTIONS,
  type LoadFigures,
  type LoadSource,
  LoadTracker,
  type LoadTrackerOptions,
  type LoadTrackerStats,
} from "./load-tracker.js";
export {
  BalancedRequest,
  type BalancedRequestInit,
  type BalancedRunOptions,
  BalancingLoop,
  type BalancingLoopOptions,
  type CandidateSource,
  goneError,
  isRedirect,
  RetryKind,
  type RetryKindValue,
} from "./loop.js";
export { hash32, seededRandom } from "./random.js";
export { isEligible, randomPicker } from "./random-picker.js";
export {
  abortableSleep,
  createRetryPolicy,
  DEFAULT_RETRY_OPTIONS,
  isNotDelivered,
  isRetrySafe,
  NOT_DELIVERED_CODES,
  type RetryContext,
  RetryPolicy,
  type RetryPolicyOptions,
  type RetryRunOptions,
} from "./retry.js";
export { type RunBalancedOptions, runBalanced } from "./run-balanced.js";
export {
  type ClockMs,
  type InstancePicker,
  type PickContext,
  type RandomSource,
  type RequestOutcome,
  Strategy,
  type StrategyName,
} from "./types.js";
