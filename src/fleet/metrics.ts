/**
 * Fleet metrics, on the daemon's registry when fleet mode is on. Label-bounded like every other
 * metric: no user, user id, tag or address — the per-user detail goes to the usage stream.
 */
import type { Registry } from 'prom-client';
import { readCounter, readGauge, readLabeledCounter } from '../metrics/registry.js';
import type { Fleet } from './fleet.js';

export function registerFleetMetrics(r: Registry, fleet: Fleet): void {
  const gauge = (name: string, help: string, read: () => number): void => readGauge(r, name, help, read);
  const counter = (name: string, help: string, read: () => number): void => readCounter(r, name, help, read);
  gauge('turn_fleet_redis_up', 'Whether the connection to Redis is up (1) or not (0).', () =>
    fleet.redis.up ? 1 : 0,
  );
  counter(
    'turn_fleet_redis_errors_total',
    'Redis commands and connections that failed.',
    () => fleet.redis.errors,
  );
  counter(
    'turn_fleet_redis_connects_total',
    'Connections made to Redis (the first and every reconnection).',
    () => fleet.redis.connects,
  );
  gauge('turn_fleet_nodes', 'Nodes of the fleet with a live heartbeat, this one included.', () =>
    fleet.registry.healthy(),
  );
  gauge(
    'turn_fleet_load',
    "This node's load against its fleet thresholds (1 or more: new allocations are redirected).",
    () => fleet.registry.report.load,
  );
  counter(
    'turn_fleet_redirects_total',
    'Allocates answered with 300 Try Alternate to another node.',
    () => fleet.registry.redirects,
  );
  gauge('turn_fleet_quota_leases', 'Fleet quota leases this node holds.', () => fleet.quota.held);
  readLabeledCounter(
    r,
    'turn_fleet_quota_checks_total',
    'Fleet quota checks by result: admitted, refused (486), error_allowed and error_denied (Redis could not answer).',
    ['result'],
    () => {
      const c = fleet.quota.counters;
      return [
        [{ result: 'admitted' }, c.admitted],
        [{ result: 'refused' }, c.refused],
        [{ result: 'error_allowed' }, c.errorAllowed],
        [{ result: 'error_denied' }, c.errorDenied],
      ];
    },
  );
  counter(
    'turn_fleet_revocations_applied_total',
    'Revocations applied from the fleet channel or hash.',
    () => fleet.revocations.applied,
  );
  gauge(
    'turn_fleet_userdb_users',
    'Users read from the Redis user database for the realm.',
    () => fleet.userdb.current.users.size,
  );
  gauge(
    'turn_fleet_userdb_secrets',
    'TURN REST secrets read from the Redis user database for the realm.',
    () => fleet.userdb.current.secrets.length,
  );
  gauge(
    'turn_fleet_usage_records_buffered',
    'Usage records waiting to be written to Redis.',
    () => fleet.usage.buffer.size,
  );
  counter(
    'turn_fleet_usage_records_written_total',
    'Usage records written to the Redis stream.',
    () => fleet.usage.written,
  );
  counter(
    'turn_fleet_usage_records_dropped_total',
    'Usage records dropped because the buffer was full while Redis was unreachable.',
    () => fleet.usage.buffer.dropped,
  );
}
