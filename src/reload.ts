/**
 * SIGHUP reload: which keys apply live, and the configuration a reload leaves in force. Keys that
 * need a restart keep their running values (a changed listening port is only bound after a
 * restart, so `/ice-servers` and everything else keep describing what is bound); the next reload
 * compares the file with the running configuration, so setting such a key back clears its warning.
 */

import { KEYS } from './config/keys.js';
import { diffConfig } from './config/load.js';
import type { Config } from './config/types.js';

/** Keys a SIGHUP applies without a restart. */
export const LIVE_KEYS: ReadonlySet<string> = new Set([
  'realm',
  'user',
  'use-auth-secret',
  'static-auth-secret',
  'stale-nonce',
  'allowed-peer-ip',
  'denied-peer-ip',
  'user-quota',
  'total-quota',
  'max-bps',
  'user-max-bps',
  'bps-capacity',
  'relay-payload-policy',
  'mobility',
  'max-allocate-lifetime',
  'allocation-default-address-family',
  'channel-lifetime',
  'permission-lifetime',
  'max-permissions',
  'max-channels',
  'tcp-relay',
  'tcp-relay-max-connections',
  'unauthorized-ratelimit-rps',
  'verified-source-lifetime',
  'max-verified-sources',
  'no-sha256',
  'rfc5766-channel-numbers',
  'software-attribute',
  'alternate-server',
  'drain-timeout',
  'api-token',
  'log-level',
  'fleet-user-quota',
  'fleet-quota-on-error',
  'fleet-max-allocations',
  'fleet-max-cpu',
  'fleet-readyz-capacity',
  'fleet-readyz-redis',
]);

export interface ReloadPlan {
  /** The configuration in force after the reload. */
  readonly next: Config;
  /** Changed keys applied live. */
  readonly applied: string[];
  /** Changed keys that need a restart (they keep their running values). */
  readonly needsRestart: string[];
}

/** What reloading `file` over the `running` configuration does. */
export function planReload(running: Config, file: Config): ReloadPlan {
  const changed = diffConfig(running, file);
  return {
    next: runningConfig(running, file),
    applied: changed.filter((k) => LIVE_KEYS.has(k)),
    needsRestart: changed.filter((k) => !LIVE_KEYS.has(k)),
  };
}

/** The live keys from the file just read, every other key as it runs now. */
export function runningConfig(running: Config, file: Config): Config {
  const merged: Record<string, unknown> = { ...running };
  for (const spec of KEYS) if (LIVE_KEYS.has(spec.name)) merged[spec.field] = file[spec.field];
  return Object.freeze(merged as unknown as Config);
}
