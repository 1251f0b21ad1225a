import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ErrorCode, isRedmeshError } from "../../src/errors.js";
import { Lifecycle, LifeState, StepList, type StopContext } from "../../src/lifecycle.js";

const tick = () => new Promise<void>((r) => setImmediate(r));

describe("Lifecycle", () => {
  it("goes idle → starting → running → stopping → stopped, and closed() resolves without a reason", async () => {
    const life = new Lifecycle('thing "a"');
    assert.equal(life.state, LifeState.IDLE);
    let release!: () => void;
    const started = life.start(
      () => new Promise<void>((r) => (release = r)),
      async () => {},
    );
    assert.equal(life.state, LifeState.STARTING);
    release();
    await started;
    assert.equal(life.state, LifeState.RUNNING);
    const seen: StopContext[] = [];
    const p1 = life.stop(async (ctx) => {
      seen.push(ctx);
    });
    const p2 = life.stop(async () => assert.fail("stop ran twice"));
    assert.equal(p1, p2);
    assert.equal(life.state, LifeState.STOPPING);
    await p1;
    assert.equal(life.state, LifeState.STOPPED);
    assert.equal(seen.length, 1);
    assert.equal(seen[0]?.wasRunning, true);
    assert.equal(seen[0]?.force, false);
    assert.equal(await life.closed(), undefined);
  });

  it("refuses a second start with ERR_ALREADY_STARTED", async () => {
    const life = new Lifecycle("x");
    await life.start(
      async () => {},
      async () => {},
    );
    await assert.rejects(
      life.start(
        async () => {},
        async () => {},
      ),
      (e) => isRedmeshError(e, ErrorCode.ALREADY_STARTED),
    );
  });

  it("a failed start is undone, rejects, and closed() resolves with its reason", async () => {
    const life = new Lifecycle("x");
    const boom = new Error("boom");
    let undone = undefined as StopContext | undefined;
    await assert.rejects(
      life.start(
        async () => {
          throw boom;
        },
        async (ctx) => {
          undone = ctx;
        },
      ),
      boom,
    );
    assert.equal(life.state, LifeState.STOPPED);
    assert.equal(undone?.wasRunning, false);
    assert.equal(undone?.force, true);
    assert.equal(await life.closed(), boom);
    let ran = false;
    await life.stop(async () => {
      ran = true;
    });
    assert.equal(ran, false, "nothing is left to stop after a failed start");
  });

  it("a stop during start waits for the start, then stops what came up", async () => {
    const life = new Lifecycle("x");
    let release!: () => void;
    const started = life.start(
      () => new Promise<void>((r) => (release = r)),
      async () => {},
    );
    const seen: StopContext[] = [];
    const stopped = life.stop(async (c) => {
      seen.push(c);
    });
    await tick();
    assert.equal(seen.length, 0, "stop waits while start runs");
    release();
    await started;
    await stopped;
    assert.equal(seen[0]?.wasRunning, true);
  });

  it("force in a later call escalates a graceful stop under way", async () => {
    const life = new Lifecycle("x");
    await life.start(
      async () => {},
      async () => {},
    );
    const forcedAt: boolean[] = [];
    const p = life.stop(async (ctx) => {
      forcedAt.push(ctx.force);
      await new Promise<void>((r) => ctx.signal.addEventListener("abort", () => r(), { once: true }));
      forcedAt.push(ctx.force);
    });
    await tick();
    await life.stop(async () => {}, { force: true });
    await p;
    assert.deepEqual(forcedAt, [false, true]);
  });

  it("stopping an object never started runs its down with wasRunning false", async () => {
    const life = new Lifecycle("x");
    let ctx = undefined as StopContext | undefined;
    await life.stop(async (c) => {
      ctx = c;
    });
    assert.equal(ctx?.wasRunning, false);
    assert.equal(life.state, LifeState.STOPPED);
    assert.equal(await life.closed(), undefined);
  });
});

describe("StepList", () => {
  const ctx = (force = false): StopContext => ({
    force,
    signal: new AbortController().signal,
    wasRunning: true,
  });

  it("brings parts up in order and takes them down in reverse", async () => {
    const log: string[] = [];
    const steps = new StepList(
      ["a", "b", "c"].map((name) => ({
        name,
        up: () => {
          log.push(`up ${name}`);
        },
        down: () => {
          log.push(`down ${name}`);
        },
      })),
    );
    await steps.up();
    await steps.down(ctx());
    assert.deepEqual(log, ["up a", "up b", "up c", "down c", "down b", "down a"]);
  });

  it("after a failed up, takes down only the parts that began to come up; a failing down is skipped", async () => {
    const log: string[] = [];
    const warnings: unknown[] = [];
    const logger = {
      warn: (o: unknown) => warnings.push(o),
      info: () => {},
      debug: () => {},
      error: () => {},
    };
    const steps = new StepList(
      [
        { name: "a", up: () => void log.push("up a"), down: () => void log.push("down a") },
        {
          name: "b",
          up: () => {
            log.push("up b");
            throw new Error("b failed");
          },
          down: () => {
            log.push("down b");
            throw new Error("b down failed");
          },
        },
        { name: "c", up: () => void log.push("up c"), down: () => void log.push("down c") },
      ],
      logger as never,
    );
    await assert.rejects(steps.up(), /b failed/);
    await steps.down(ctx(true));
    assert.deepEqual(log, ["up a", "up b", "down b", "down a"]);
    assert.equal(warnings.length, 1);
    assert.deepEqual(steps.names, ["a", "b", "c"]);
  });
});
