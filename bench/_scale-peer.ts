/**
 * Child process of the scale benchmark's messaging part (bench/scale.ts). One redmesh connection
 * (standalone or Cluster: a `redis://` or `redis-cluster://` URL) that either publishes small messages or counts
 * them:
 *
 *   _scale-peer.ts recv <redis-url> <namespace> <services> <sharded|classic>
 *     subscribes to every service channel (or the one classic channel), prints `{"ready":true}`, and on
 *     `stop` (stdin) prints `{"received":n}` and exits.
 *   _scale-peer.ts send <redis-url> <namespace> <services> <sharded|classic> <ms> <inflight> <bytes> <rate>
 *     prints `{"ready":true}`, waits for `go` (stdin), publishes for <ms> keeping up to <inflight>
 *     publishes outstanding (and at most <rate> per second when it is not 0), round-robin over the
 *     services, then prints `{"sent":n,"ms":t,"errors":e}`.
 *
 * `sharded` uses the per-service channels (`…:mc:{<svc>}` in Cluster mode: SPUBLISH on the shard owning
 * the service); `classic` one channel without a hash tag (PUBLISH, broadcast to every Cluster node),
 * the way registry events travel.
 */
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { createKeys, createRedisConnection } from "../src/index.js";

const [role, redis, namespace, servicesArg, mode, msArg, inflightArg, bytesArg, rateArg] =
  process.argv.slice(2);
const S = Number(servicesArg);
const conn = createRedisConnection({ redis });
await conn.connect();
const keys = createKeys({ namespace, cluster: conn.topology === "cluster" });
const channels =
  mode === "classic"
    ? [`${namespace}:bench:classic`]
    : Array.from({ length: S }, (_, i) => keys.serviceChannel(`svc${i}`));
const lines = createInterface({ input: process.stdin });
const nextLine = () => new Promise<string>((resolve) => lines.once("line", resolve));
const say = (o: Record<string, unknown>) => process.stdout.write(`${JSON.stringify(o)}\n`);

if (role === "recv") {
  let received = 0;
  for (const ch of channels)
    await conn.subscribe(ch, () => {
      received++;
    });
  say({ ready: true });
  await nextLine();
  say({ received });
} else {
  const ms = Number(msArg);
  const inflight = Number(inflightArg);
  const payload = "x".repeat(Number(bytesArg));
  const rate = Number(rateArg ?? 0);
  say({ ready: true });
  await nextLine();
  let sent = 0;
  let errors = 0;
  let next = 0;
  const t0 = performance.now();
  const end = t0 + ms;
  const worker = async () => {
    while (performance.now() < end) {
      // Fixed rate: wait while the messages started so far are ahead of schedule.
      while (rate > 0 && next >= ((performance.now() - t0) / 1000) * rate) await sleep(1);
      const ch = channels[next++ % channels.length] as string;
      try {
        await conn.publish(ch, payload);
        sent++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: inflight }, worker));
  say({ sent, ms: performance.now() - t0, errors });
}
lines.close();
await conn.close();
