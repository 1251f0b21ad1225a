/**
 * The set-up most integration suites share: one throwaway Redis for the suite, services created through
 * `svc()` and stopped after each test, and a check after each test that nothing rejected unhandled or
 * threw uncaught.
 */
import assert from "node:assert/strict";
import { after, afterEach, before } from "node:test";
import { createService, type Service, type ServiceOptions } from "../../src/index.js";
import { type StartRedisOptions, startRedis, type TestRedis } from "./redis-server.js";

export interface ServiceHarness {
  /** The suite's Redis (available from the first test on). */
  readonly redis: TestRedis;
  /** A service on the suite's Redis, stopped after the current test. */
  svc(name: string, namespace: string, extra?: Partial<ServiceOptions>): Service;
}

/** Call inside `describe`, before the suite's own hooks. */
export function useServiceHarness(
  options: {
    redis?: StartRedisOptions;
    /** Options every service of the suite gets (overridden by `svc()`'s `extra`). */
    defaults?: Partial<ServiceOptions>;
    /** Runs after each test, before its services stop (e.g. kill child processes). */
    cleanup?: () => Promise<unknown>;
  } = {},
): ServiceHarness {
  let redis: TestRedis | undefined;
  const running: Service[] = [];
  const problems: unknown[] = [];
  const onProblem = (e: unknown) => problems.push(e);
  before(async () => {
    redis = await startRedis(options.redis);
    process.on("unhandledRejection", onProblem);
    process.on("uncaughtException", onProblem);
  });
  afterEach(async () => {
    await options.cleanup?.();
    await Promise.all(running.splice(0).map((s) => s.stop()));
    assert.deepEqual(problems, [], "no unhandled rejection or uncaught exception");
  });
  after(async () => {
    process.off("unhandledRejection", onProblem);
    process.off("uncaughtException", onProblem);
    await redis?.stop();
  });
  const current = (): TestRedis => {
    if (!redis) throw new Error("the suite's Redis is not started yet (use it inside tests or hooks)");
    return redis;
  };
  return {
    get redis() {
      return current();
    },
    // An arrow function: suites take it out of the object (`const svc = h.svc`).
    svc: (name, namespace, extra = {}) => {
      const s = createService({ name, namespace, redis: current().url, ...options.defaults, ...extra });
      running.push(s);
      return s;
    },
  };
}
