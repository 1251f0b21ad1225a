import assert from "node:assert/strict";
import { after, afterEach, before, describe, test } from "node:test";
import { z } from "zod";
import { type ConfigChange, createConfigClient, createService, type Service } from "../../src/index.js";
import { randomNamespace, waitFor } from "../helpers/redis-server.js";
import { onTopology, startTopology, type TestTopology } from "../helpers/topology.js";

const schema = z.object({
  port: z.number().int().min(1).max(65535),
  greeting: z.string().default("hello"),
  features: z.array(z.string()).default([]),
});
type AppConfig = z.infer<typeof schema>;

describe(onTopology("shared config"), () => {
  let redis: TestTopology;
  const started: Service<AppConfig>[] = [];
  const make = async (ns: string, name = "web", defaults: AppConfig | undefined = undefined) => {
    const s = createService({
      name,
      namespace: ns,
      redis: redis.url,
      config: defaults === undefined ? { schema } : { schema, defaults },
    });
    const events: string[] = [];
    s.config.on("defaults", () => events.push("defaults"));
    await s.start();
    started.push(s);
    return { s, events };
  };

  before(async () => {
    redis = await startTopology();
  });
  afterEach(async () => {
    await redis.checkInvariants();
  });
  after(async () => {
    await Promise.all(started.map((s) => s.stop()));
    await redis?.stop();
  });

  test("an instance starting with no config uses its defaults and says so", async () => {
    const ns = randomNamespace();
    const { s, events } = await make(ns, "web", { port: 8080, greeting: "hi", features: [] });
    assert.deepEqual(events, ["defaults"]);
    assert.equal(s.config.source, "defaults");
    assert.equal(s.config.version, undefined);
    const cfg = await s.config.get();
    // Typed by the schema: this line would not compile if get() returned unknown.
    const port: number = cfg.port;
    assert.equal(port, 8080);
    // …and says so through the service's logger.
    const said: string[] = [];
    const rec = (_o: unknown, m?: string) => void said.push(String(m ?? _o));
    const logged = createService({
      name: "logged",
      namespace: ns,
      redis: redis.url,
      logger: { debug: rec, info: rec, warn: rec, error: rec },
      config: { defaults: { port: 1 } },
    });
    await logged.start();
    await logged.stop();
    assert.ok(said.includes("no config stored for the service: using the defaults"), said.join(" | "));
    const bare = await make(ns, "bare");
    await assert.rejects(bare.s.config.get(), { code: "ERR_CONFIG_NOT_FOUND" });
    // Defaults are validated by the schema at construction.
    assert.throws(
      () => createService({ name: "x", config: { schema, defaults: { port: 0 } as AppConfig } }),
      /port/,
    );
  });

  test("set → every one of 3 instances sees change (old, new) within 100 ms", async () => {
    const ns = randomNamespace();
    const instances = await Promise.all(
      [1, 2, 3].map(() => make(ns, "web", { port: 1, greeting: "d", features: [] })),
    );
    const seen = instances.map(({ s }) => {
      return new Promise<{ at: number; old: AppConfig | undefined; next: AppConfig; info: ConfigChange }>(
        (resolve) => {
          s.config.once("change", (old, next, info) => resolve({ at: performance.now(), old, next, info }));
        },
      );
    });
    const t0 = performance.now();
    const { version } = await (instances[0] as { s: Service<AppConfig> }).s.config.set({
      port: 9000,
      greeting: "hey",
      features: ["a"],
    });
    assert.equal(version, "1");
    const got = await Promise.all(seen);
    for (const g of got) {
      assert.ok(g.at - t0 < 100, `change seen after ${(g.at - t0).toFixed(1)} ms`);
      assert.deepEqual(g.old, { port: 1, greeting: "d", features: [] });
      assert.deepEqual(g.next, { port: 9000, greeting: "hey", features: ["a"] });
      assert.deepEqual(g.info, { version: "1", previousVersion: undefined });
    }
    for (const { s } of instances) {
      assert.equal((await s.config.get()).port, 9000);
      assert.equal(s.config.version, "1");
      assert.equal(s.config.source, "redis");
    }
    // A later instance loads the stored config (no defaults event).
    const late = await make(ns, "web", { port: 1, greeting: "d", features: [] });
    assert.deepEqual(late.events, []);
    assert.equal((await late.s.config.get()).greeting, "hey");
    // The schema's defaults are applied before storing.
    await late.s.config.set({ port: 81 } as AppConfig);
    assert.deepEqual(await late.s.config.get(), { port: 81, greeting: "hello", features: [] });
    assert.equal(late.s.config.version, "2");
  });

  test("an invalid config is rejected with the schema's message and the active one stays", async () => {
    const ns = randomNamespace();
    const { s } = await make(ns);
    await s.config.set({ port: 80, greeting: "a", features: [] }, { version: "1.0.0" });
    let changes = 0;
    s.config.on("change", () => changes++);
    await assert.rejects(s.config.set({ port: 70000 } as AppConfig), (err: Error & { code?: string }) => {
      assert.equal(err.code, "ERR_VALIDATION");
      assert.match(err.message, /port: Too big/i);
      return true;
    });
    await assert.rejects(s.config.set({ port: "80" } as unknown as AppConfig), /port: Invalid input/i);
    assert.equal(s.config.version, "1.0.0");
    assert.deepEqual(await s.config.versions(), ["1.0.0"]);
    assert.equal(await redis.cli("GET", s.keys.configActive("web")), "1.0.0");
    assert.equal(changes, 0);
    // Versions are immutable; labels are checked.
    await assert.rejects(s.config.set({ port: 1, greeting: "", features: [] }, { version: "1.0.0" }), {
      code: "ERR_CONFIG_CONFLICT",
    });
    await assert.rejects(s.config.set({ port: 1, greeting: "", features: [] }, { version: "web:2" }), {
      code: "ERR_VALIDATION",
    });
    // Optimistic concurrency: ifVersion must match the active version.
    await assert.rejects(s.config.set({ port: 2, greeting: "", features: [] }, { ifVersion: "0.9" }), {
      code: "ERR_CONFIG_CONFLICT",
    });
    const r = await s.config.set({ port: 2, greeting: "", features: [] }, { ifVersion: "1.0.0" });
    assert.deepEqual(r, { version: "1.0.1", previousVersion: "1.0.0" });
  });

  test("history and rollback (seen by every instance)", async () => {
    const ns = randomNamespace();
    const a = await make(ns);
    const b = await make(ns);
    for (const port of [10, 20, 30]) await a.s.config.set({ port, greeting: "x", features: [] });
    await waitFor(() => b.s.config.version === "3", { what: "b at version 3" });
    const changed = new Promise<[AppConfig | undefined, AppConfig, ConfigChange]>((resolve) =>
      b.s.config.once("change", (...args) => resolve(args)),
    );
    const back = await a.s.config.rollback("1");
    assert.equal(back.port, 10);
    const [old, next, info] = await changed;
    assert.equal(old?.port, 30);
    assert.equal(next.port, 10);
    assert.deepEqual(info, { version: "1", previousVersion: "3" });
    const h = await b.s.config.history();
    assert.deepEqual(
      h.map((x) => [x.version, (x.value as AppConfig).port, x.active]),
      [
        ["1", 10, true],
        ["2", 20, false],
        ["3", 30, false],
      ],
    );
    // A new version after a rollback still gets a fresh label.
    assert.equal((await a.s.config.set({ port: 40, greeting: "x", features: [] })).version, "4");
    await assert.rejects(a.s.config.rollback("99"), { code: "ERR_CONFIG_NOT_FOUND" });
    // A stored version that fails the schema cannot be rolled back to.
    await redis.cli("HSET", a.s.keys.configs("web"), "0", '{"port":"nope"}');
    await assert.rejects(a.s.config.rollback("0"), { code: "ERR_VALIDATION" });
    assert.equal(await redis.cli("GET", a.s.keys.configActive("web")), "4");
    // Natural order: 10 after 9.
    await a.s.config.set({ port: 50, greeting: "x", features: [] }, { version: "9" });
    assert.equal((await a.s.config.set({ port: 60, greeting: "x", features: [] })).version, "10");
    assert.deepEqual(await a.s.config.versions(), ["0", "1", "2", "3", "4", "9", "10"]);
  });

  test("a standalone client (e.g. the CLI) sets another service's config; an instance follows", async () => {
    const ns = randomNamespace();
    const { s } = await make(ns, "api", { port: 1, greeting: "", features: [] });
    // Keys built as the CLI builds them for this topology (hash tags on a Cluster).
    const conn = await redis.connect();
    try {
      const client = createConfigClient({ redis: conn, keys: redis.keys(ns), service: "api" });
      await assert.rejects(client.get(), { code: "ERR_CONFIG_NOT_FOUND" });
      const seen = new Promise<AppConfig>((resolve) => s.config.once("change", (_o, n) => resolve(n)));
      await client.set({ port: 5555, greeting: "cli", features: [] });
      assert.equal((await seen).port, 5555);
      assert.deepEqual(await client.get(), { port: 5555, greeting: "cli", features: [] });
      // A config this instance's schema rejects: the instance keeps what it has and says so.
      const invalid = new Promise<string>((resolve) => s.config.once("invalid", (_e, v) => resolve(v)));
      await client.set({ port: "bad" });
      assert.equal(await invalid, "2");
      assert.equal((await s.config.get()).port, 5555);
      await assert.rejects(client.set({ nested: { big: 1n } }), { code: "ERR_SERIALIZATION" });
      await assert.rejects(client.set([1, 2] as unknown), /JSON object/);
    } finally {
      await conn.close();
    }
  });

  test("stop() tears the config subscription down", async () => {
    const ns = randomNamespace();
    const { s } = await make(ns, "gone");
    // Every node's clients (on a Cluster the subscription lives on the shard owning {gone}).
    const clients = async () => (await redis.cliAll("CLIENT", "LIST")).join("\n");
    const name = `redmesh:gone:${s.instanceId.slice(0, 8)}`;
    assert.ok((await clients()).includes(name), "the instance's connections are listed while it runs");
    await s.stop();
    assert.ok(!(await clients()).includes(name));
  });
});
