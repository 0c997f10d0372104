/**
 * Which data plane relays UDP clients (`data-plane`, `relay-threads`): the native one when it is
 * asked for or `auto` and the addon loads, else the JavaScript one. Asking for `native` where it
 * cannot run is a configuration error (exit 78), found by check-config as by start.
 */
import { availableParallelism } from 'node:os';
import type { Config } from '../../config/types.js';
import { ConfigError } from '../../errors.js';
import { loadNativeAddon, type NativeAddon } from './addon.js';

export type DataPlaneChoice =
  | { readonly plane: 'native'; readonly addon: NativeAddon; readonly threads: number }
  | { readonly plane: 'js'; readonly reason: string };

export function selectDataPlane(config: Config): DataPlaneChoice {
  if (config.dataPlane === 'js') return { plane: 'js', reason: 'data-plane is js' };
  if (config.relayThreads === 0) return { plane: 'js', reason: 'relay-threads is 0' };
  if (config.noUdp) return { plane: 'js', reason: 'no UDP listener (no-udp)' };
  const loaded = loadNativeAddon();
  if ('error' in loaded) {
    if (config.dataPlane === 'native')
      throw new ConfigError(
        'data-plane',
        `native, but the native data plane is unavailable: ${loaded.error}`,
      );
    return { plane: 'js', reason: `native data plane unavailable: ${loaded.error}` };
  }
  const threads = config.relayThreads > 0 ? config.relayThreads : availableParallelism();
  return { plane: 'native', addon: loaded.addon, threads };
}
