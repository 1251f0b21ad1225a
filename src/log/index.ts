/**
 * Distributed logging: structured entries in each service's capped Redis Stream, a pino destination,
 * and readers (merged tail, query). Also published as the `redmesh/log` subpath.
 * @module
 */
export { type PinoDestination, pinoDestination } from "./pino.js";
export {
  type DuplicableRedis,
  idBefore,
  type QueryOptions,
  queryLogs,
  type TailConnection,
  type TailOptions,
  tailLogs,
} from "./reader.js";
export {
  createServiceLog,
  DEFAULT_LOG_OPTIONS,
  type LogMethod,
  type LogOptions,
  type LogStats,
  type LogWriter,
  ServiceLog,
  type ServiceLogOptions,
} from "./service-log.js";
export {
  compareEntries,
  compareIds,
  isLogLevel,
  type LogEntry,
  LogLevel,
  type LogLevelName,
  levelFromNumber,
  MAX_FIELDS_CHARS,
  MAX_MSG_CHARS,
  parseStreamEntry,
} from "./types.js";
