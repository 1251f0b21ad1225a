/**
 * Reliable work queues: at-least-once delivery on Redis lists, Hydra-compatible (see docs/queues.md).
 * @module
 */
export type {
  Backoff,
  JobOptions,
} from "./job.js";
export {
  type AddResult,
  type BlockingConnection,
  DEFAULT_PROCESS_OPTIONS,
  DEFAULT_QUEUE_OPTIONS,
  type DeadLetter,
  type Job,
  type JobFailure,
  type JobHandler,
  type ProcessOptions,
  type QueueEvents,
  type QueueOptions,
  type QueueRedis,
  type QueueStats,
  type QueueStopOptions,
  type QueueWarning,
  QueueWarningCode,
  type QueueWarningCodeValue,
} from "./options.js";
export { createQueue, Queue } from "./queue.js";
export { type QueueStatsEntry, readQueueStats } from "./stats-source.js";
