/**
 * `GET /admin/fleet` (behind the bearer token): this node's view of the fleet — every node's
 * heartbeat (allocations, relay pps and bps, CPU, load, draining), Redis's state, the quota in
 * force and the usage stream's buffer.
 */
import type { Fleet } from '../fleet/fleet.js';
import { type HttpApi, json } from './server.js';

export function registerFleetRoutes(http: HttpApi, fleet: Fleet): void {
  http.route('GET', '/admin/fleet', () => json(200, fleet.view()), { protected: true });
}
