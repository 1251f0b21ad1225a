/**
 * The live web dashboard, published as the `redmesh/dashboard` subpath so services never load it.
 *
 * ```ts
 * import { createDashboard } from "redmesh/dashboard";
 * const dash = createDashboard({ redis: "redis://127.0.0.1:6379", namespace: "redmesh" });
 * const { url } = await dash.listen({ port: 8090 }); // or mount dash.handler in your own server
 * // … later
 * await dash.stop();
 * ```
 * @module
 */
export {
  createDashboard,
  Dashboard,
  type DashboardListenOptions,
  type DashboardOptions,
  type DashboardStats,
  DEFAULT_DASHBOARD_OPTIONS,
} from "./dashboard.js";
export {
  type CollectContext,
  collectSnapshot,
  type DashboardHealth,
  type DashboardInstance,
  type DashboardQueueStats,
  type DashboardService,
  type DashboardSnapshot,
  type QueueStatsSource,
} from "./snapshot.js";
