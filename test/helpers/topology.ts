/**
 * One test suite, every Redis topology: the layer the matrix suites (registry, messaging/RPC, queue,
 * log, config) use instead of a bare `startRedis()`.
 *
 * `REDMESH_TEST_TOPOLOGY` selects the topology (`standalone` by default, `cluster`, `sentinel`);
 * `npm test` runs the matrix suites once more with it set (scripts/run-tests.mjs). A suite calls
 * {@link useTopology} once per file: that starts one topology for the whole file (a Cluster takes 1–3 s),
 * and, on a Cluster, checks after every test what must hold there:
 * - no command got a `CROSSSLOT` reply on any node (`INFO errorstats`, which also counts replies to
 *   other clients, child processes included);
 * - every key under a test namespace is either one of the two namespace-wide keys (the `nodes` hash and
 *   the service index) or carries the `{<svc>}` hash tag right after `<ns>:service:`, so all keys of a
 *   service share one slot.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, afterEach, before } from "node:test";
import { createKeys, createRedisConnection, type Keys, type RedisHandle } from "../../src/index.js";
import { startCluster, startSentinel, type TestCluster, type TestSentinel } from "./redis-cluster.js";
import { type StartRedisOptions, startRedis, type TestRedis } from "./redis-server.js";

/** The topologies the matrix runs on. */
export const TopologyKind = {
  STANDALONE: "standalone",
  CLUSTER: "cluster",
  SENTINEL: "sentinel",
} as const;
export type TopologyKindValue = (typeof TopologyKind)[keyof typeof TopologyKind];

/** The topology this test process runs its matrix suites on (`REDMESH_TEST_TOPOLOGY`). */
export function matrixTopology(): TopologyKindValue {
  const v = process.env.REDMESH_TEST_TOPOLOGY ?? TopologyKind.STANDALONE;
  if (!Object.values(TopologyKind).includes(v as TopologyKindValue))
    throw new Error(`REDMESH_TEST_TOPOLOGY=${v}: use standalone, cluster or sentinel`);
  return v as TopologyKindValue;
}

/** A suite title with the topology appended (`… [cluster]`), so reports say where a test ran. */
export function onTopology(title: string): string {
  const kind = matrixTopology();
  return kind === TopologyKind.STANDALONE ? title : `${title} [${kind}]`;
}

/**
 * Test options for a test that only makes sense on one server (it kills, pauses or restarts it, or
 * checks byte-level single-server behaviour): skipped elsewhere with the reason.
 */
export function standaloneOnly(why: string): { skip: string | false } {
  return { skip: matrixTopology() === TopologyKind.STANDALONE ? false : `standalone only: ${why}` };
}

/** Test options for a check that only exists on a Cluster (slots, sharded channels). */
export function clusterOnly(why: string): { skip: string | false } {
  return { skip: matrixTopology() === TopologyKind.CLUSTER ? false : `cluster only: ${why}` };
}

/** A running topology and what suites need from it. */
export interface TestTopology {
  readonly kind: TopologyKindValue;
  /** The `redis:` option for services, connections and child processes (a URL string of the topology). */
  readonly url: string;
  /** The standalone server (only on `standalone`; for fault tests that kill or pause it). */
  readonly server: TestRedis | undefined;
  /** The Cluster (only on `cluster`). */
  readonly cluster: TestCluster | undefined;
  /** The Sentinel set-up (only on `sentinel`). */
  readonly sentinel: TestSentinel | undefined;
  /** Key builder for a namespace, as a service on this topology builds it (hash tags on a Cluster). */
  keys(namespace: string): Keys;
  /**
   * Run a command like `redis-cli` (trimmed stdout, arrays one element a line). On a Cluster it
   * follows MOVED redirections (`redis-cli -c`), so keyed commands reach the owning node; on Sentinel it
   * runs on the primary.
   */
  cli(...args: string[]): Promise<string>;
  /** Run a command on every data node (every master on a Cluster; the primary otherwise). */
  cliAll(...args: string[]): Promise<string[]>;
  /** The data node serving `key` (its slot's master on a Cluster; the primary otherwise). */
  nodeFor(key: string): Promise<TestRedis>;
  /** A new, connected connection of this topology (close it yourself). */
  connect(): Promise<RedisHandle>;
  /** Set a server config parameter on every data node (`CONFIG SET` on each master). */
  configSetAll(parameter: string, value: string): Promise<void>;
  /** Assert the Cluster invariants (no CROSSSLOT, every key tagged); a no-op on other topologies. */
  checkInvariants(): Promise<void>;
  stop(): Promise<void>;
}

function redisCli(port: number, args: string[], flags: string[] = []): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      "redis-cli",
      [...flags, "-h", "127.0.0.1", "-p", String(port), ...args],
      { timeout: 10_000 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`redis-cli ${args.join(" ")}: ${stderr || err.message}`));
        else resolve(stdout.trim());
      },
    );
  });
}

/** Slot ranges per master port, from `CLUSTER NODES`. */
async function slotOwners(cluster: TestCluster): Promise<Array<{ port: number; from: number; to: number }>> {
  const masters = await cluster.masters();
  const text = await (masters[0] as TestRedis).cli("CLUSTER", "NODES");
  const out: Array<{ port: number; from: number; to: number }> = [];
  for (const line of text.split("\n")) {
    const f = line.trim().split(" ");
    if (!f[2]?.includes("master") || f[2].includes("fail")) continue;
    const port = Number(/:(\d+)@/.exec(f[1] ?? "")?.[1]);
    for (const range of f.slice(8)) {
      if (range.startsWith("[")) continue; // a slot being migrated
      const [a, b] = range.split("-");
      out.push({ port, from: Number(a), to: Number(b ?? a) });
    }
  }
  return out;
}

/**
 * The key rule on a Cluster: `<ns>:service:nodes` and `<ns>:rm:services` are the only keys without a
 * hash tag; every other key is `<ns>:service:{<svc>}:…`.
 */
const SHARED_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*:(service:nodes|rm:services)$/;
const TAGGED_KEY_RE = /^[A-Za-z0-9][A-Za-z0-9._-]*:service:\{[a-z0-9][a-z0-9._-]*\}:/;

/** Start a topology of the given kind. */
export async function startTopology(
  kind: TopologyKindValue = matrixTopology(),
  options: { standalone?: StartRedisOptions } = {},
): Promise<TestTopology> {
  if (kind === TopologyKind.CLUSTER) {
    const cluster = await startCluster();
    const seed = (await cluster.masters())[0] as TestRedis;
    const masters = () => cluster.masters();
    const self: TestTopology = {
      kind,
      url: `redis-cluster://${cluster.nodes.map((n) => `127.0.0.1:${n.port}`).join(",")}`,
      server: undefined,
      cluster,
      sentinel: undefined,
      keys: (namespace) => createKeys({ namespace, cluster: true }),
      cli: (...args) => redisCli(seed.port, args, ["-c"]),
      cliAll: async (...args) => Promise.all((await masters()).map((m) => m.cli(...args))),
      async nodeFor(key) {
        const slot = Number(await seed.cli("CLUSTER", "KEYSLOT", key));
        const owner = (await slotOwners(cluster)).find((r) => slot >= r.from && slot <= r.to);
        const node = cluster.nodes.find((n) => n.port === owner?.port);
        if (!node) throw new Error(`no master owns slot ${slot}`);
        return node;
      },
      connect: () => connect(self.url),
      async configSetAll(parameter, value) {
        await self.cliAll("CONFIG", "SET", parameter, value);
      },
      async checkInvariants() {
        const ms = await masters();
        const crossslot: string[] = [];
        for (const m of ms) {
          const line = /errorstat_CROSSSLOT:\S*/.exec(await m.cli("INFO", "errorstats"));
          if (!line) continue;
          crossslot.push(`:${m.port} ${line[0]}`);
          await m.cli("CONFIG", "RESETSTAT"); // blame only the test that caused it
        }
        assert.deepEqual(crossslot, [], "no node replied CROSSSLOT");
        const keys = (await Promise.all(ms.map((m) => m.cli("KEYS", "*"))))
          .flatMap((k) => k.split("\n"))
          .filter((k) => k !== "");
        const untagged = keys.filter((k) => !SHARED_KEY_RE.test(k) && !TAGGED_KEY_RE.test(k));
        assert.deepEqual(untagged, [], "every key but the two shared ones carries its {service} tag");
      },
      stop: () => cluster.stop(),
    };
    return self;
  }
  if (kind === TopologyKind.SENTINEL) {
    const sentinel = await startSentinel();
    const primary = sentinel.primary;
    const self: TestTopology = {
      kind,
      url: `redis-sentinel://${sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(",")}/${sentinel.name}`,
      server: undefined,
      cluster: undefined,
      sentinel,
      keys: (namespace) => createKeys({ namespace }),
      cli: (...args) => primary.cli(...args),
      cliAll: async (...args) => [await primary.cli(...args)],
      nodeFor: async () => primary,
      connect: () => connect(self.url),
      async configSetAll(parameter, value) {
        await primary.cli("CONFIG", "SET", parameter, value);
      },
      async checkInvariants() {},
      stop: () => sentinel.stop(),
    };
    return self;
  }
  const server = await startRedis(options.standalone);
  const self: TestTopology = {
    kind,
    url: server.url,
    server,
    cluster: undefined,
    sentinel: undefined,
    keys: (namespace) => createKeys({ namespace }),
    cli: (...args) => server.cli(...args),
    cliAll: async (...args) => [await server.cli(...args)],
    nodeFor: async () => server,
    connect: () => connect(self.url),
    async configSetAll(parameter, value) {
      await server.cli("CONFIG", "SET", parameter, value);
    },
    async checkInvariants() {},
    stop: () => server.stop(),
  };
  return self;
}

async function connect(url: string): Promise<RedisHandle> {
  const conn = createRedisConnection({ redis: url });
  try {
    await conn.connect({ timeoutMs: 10_000 });
  } catch (err) {
    conn.destroy();
    throw err;
  }
  return conn;
}

/**
 * Start the matrix topology for the enclosing suite (call at the top of a file or `describe`): started
 * before its first test, checked after each test, stopped after the last. The returned object's getters
 * are usable from the first test on.
 */
export function useTopology(
  options: {
    kind?: TopologyKindValue;
    standalone?: StartRedisOptions;
    /** Check the invariants after each test (the service harness does it itself, before its services stop). @default true */
    checkAfterEach?: boolean;
  } = {},
): TestTopology {
  let topo: TestTopology | undefined;
  before(async () => {
    topo = await startTopology(options.kind ?? matrixTopology(), options);
  });
  if (options.checkAfterEach !== false)
    afterEach(async () => {
      await topo?.checkInvariants();
    });
  after(async () => {
    await topo?.stop();
  });
  const current = (): TestTopology => {
    if (!topo) throw new Error("the suite's topology is not started yet (use it inside tests or hooks)");
    return topo;
  };
  return new Proxy({} as TestTopology, {
    get: (_t, prop) => {
      const t = current();
      const v = Reflect.get(t, prop);
      return typeof v === "function" ? v.bind(t) : v;
    },
  });
}
