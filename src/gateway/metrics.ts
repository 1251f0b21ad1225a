/**
 * Prometheus metrics of the gateway, on a registry of its own (never prom-client's global one, so an
 * application embedding the gateway keeps its metrics separate and two gateways in one process do not
 * collide).
 *
 * @module
 */

import { Counter, Gauge, Histogram, Registry } from "prom-client";

/** Label used when a request matched no service. */
export const NO_SERVICE = "-";

/** The gateway's metric set. */
export class GatewayMetrics {
  /** The registry `/metrics` serves. */
  readonly registry = new Registry();
  /** `redmesh_gateway_requests_total{service,method,status}`. */
  readonly requests: Counter<"service" | "method" | "status">;
  /** `redmesh_gateway_request_duration_seconds{service}`. */
  readonly latency: Histogram<"service">;
  /** `redmesh_gateway_upstream_errors_total{service,kind}`. */
  readonly upstreamErrors: Counter<"service" | "kind">;
  /** `redmesh_gateway_requests_in_flight`. */
  readonly inFlight: Gauge;
  /** `redmesh_gateway_websocket_connections`. */
  readonly wsConnections: Gauge;
  /** `redmesh_gateway_websocket_messages_total{direction}`. */
  readonly wsMessages: Counter<"direction">;

  constructor(prefix = "redmesh_gateway_") {
    const registers = [this.registry];
    this.requests = new Counter({
      name: `${prefix}requests_total`,
      help: "HTTP requests answered by the gateway, by target service, method and status",
      labelNames: ["service", "method", "status"] as const,
      registers,
    });
    this.latency = new Histogram({
      name: `${prefix}request_duration_seconds`,
      help: "Time from request to response headers, by target service",
      labelNames: ["service"] as const,
      // 1 ms .. 10 s: a gateway hop is sub-millisecond, upstream work anything up to the timeout.
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.upstreamErrors = new Counter({
      name: `${prefix}upstream_errors_total`,
      help: "Failed upstream attempts, by service and kind (connect, timeout, reset, rpc)",
      labelNames: ["service", "kind"] as const,
      registers,
    });
    this.inFlight = new Gauge({
      name: `${prefix}requests_in_flight`,
      help: "HTTP requests being handled now",
      registers,
    });
    this.wsConnections = new Gauge({
      name: `${prefix}websocket_connections`,
      help: "Open WebSocket connections",
      registers,
    });
    this.wsMessages = new Counter({
      name: `${prefix}websocket_messages_total`,
      help: "WebSocket messages, by direction (in: from clients, out: to clients, dropped)",
      labelNames: ["direction"] as const,
      registers,
    });
  }
}
