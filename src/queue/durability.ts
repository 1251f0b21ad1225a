/**
 * Does Redis keep this queue's jobs? Two checks: the configuration ({@link QueueDurability.check}:
 * eviction policy and persistence, read when a worker starts) and, after a reconnect, whether the
 * data is still there ({@link QueueDurability.verifyData}, against the witness that
 * {@link QueueDurability.announce} writes on first use).
 *
 * @module
 */

import type { Logger } from "../logger.js";
import type { RedisLike } from "../redis/index.js";
import { pipelineOrThrow, toRecord } from "./admin.js";
import {
  type QueueEmitter,
  type QueueSettings,
  type QueueWarning,
  QueueWarningCode,
  reasonOf,
} from "./options.js";

/** Options of {@link QueueDurability}. */
export interface QueueDurabilityOptions {
  /** Command connection. */
  redis: RedisLike;
  /** The queue's settings and keys. */
  settings: QueueSettings;
  /** Where warnings are logged. */
  logger: Logger;
  /** Where warnings are emitted (the `Queue`). */
  events: QueueEmitter;
}

/** The durability checks of one queue (see the module comment). */
export class QueueDurability {
  readonly #redis: RedisLike;
  readonly #s: QueueSettings;
  readonly #logger: Logger;
  readonly #events: QueueEmitter;
  #announced = false;
  #warned = false;

  constructor(options: QueueDurabilityOptions) {
    this.#redis = options.redis;
    this.#s = options.settings;
    this.#logger = options.logger;
    this.#events = options.events;
  }

  /** Record this queue's name in the service's queue index (once; tools list queues from it). */
  announce(): void {
    if (this.#announced) return;
    this.#announced = true;
    this.#redis.command(["SADD", this.#s.keys.names, this.#s.name]).catch(() => {
      this.#announced = false; // try again next time
    });
  }

  /**
   * After a reconnect: did Redis keep this queue's data? The queue's entry in the service's queue
   * index, written on first use, is the witness: if it is gone, Redis lost (or someone flushed) the
   * queue's keys, so jobs pending, in flight or delayed before are gone too. Logged as an error and
   * emitted as a `QUEUE_DATA_LOST` warning; the queue then carries on with what Redis has. Resolves
   * with `true` when data was lost. Never rejects.
   */
  async verifyData(): Promise<boolean> {
    if (!this.#announced) return false;
    const { service, name } = this.#s;
    let present: unknown;
    try {
      present = await this.#redis.command(["SISMEMBER", this.#s.keys.names, name]);
    } catch {
      return false; // unknown now; the next reconnect checks again
    }
    if (Number(present) === 1) return false;
    const w: QueueWarning = {
      code: QueueWarningCode.DATA_LOST,
      message: `Redis no longer holds queue "${service}/${name}": it restarted without persistence or was flushed; jobs queued before are lost`,
      data: { service, queue: name },
    };
    this.#logger.error({ service, queue: name }, w.message);
    if (this.#events.listenerCount("warning") > 0) this.#events.emit("warning", w);
    this.#announced = false;
    this.announce();
    return true;
  }

  /**
   * Read Redis' eviction policy and persistence; emit a `warning` (and log it) when the queue is not
   * durable. Resolves with the warnings (empty when all is well).
   */
  async check(): Promise<QueueWarning[]> {
    const warnings: QueueWarning[] = [];
    try {
      // On a Cluster, ask the master holding this queue (nodes may be configured differently).
      const res = await pipelineOrThrow(
        this.#redis,
        [
          ["CONFIG", "GET", "maxmemory-policy"],
          ["CONFIG", "GET", "appendonly"],
          ["CONFIG", "GET", "save"],
        ],
        { routeByKey: this.#s.keys.pending },
      );
      const get = (r: unknown, k: string) => String(toRecord(r)[k] ?? "");
      const policy = get(res[0], "maxmemory-policy");
      const aof = get(res[1], "appendonly");
      const save = get(res[2], "save");
      if (policy !== "noeviction") {
        warnings.push({
          code: QueueWarningCode.EVICTION_POLICY,
          message: `Redis maxmemory-policy is "${policy}": under memory pressure Redis may evict queue keys and lose jobs; set it to "noeviction"`,
          data: { maxmemoryPolicy: policy },
        });
      }
      if (aof !== "yes") {
        warnings.push({
          code: QueueWarningCode.NO_PERSISTENCE,
          message:
            save.trim() === ""
              ? "Redis has no persistence (appendonly no, no save points): a Redis restart loses every queued job; enable appendonly"
              : `Redis persists by snapshots only (save "${save}"): a Redis crash loses jobs written since the last snapshot; enable appendonly`,
          data: { appendonly: aof, save },
        });
      }
    } catch (err) {
      warnings.push({
        code: QueueWarningCode.UNKNOWN,
        message: `could not read Redis' configuration (${reasonOf(err)}): queue durability unknown`,
        data: {},
      });
    }
    if (!this.#warned && warnings.length > 0) {
      this.#warned = true;
      for (const w of warnings) {
        this.#logger.warn(
          { queue: this.#s.name, service: this.#s.service, code: w.code, ...w.data },
          w.message,
        );
        if (this.#events.listenerCount("warning") > 0) this.#events.emit("warning", w);
      }
    }
    return warnings;
  }
}
