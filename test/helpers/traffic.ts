/**
 * Steady application traffic for topology fault tests: RPC callers, queue producers and workers, and
 * sharded-channel messages between services, with every outcome recorded (times, typed or not), so a
 * test can measure the outage a fault caused and check that no acknowledged job was lost.
 */
import assert from "node:assert/strict";
import { after, afterEach, before } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { createService, isRedmeshError, type RedisOptions, type Service } from "../../src/index.js";
import { waitFor } from "./redis-server.js";

/** One finished operation. Times are `performance.now()` values. */
export interface Outcome {
  start: number;
  end: number;
  ok: boolean;
  /** The error's `code` (or `UNTYPED:<name>` when it was not a redmesh error). */
  code?: string;
}

/** What one stream of operations (calls to one service, adds to one queue, sends…) saw. */
export interface Stream {
  readonly name: string;
  readonly outcomes: Outcome[];
}

/** Traffic between a caller and some target services, each of which serves `echo` and works a queue. */
export interface Traffic {
  readonly streams: Stream[];
  /** Per target: job numbers whose `add()` resolved. */
  readonly acked: Map<string, Set<number>>;
  /** Per target: job number → when its `add()` started and resolved. */
  readonly ackedAt: Map<string, Map<number, [number, number]>>;
  /** Per target: job number → times processed. */
  readonly processed: Map<string, Map<number, number>>;
  /** Per target: message numbers whose `send()` resolved, and those that arrived. */
  readonly sent: Map<string, Set<number>>;
  readonly received: Map<string, Set<number>>;
  /** `error` events of services and queues (time, source, code). */
  readonly errorEvents: Array<{ t: number; source: string; code: string; message: string }>;
  /** Stop producing; resolves when every loop has ended. */
  stop(): Promise<void>;
}

/** Options of {@link startTraffic}. */
export interface TrafficOptions {
  caller: Service;
  targets: Service[];
  /** Concurrent call loops per target. @default 2 */
  callLoops?: number;
  /** RPC timeout. @default 1000 */
  callTimeoutMs?: number;
  /** Pause between two operations of one loop (keeps a 2-core machine responsive). @default 5 */
  pauseMs?: number;
  /** Worker concurrency. @default 4 */
  concurrency?: number;
  /** Send messages too. @default true */
  messages?: boolean;
}

function codeOf(err: unknown): string {
  if (isRedmeshError(err)) return err.code;
  return `UNTYPED:${err instanceof Error ? err.name : typeof err}`;
}

/** Start the traffic (the services must be running). */
export function startTraffic(o: TrafficOptions): Traffic {
  const pause = o.pauseMs ?? 5;
  const timeout = o.callTimeoutMs ?? 1000;
  let running = true;
  const streams: Stream[] = [];
  const acked = new Map<string, Set<number>>();
  const ackedAt = new Map<string, Map<number, [number, number]>>();
  const processed = new Map<string, Map<number, number>>();
  const sent = new Map<string, Set<number>>();
  const received = new Map<string, Set<number>>();
  const errorEvents: Traffic["errorEvents"] = [];
  const loops: Promise<void>[] = [];
  const onError = (source: string) => (e: { code?: string; message: string }) =>
    errorEvents.push({ t: performance.now(), source, code: e.code ?? "?", message: e.message });

  const loop = (name: string, op: (i: number) => Promise<unknown>) => {
    const s: Stream = { name, outcomes: [] };
    streams.push(s);
    loops.push(
      (async () => {
        for (let i = 0; running; i++) {
          const start = performance.now();
          try {
            await op(i);
            s.outcomes.push({ start, end: performance.now(), ok: true });
          } catch (err) {
            s.outcomes.push({ start, end: performance.now(), ok: false, code: codeOf(err) });
          }
          await sleep(pause);
        }
      })(),
    );
  };

  o.caller.on("error", onError(o.caller.name));
  for (const t of o.targets) {
    const svc = t.name;
    t.on("error", onError(svc));
    const done = new Map<number, number>();
    processed.set(svc, done);
    const worker = t.queue<{ n: number }>("jobs");
    worker.on("error", onError(`${svc}/jobs worker`));
    worker.process(
      (body) => {
        done.set(body.n, (done.get(body.n) ?? 0) + 1);
      },
      { concurrency: o.concurrency ?? 4 },
    );
    const got = new Set<number>();
    received.set(svc, got);
    t.on("message", (m) => {
      const n = (m.body as { n?: unknown } | undefined)?.n;
      if (typeof n === "number") got.add(n);
    });

    for (let l = 0; l < (o.callLoops ?? 2); l++)
      loop(`call ${svc}#${l}`, (i) => o.caller.call(svc, "echo", i, { timeout }));

    const producer = o.caller.queue<{ n: number }>("jobs", { service: svc });
    producer.on("error", onError(`${svc}/jobs producer`));
    const ack = new Set<number>();
    acked.set(svc, ack);
    const at = new Map<number, [number, number]>();
    ackedAt.set(svc, at);
    loop(`add ${svc}`, async (n) => {
      const start = performance.now();
      await producer.add({ n });
      ack.add(n);
      at.set(n, [start, performance.now()]);
    });

    if (o.messages ?? true) {
      const ok = new Set<number>();
      sent.set(svc, ok);
      loop(`send ${svc}`, async (n) => {
        await o.caller.send(svc, { n });
        ok.add(n);
      });
    }
  }
  return {
    streams,
    acked,
    ackedAt,
    processed,
    sent,
    received,
    errorEvents,
    async stop() {
      running = false;
      await Promise.all(loops);
    },
  };
}

/** How a stream fared around a fault at `faultAt`. */
export interface StreamReport {
  name: string;
  ok: number;
  failed: number;
  /** Error codes of the failures, with counts. */
  codes: Record<string, number>;
  /** Last failure after the fault, then the first success after it, both relative to `faultAt` (ms). */
  lastFailureMs: number | undefined;
  backMs: number | undefined;
  /** Longest stretch without a success anywhere in the run (ms). */
  longestGapMs: number;
  /**
   * Longest stretch after the fault without a successful completion (from the fault or the previous
   * success to the next success, ms): the outage as this stream saw it, whether its operations failed
   * or waited.
   */
  outageMs: number;
  /** Slowest operation (ms). */
  slowestMs: number;
}

/** Summarise a stream relative to a fault time. */
export function reportStream(s: Stream, faultAt: number): StreamReport {
  const codes: Record<string, number> = {};
  let lastFailure: number | undefined;
  let longestGap = 0;
  let lastOk: number | undefined;
  let slowest = 0;
  let outage = 0;
  for (const x of [...s.outcomes].sort((p, q) => p.end - q.end)) {
    slowest = Math.max(slowest, x.end - x.start);
    if (x.ok) {
      if (x.end >= faultAt) outage = Math.max(outage, x.end - Math.max(lastOk ?? faultAt, faultAt));
      if (lastOk !== undefined) longestGap = Math.max(longestGap, x.end - lastOk);
      lastOk = x.end;
    } else {
      codes[x.code ?? "?"] = (codes[x.code ?? "?"] ?? 0) + 1;
      if (x.end >= faultAt) lastFailure = Math.max(lastFailure ?? 0, x.end);
    }
  }
  const back =
    lastFailure === undefined ? undefined : s.outcomes.find((x) => x.ok && x.start >= lastFailure)?.end;
  return {
    name: s.name,
    ok: s.outcomes.filter((x) => x.ok).length,
    failed: s.outcomes.filter((x) => !x.ok).length,
    codes,
    lastFailureMs: lastFailure === undefined ? undefined : lastFailure - faultAt,
    backMs: back === undefined ? undefined : back - faultAt,
    longestGapMs: longestGap,
    outageMs: outage,
    slowestMs: slowest,
  };
}

/** Jobs acknowledged but never processed, and jobs processed more than once, per target. */
export function jobReport(t: Traffic): Array<{
  service: string;
  acked: number;
  processed: number;
  lost: number[];
  duplicates: number;
}> {
  return [...t.acked].map(([service, ack]) => {
    const done = t.processed.get(service) ?? new Map<number, number>();
    return {
      service,
      acked: ack.size,
      processed: done.size,
      lost: [...ack].filter((n) => !done.has(n)),
      duplicates: [...done.values()].reduce((s, c) => s + c - 1, 0),
    };
  });
}

/** Wait until every target answers the caller again (discovery filled, subscriptions in place). */
export async function warmUp(caller: Service, targets: Service[]): Promise<void> {
  await waitFor(
    async () => {
      for (const t of targets) await caller.call(t.name, "echo", 0, { timeout: 500 });
      return true;
    },
    { timeoutMs: 10_000, intervalMs: 100, what: "every target answering" },
  ).catch(async () => {
    // Surface the real error.
    for (const t of targets) await caller.call(t.name, "echo", 0, { timeout: 500 });
  });
}

/** Stop the traffic, then wait until every acknowledged job has been processed. */
export async function drain(traffic: Traffic, timeoutMs: number): Promise<void> {
  await traffic.stop();
  await waitFor(() => jobReport(traffic).every((r) => r.lost.length === 0), {
    timeoutMs,
    intervalMs: 100,
    what: "every acknowledged job processed",
  }).catch(() => undefined); // reported (and asserted) by the caller with the numbers
}

/**
 * The set-up both fault suites share: services created through `svc()` (each answers `echo`) and
 * traffic registered with `track()` are stopped after each test, traffic first; the test fails if
 * anything rejected unhandled or threw uncaught meanwhile. Call at the top level of a test file.
 */
export function useFaultHarness(): {
  svc(name: string, ns: string, redis: RedisOptions): Service;
  track(traffic: Traffic): Traffic;
} {
  const problems: unknown[] = [];
  const onProblem = (e: unknown) => problems.push(e);
  const running: Service[] = [];
  const traffics: Traffic[] = [];
  before(() => {
    process.on("unhandledRejection", onProblem);
    process.on("uncaughtException", onProblem);
  });
  after(() => {
    process.off("unhandledRejection", onProblem);
    process.off("uncaughtException", onProblem);
  });
  afterEach(async () => {
    // A failed test leaves its traffic running: stop it before the services.
    await Promise.all(traffics.splice(0).map((t) => t.stop()));
    await Promise.all(running.splice(0).map((s) => s.stop()));
    assert.deepEqual(problems, [], "no unhandled rejection or uncaught exception");
  });
  return {
    svc(name, ns, redis) {
      const s = createService({ name, namespace: ns, redis });
      s.handle("echo", (x: unknown) => x);
      running.push(s);
      return s;
    },
    track(traffic) {
      traffics.push(traffic);
      return traffic;
    },
  };
}
