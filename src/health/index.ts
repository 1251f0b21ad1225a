/**
 * Health snapshots and the health log.
 * @module
 */
export {
  appendHealthLog,
  type CheckResult,
  HEALTH_LOG_MAX,
  HEALTH_LOG_TTL_S,
  type HealthCheck,
  type HealthLogEntry,
  HealthMonitor,
  type HealthMonitorOptions,
  type HealthSnapshot,
  readHealth,
  readHealthLog,
} from "./health.js";
