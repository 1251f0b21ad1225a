/**
 * The set-up most integration suites share: one Redis topology for the suite, services created through
 * `svc()` and stopped after each test, and a check after each test that nothing rejected unhandled or
 * threw uncaught, and that no service reported a slot error (`CROSSSLOT`, a script touching a key of
 * another slot) through its logger or its `error` event.
 *
 * Suites in the topology matrix pass `matrix: true`: they then run on the topology
 * `REDMESH_TEST_TOPOLOGY` names (see topology.ts); the others always run on a standalone server.
 */
import assert from "node:assert/strict";
import { after, afterEach, before } from "node:test";
import { createService, type Logger, type Service, type ServiceOptions } from "../../src/index.js";
import type { StartRedisOptions, TestRedis } from "./redis-server.js";
import { matrixTopology, type TestTopology, TopologyKind, useTopology } from "./topology.js";

export interface ServiceHarness {
  /** The suite's standalone Redis (only when the suite runs on a standalone server). */
  readonly redis: TestRedis;
  /** The suite's topology (available from the first test on). */
  readonly topo: TestTopology;
  /** A service on the suite's Redis, stopped after the current test. */
  svc(name: string, namespace: string, extra?: Partial<ServiceOptions>): Service;
}

/** Replies that mean a command spanned slots: never acceptable, on any topology. */
const SLOT_ERROR_RE = /CROSSSLOT|non local key|do not hash to the same slot/;

/** Call inside `describe`, before the suite's own hooks. */
export function useServiceHarness(
  options: {
    redis?: StartRedisOptions;
    /** Run on the matrix topology (`REDMESH_TEST_TOPOLOGY`) instead of always standalone. */
    matrix?: boolean;
    /** Options every service of the suite gets (overridden by `svc()`'s `extra`). */
    defaults?: Partial<ServiceOptions>;
    /** Runs after each test, before its services stop (e.g. kill child processes). */
    cleanup?: () => Promise<unknown>;
  } = {},
): ServiceHarness {
  const topo = useTopology({
    kind: options.matrix ? matrixTopology() : TopologyKind.STANDALONE,
    ...(options.redis ? { standalone: options.redis } : {}),
    checkAfterEach: false,
  });
  const running: Service[] = [];
  const problems: unknown[] = [];
  const slotErrors: string[] = [];
  const onProblem = (e: unknown) => problems.push(e);
  const record = (o: unknown, m?: string) => {
    const text = `${m ?? ""} ${typeof o === "string" ? o : JSON.stringify(o, errorFields)}`;
    if (SLOT_ERROR_RE.test(text)) slotErrors.push(text);
  };
  const recorder: Logger = { debug: record, info: record, warn: record, error: record };
  before(() => {
    process.on("unhandledRejection", onProblem);
    process.on("uncaughtException", onProblem);
  });
  afterEach(async () => {
    // The Cluster invariants are checked while the services still run (their presence keys exist).
    const invariants = await topo.checkInvariants().then(
      () => undefined,
      (e: unknown) => e,
    );
    await options.cleanup?.();
    await Promise.all(running.splice(0).map((s) => s.stop()));
    if (invariants) throw invariants;
    assert.deepEqual(problems, [], "no unhandled rejection or uncaught exception");
    assert.deepEqual(slotErrors.splice(0), [], "no slot (CROSSSLOT) error reported by a service");
  });
  after(() => {
    process.off("unhandledRejection", onProblem);
    process.off("uncaughtException", onProblem);
  });
  return {
    get redis() {
      const server = topo.server;
      if (!server) throw new Error(`this suite runs on ${topo.kind}: there is no single server`);
      return server;
    },
    get topo() {
      return topo;
    },
    // An arrow function: suites take it out of the object (`const svc = h.svc`).
    svc: (name, namespace, extra = {}) => {
      const s = createService({
        name,
        namespace,
        redis: topo.url,
        logger: recorder,
        ...options.defaults,
        ...extra,
      });
      s.on("error", (e) => record(e));
      running.push(s);
      return s;
    },
  };
}

/** JSON.stringify replacer that keeps an Error's message, code and cause. */
function errorFields(_k: string, v: unknown): unknown {
  if (v instanceof Error)
    return { name: v.name, message: v.message, code: (v as { code?: unknown }).code, cause: v.cause };
  return v;
}
