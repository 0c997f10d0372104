/**
 * `GET /admin/fleet` (behind the bearer token): this node's view of the fleet — every node's
 * heartbeat (allocations, relay pps and bps, CPU, load, draining), Redis's state, the quota in
 * force and the usage stream's buffer.
 */
import type { Fleet } from '../fleet/fleet.js';
import { registerFleetMetrics } from '../fleet/metrics.js';
import type { Metrics } from '../metrics/registry.js';
import { type HttpApi, json } from './server.js';

/** `/admin/fleet` and the fleet metrics, when fleet mode is on. */
export function registerFleetRoutes(http: HttpApi, metrics: Metrics, fleet: Fleet | undefined): void {
  if (fleet === undefined) return;
  registerFleetMetrics(metrics.registry, fleet);
  http.route('GET', '/admin/fleet', () => json(200, fleet.view()), { protected: true });
}
