/**
 * Real local Redis topologies for tests: a 3-master + 3-replica Cluster and a Sentinel set-up
 * (1 primary, 1 replica, 3 sentinels), each built from throwaway `redis-server` / `redis-sentinel`
 * children on free loopback ports (recipes: ../shared/REDIS-TOPOLOGIES.md §2–§3). Every node is
 * started through {@link startRedis}, so each one is checked to be our own child.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { keySlot } from "../../src/redis/index.js";
import { freePort, startRedis, type TestRedis, waitFor } from "./redis-server.js";

function redisCli(args: string[], timeoutMs = 20_000): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile("redis-cli", args, { timeout: timeoutMs }, (err, stdout, stderr) => {
      if (err) reject(new Error(`redis-cli ${args.join(" ")} failed: ${stderr || err.message}`));
      else resolve(stdout.trim());
    });
  });
}

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", () => resolve(false));
    s.listen(port, "127.0.0.1", () => s.close(() => resolve(true)));
  });
}

/** A free port ≤ 55535 whose cluster bus port (+10000) is free too. */
export async function freeClusterPort(): Promise<number> {
  for (;;) {
    const p = await freePort();
    if (p <= 55_535 && (await portIsFree(p + 10_000))) return p;
  }
}

/** A running local Redis Cluster. */
export interface TestCluster {
  /** Every node, masters first as created (replica roles may change after failovers). */
  readonly nodes: TestRedis[];
  /** `redis://127.0.0.1:<port>` of every node (seed list for clients). */
  readonly urls: string[];
  /** The nodes that are masters now (asks each node's ROLE). */
  masters(): Promise<TestRedis[]>;
  /** Wait until every live node reports `cluster_state:ok` and every replica's link is up. */
  waitHealthy(timeoutMs?: number): Promise<void>;
  /** The node that is master of `slot` now (asks each live master for its own slot ranges). */
  masterOf(slot: number): Promise<TestRedis>;
  /** The slot of a key (`CLUSTER KEYSLOT`; `"{svc}"` gives the slot of every key of service `svc`). */
  keySlot(key: string): Promise<number>;
  /** A node's cluster id (`CLUSTER MYID`). */
  nodeId(node: TestRedis): Promise<string>;
  /** Every live master with the slot ranges it serves now. */
  slotRanges(): Promise<Map<TestRedis, Array<[number, number]>>>;
  /**
   * Move `slots` slots from one master to another with `redis-cli --cluster reshard` (it takes the
   * source's lowest-numbered slots first), keys included, while clients keep running.
   */
  reshard(from: TestRedis, to: TestRedis, slots: number): Promise<void>;
  stop(): Promise<void>;
}

/** The slot ranges a master serves, from its own line of `CLUSTER NODES` (`myself,master … 0-5460`). */
function ownSlotRanges(clusterNodes: string): Array<[number, number]> {
  const mine = clusterNodes.split("\n").find((l) => l.split(" ")[2]?.split(",").includes("myself"));
  if (!mine) return [];
  const parts = mine.trim().split(" ");
  if (!parts[2]?.split(",").includes("master")) return [];
  return parts
    .slice(8)
    .filter((r) => !r.startsWith("[")) // `[slot->-node]`: a slot being migrated, still ours
    .map((r) => {
      const [a, b] = r.split("-");
      return [Number(a), Number(b ?? a)] as [number, number];
    });
}

/** Start 3 masters + 3 replicas and wait until the cluster is usable and the replicas are in sync. */
export async function startCluster(
  options: {
    nodeTimeoutMs?: number;
    /** TLS only: clients, the cluster bus and replication all speak TLS (`rediss://` urls). */
    tls?: { caFile: string; certFile: string; keyFile: string };
  } = {},
): Promise<TestCluster> {
  const nodes: TestRedis[] = [];
  try {
    for (let i = 0; i < 6; i++) {
      const port = await freeClusterPort();
      nodes.push(
        await startRedis({
          port,
          ...(options.tls ? { tls: options.tls } : {}),
          args: [
            ...(options.tls ? ["--tls-cluster", "yes", "--tls-replication", "yes"] : []),
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            "nodes.conf",
            "--cluster-node-timeout",
            String(options.nodeTimeoutMs ?? 2000),
            // Without this, replicas reach master_link_status:up only after 5 s.
            "--repl-diskless-sync-delay",
            "0",
          ],
        }),
      );
    }
    await redisCli([
      ...(options.tls ? ["--tls", "--cacert", options.tls.caFile] : []),
      "--cluster",
      "create",
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      "--cluster-replicas",
      "1",
      "--cluster-yes",
    ]);
  } catch (err) {
    await Promise.all(nodes.map((n) => n.stop()));
    throw err;
  }
  const self: TestCluster = {
    nodes,
    urls: nodes.map((n) => n.url),
    async masters() {
      const roles = await Promise.all(nodes.map((n) => n.cli("ROLE").catch(() => "")));
      return nodes.filter((_, i) => roles[i]?.startsWith("master"));
    },
    async waitHealthy(timeoutMs = 20_000) {
      await waitFor(
        async () => {
          for (const n of nodes) {
            let info: string;
            try {
              info = await n.cli("CLUSTER", "INFO");
            } catch {
              continue; // a killed node
            }
            if (!info.includes("cluster_state:ok")) return false;
            const role = await n.cli("ROLE");
            if (role.startsWith("slave")) {
              const repl = await n.cli("INFO", "replication");
              if (!repl.includes("master_link_status:up")) return false;
            }
          }
          return true;
        },
        { timeoutMs, intervalMs: 50, what: "cluster healthy and replicas in sync" },
      );
    },
    async masterOf(slot) {
      for (const [n, ranges] of await self.slotRanges())
        if (ranges.some(([a, b]) => slot >= a && slot <= b)) return n;
      throw new Error(`no master serves slot ${slot}`);
    },
    async keySlot(key) {
      // Any live node computes it (pure function of the key).
      for (const n of nodes) {
        try {
          return Number(await n.cli("CLUSTER", "KEYSLOT", key));
        } catch {
          /* a killed node: ask the next */
        }
      }
      throw new Error("no live node");
    },
    async nodeId(node) {
      return node.cli("CLUSTER", "MYID");
    },
    async slotRanges() {
      const out = new Map<TestRedis, Array<[number, number]>>();
      for (const n of await self.masters()) out.set(n, ownSlotRanges(await n.cli("CLUSTER", "NODES")));
      return out;
    },
    async reshard(from, to, slots) {
      // redis-cli refuses to reshard until every node agrees about the configuration (a restarted node
      // takes a few gossip rounds to be agreed on again).
      await waitFor(
        async () => {
          const out = await redisCli(["--cluster", "check", `127.0.0.1:${from.port}`]).catch(
            (e: Error) => e.message,
          );
          return out.includes("[OK] All nodes agree") && !/\[(ERR|WARNING)\]/.test(out);
        },
        { timeoutMs: 20_000, intervalMs: 200, what: "redis-cli --cluster check to pass" },
      );
      await redisCli([
        "--cluster",
        "reshard",
        `127.0.0.1:${from.port}`,
        "--cluster-from",
        await self.nodeId(from),
        "--cluster-to",
        await self.nodeId(to),
        "--cluster-slots",
        String(slots),
        "--cluster-yes",
      ]);
    },
    async stop() {
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
  try {
    await self.waitHealthy();
  } catch (err) {
    await self.stop();
    throw err;
  }
  return self;
}

/** A running Sentinel set-up. */
export interface TestSentinel {
  /** The monitored master's name. */
  readonly name: string;
  readonly primary: TestRedis;
  readonly replica: TestRedis;
  /** Sentinel addresses. */
  readonly sentinels: Array<{ host: string; port: number }>;
  /** Ask a sentinel where the master is now. */
  masterPort(): Promise<number>;
  /**
   * `SENTINEL FAILOVER <name>` (a manual switch to the replica), retried while the sentinels answer
   * NOGOODSLAVE (a replica that just came back is not eligible until they have seen it up).
   */
  failover(): Promise<void>;
  stop(): Promise<void>;
}

/** Start 1 primary + 1 replica + 3 sentinels (quorum 2) and wait until they all know each other. */
export async function startSentinel(options: { downAfterMs?: number } = {}): Promise<TestSentinel> {
  const name = "mymaster";
  const primary = await startRedis({ args: ["--repl-diskless-sync-delay", "0"] });
  const replica = await startRedis({ args: ["--replicaof", "127.0.0.1", String(primary.port)] });
  const dir = mkdtempSync(join(tmpdir(), "redmesh-sentinel-"));
  const children: ChildProcess[] = [];
  const sentinels: Array<{ host: string; port: number }> = [];
  const stop = async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await Promise.all(
      children.map((c) =>
        c.exitCode !== null || c.signalCode !== null
          ? undefined
          : new Promise<void>((r) => c.once("exit", () => r())),
      ),
    );
    await Promise.all([primary.stop(), replica.stop()]);
    rmSync(dir, { recursive: true, force: true });
  };
  const exitHook = () => {
    for (const c of children) c.kill("SIGKILL");
  };
  process.once("exit", exitHook);
  try {
    await waitFor(async () => (await replica.cli("INFO", "replication")).includes("master_link_status:up"), {
      timeoutMs: 10_000,
      intervalMs: 20,
      what: "replica in sync",
    });
    for (let i = 0; i < 3; i++) {
      const port = await freePort();
      const conf = join(dir, `sentinel-${port}.conf`);
      writeFileSync(
        conf,
        [
          `port ${port}`,
          "bind 127.0.0.1",
          `dir ${dir}`,
          `sentinel monitor ${name} 127.0.0.1 ${primary.port} 2`,
          `sentinel down-after-milliseconds ${name} ${options.downAfterMs ?? 1000}`,
          `sentinel failover-timeout ${name} 3000`,
          "",
        ].join("\n"),
      );
      // `redis-server --sentinel` is the same program as `redis-sentinel` (which Debian packages apart).
      const child = spawn("redis-server", [conf, "--sentinel"], { stdio: "ignore" });
      child.on("error", () => undefined); // reported by the readiness wait below
      children.push(child);
      sentinels.push({ host: "127.0.0.1", port });
    }
    const ask = (port: number, ...args: string[]) =>
      redisCli(["-h", "127.0.0.1", "-p", String(port), ...args], 3000);
    await waitFor(
      async () => {
        for (const s of sentinels) {
          const info = (await ask(s.port, "SENTINEL", "master", name)).split("\n");
          const field = (k: string) => info[info.indexOf(k) + 1];
          if (field("num-other-sentinels") !== "2" || field("num-slaves") !== "1") return false;
        }
        return true;
      },
      { timeoutMs: 15_000, intervalMs: 50, what: "sentinels to know each other and the replica" },
    );
    return {
      name,
      primary,
      replica,
      sentinels,
      async masterPort() {
        const s = sentinels[0];
        if (!s) throw new Error("no sentinel");
        const out = await ask(s.port, "SENTINEL", "get-master-addr-by-name", name);
        return Number(out.split("\n")[1]);
      },
      async failover() {
        const s = sentinels[0];
        if (!s) throw new Error("no sentinel");
        await waitFor(async () => (await ask(s.port, "SENTINEL", "FAILOVER", name)) === "OK", {
          timeoutMs: 15_000,
          intervalMs: 200,
          what: "SENTINEL FAILOVER accepted",
        });
      },
      async stop() {
        process.off("exit", exitHook);
        await stop();
      },
    };
  } catch (err) {
    process.off("exit", exitHook);
    await stop();
    throw err;
  }
}

/**
 * The cluster slot of a key (the library's own `keySlot`), so tests can pick service names by slot
 * without a round trip per candidate. Checked against `CLUSTER KEYSLOT` in cluster-faults.test.ts.
 */
export const slotOf = (key: string): number => keySlot(key);
