/**
 * Statistics of every queue of some services, for tools (the dashboard, the CLI): queue names come
 * from each service's queue index (no SCAN), the figures from {@link Queue.stats}.
 * @module
 */
import type { Keys } from "../keys.js";
import type { QueueRedis, QueueStats } from "./options.js";
import { createQueue } from "./queue.js";

/** One queue's figures, with where it lives. */
export interface QueueStatsEntry extends QueueStats {
  service: string;
  queue: string;
}

/** Read the stats of every indexed queue of `services` (sorted by service, then queue). */
export async function readQueueStats(
  redis: QueueRedis,
  keys: Keys,
  services: readonly string[],
): Promise<QueueStatsEntry[]> {
  const indexes = (await redis.pipeline(services.map((s) => ["SMEMBERS", keys.queueIndex(s)]))) as unknown[];
  const targets: Array<{ service: string; queue: string }> = [];
  services.forEach((service, i) => {
    const names = indexes[i];
    if (Array.isArray(names))
      for (const q of names) if (typeof q === "string") targets.push({ service, queue: q });
  });
  const out = await Promise.all(
    targets.map(async ({ service, queue }) => {
      // A queue object does no I/O until used, and stats() starts nothing: no stop() needed.
      const q = createQueue({ redis, keys, service, name: queue, checkDurability: false });
      return { service, queue, ...(await q.stats()) };
    }),
  );
  return out.sort((a, b) => a.service.localeCompare(b.service) || a.queue.localeCompare(b.queue));
}
