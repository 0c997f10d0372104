/**
 * What the daemon would refuse at start, found from the configuration alone, and the settings
 * that would have no effect. `turnpike check-config` and `turnpike start` (and `createServer`) run
 * the same checks, so a configuration that passes `check-config` does not fail to start for a
 * reason the configuration already shows. Failures that depend on the host (a port another
 * process holds, an address this machine does not have) stay with the listeners (`BindError`).
 *
 * `checkStartup` throws a ConfigError naming the key:
 *  - `cert`/`pkey`: with TLS on, the files must be readable, hold a PEM certificate and an
 *    unencrypted PEM key, and the key must be the certificate's (the TLS context is built here
 *    exactly as the listener builds it);
 *  - `no-udp`: at least one listener (UDP, TCP, or TLS with cert and pkey);
 *  - `listening-ip`: no address twice, no specific address beside the wildcard of its family (the
 *    second bind would fail with EADDRINUSE), no IPv4-mapped IPv6 address (EINVAL);
 *  - `prometheus-port`: the HTTP listener must not take a TCP port a TCP or TLS listener binds;
 *  - `data-plane`: native only where the native data plane is built and loads.
 *
 * `configWarnings` lists keys set to something other than their default that change nothing,
 * each as "<key> has no effect: <why>".
 */
import { formatIp, parseIp } from '../core/ip.js';
import { ConfigError } from '../errors.js';
import { loadCertificatePair } from '../io/certificates.js';
import { selectDataPlane } from '../io/native/select.js';
import { KEYS, keySpec } from './keys.js';
import type { Config } from './types.js';

/** TLS listens only with both files and without `no-tls`. */
export function isTlsOn(config: Config): boolean {
  return !config.noTls && config.cert !== undefined && config.pkey !== undefined;
}

/** TURN (Allocate and the rest) is served only with users or REST credentials. */
function isTurnOn(config: Config): boolean {
  // With redis-url, users may come from the Redis user database.
  return config.users.length > 0 || config.useAuthSecret || config.redisUrl !== undefined;
}

/** Any TCP or TLS listener. */
function hasStreams(config: Config): boolean {
  return !config.noTcp || isTlsOn(config);
}

/**
 * Throws the ConfigError (naming the key) for the first problem that would stop the daemon from
 * starting with `config`; returns when there is none. Reads the certificate files when TLS is on.
 */
export function checkStartup(config: Config): void {
  checkListenerEnabled(config);
  checkListenAddresses(config);
  checkHttpPort(config);
  selectDataPlane(config);
  if (isTlsOn(config) && config.cert !== undefined && config.pkey !== undefined) {
    loadCertificatePair(config.cert, config.pkey);
  }
}

function checkListenerEnabled(config: Config): void {
  if (!config.noUdp || !config.noTcp || isTlsOn(config)) return;
  const tls =
    config.cert === undefined ? 'TLS is off (cert and pkey are not set)' : 'TLS is off (no-tls is set)';
  throw new ConfigError('no-udp', `no listener enabled: no-udp and no-tcp are both set and ${tls}`);
}

/** An address a listener binds: its family, canonical text, and whether it is a wildcard or IPv4-mapped. */
interface Address {
  readonly family: 4 | 6;
  readonly text: string;
  readonly isWildcard: boolean;
  readonly isMapped: boolean;
}

/** `ip` as an Address, or undefined when it is not an IP literal. */
function address(ip: string): Address | undefined {
  const bytes = parseIp(ip);
  if (bytes === undefined) return undefined;
  const isMapped =
    bytes.length === 16 &&
    bytes.subarray(0, 10).every((b) => b === 0) &&
    bytes[10] === 0xff &&
    bytes[11] === 0xff;
  return {
    family: bytes.length === 4 ? 4 : 6,
    text: formatIp(bytes),
    isWildcard: bytes.every((b) => b === 0),
    isMapped,
  };
}

/** The addresses the listeners bind: the configured ones, or both wildcards (as server.ts does). */
function listenAddresses(config: Config): Address[] {
  const list = config.listeningIps.length > 0 ? config.listeningIps : ['0.0.0.0', '::'];
  return list.flatMap((ip) => address(ip) ?? []);
}

/** Two binds of one port collide: same family, and the same address or a wildcard on either side. */
function overlaps(a: Address, b: Address): boolean {
  return a.family === b.family && (a.text === b.text || a.isWildcard || b.isWildcard);
}

function checkListenAddresses(config: Config): void {
  const seen: Address[] = [];
  for (const ip of config.listeningIps) {
    const a = address(ip);
    if (a === undefined) continue; // the schema has refused it already
    if (a.isMapped) {
      throw new ConfigError(
        'listening-ip',
        `${ip} is an IPv4-mapped IPv6 address, which cannot be listened on: give the IPv4 address ${a.text.slice(7)}`,
      );
    }
    const clash = seen.find((b) => overlaps(a, b));
    if (clash !== undefined) {
      throw new ConfigError(
        'listening-ip',
        clash.text === a.text
          ? `${a.text} is listed twice`
          : `${a.isWildcard ? a.text : clash.text} already covers ${a.isWildcard ? clash.text : a.text}: list either the wildcard or specific addresses`,
      );
    }
    seen.push(a);
  }
}

/** The HTTP listener (`prometheus`) must not take a TCP port of a TCP or TLS listener. */
function checkHttpPort(config: Config): void {
  if (!config.prometheus) return;
  const http = address(config.prometheusAddress);
  if (http === undefined) return;
  const streamPorts: { key: string; port: number }[] = [];
  if (!config.noTcp) streamPorts.push({ key: 'listening-port', port: config.listeningPort });
  if (isTlsOn(config)) streamPorts.push({ key: 'tls-listening-port', port: config.tlsListeningPort });
  // The HTTP server binds '::' dual-stack (it covers every IPv4 address too), and an IPv4-mapped
  // address as the IPv4 address it maps.
  const httpAddress: Address =
    http.isMapped && http.family === 6
      ? { family: 4, text: http.text.slice(7), isWildcard: http.text === '::ffff:0.0.0.0', isMapped: false }
      : http;
  for (const { key, port } of streamPorts) {
    if (port !== config.prometheusPort) continue;
    const clash = listenAddresses(config).find(
      (a) => overlaps(a, httpAddress) || (httpAddress.family === 6 && httpAddress.isWildcard),
    );
    if (clash !== undefined) {
      throw new ConfigError(
        'prometheus-port',
        `${port} is also ${key}, and the TCP listener on ${clash.text} takes it: choose another port`,
      );
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Warnings

/** Whether `name` holds something other than its default (a non-empty list for list keys). */
function isSet(config: Config, name: string): boolean {
  const spec = keySpec(name);
  if (spec === undefined) return false;
  const value: unknown = config[spec.field];
  if (Array.isArray(value)) return value.length > 0;
  return value !== spec.default;
}

/** Keys only the TURN service reads (allocations, their authentication, relaying, draining). */
const TURN_KEYS = [
  'realm',
  'min-port',
  'max-port',
  'relay-ip',
  'external-ip',
  'allowed-peer-ip',
  'denied-peer-ip',
  'user-quota',
  'total-quota',
  'max-allocate-lifetime',
  'allocation-default-address-family',
  'channel-lifetime',
  'permission-lifetime',
  'stale-nonce',
  'max-permissions',
  'max-channels',
  'rfc5766-channel-numbers',
  'no-sha256',
  'alternate-server',
  'drain-timeout',
] as const;

/** Keys only the HTTP listener reads. */
const HTTP_KEYS = ['prometheus-port', 'prometheus-address', 'api-token', 'public-host', 'test-page'] as const;

/** Keys only the TCP and TLS listeners read. */
const STREAM_KEYS = [
  'max-tcp-connections',
  'max-tcp-connections-per-ip',
  'tcp-idle-timeout',
  'tcp-frame-timeout',
  'max-frame-bytes',
  'proxy-protocol',
] as const;

/**
 * Settings that change nothing with the rest of `config`, each as "<key> has no effect: <why>",
 * in a stable order. Keys left at their default are never named.
 */
export function configWarnings(config: Config): string[] {
  const out: string[] = [];
  const warn = (key: string, why: string): void => {
    out.push(`${key} has no effect: ${why}`);
  };
  const tlsOn = isTlsOn(config);

  if (!isTurnOn(config)) {
    for (const key of TURN_KEYS) {
      if (isSet(config, key)) warn(key, 'TURN is off (no user, no use-auth-secret and no redis-url)');
    }
  }
  if (isSet(config, 'static-auth-secret') && !config.useAuthSecret) {
    warn('static-auth-secret', 'use-auth-secret is off');
  }

  if (!config.prometheus) {
    for (const key of HTTP_KEYS) {
      if (isSet(config, key)) warn(key, 'the HTTP listener is off (prometheus is not set)');
    }
  } else {
    if (config.testPage && config.apiToken === undefined) {
      warn('test-page', 'the page needs api-token (without one /test answers 403)');
    } else if (config.testPage && !config.useAuthSecret) {
      warn('test-page', 'the page needs ICE-server credentials, and /ice-servers needs use-auth-secret');
    }
    if (config.publicHost !== undefined && (config.apiToken === undefined || !config.useAuthSecret)) {
      warn(
        'public-host',
        'it is used only in /ice-servers answers, which need api-token and use-auth-secret',
      );
    }
  }

  if (config.redisUrl === undefined) {
    for (const spec of KEYS) {
      if (
        spec.name.startsWith('fleet-') ||
        (spec.name.startsWith('redis-') && spec.name !== 'redis-url') ||
        spec.name === 'node-id'
      ) {
        if (isSet(config, spec.name)) warn(spec.name, 'fleet mode is off (redis-url is not set)');
      }
    }
  }

  if (config.noTls) {
    if (config.cert !== undefined) warn('cert', 'no-tls is set');
    if (config.pkey !== undefined) warn('pkey', 'no-tls is set');
  }
  if (!tlsOn) {
    const why = config.noTls ? 'TLS is off (no-tls is set)' : 'TLS is off (cert and pkey are not set)';
    for (const key of ['tls-listening-port', 'tls-handshake-timeout']) {
      if (isSet(config, key)) warn(key, why);
    }
  }

  if (!hasStreams(config)) {
    for (const key of STREAM_KEYS) {
      if (isSet(config, key)) warn(key, 'there is no TCP or TLS listener (no-tcp is set and TLS is off)');
    }
  }
  if (
    config.noUdp &&
    config.noTcp &&
    tlsOn &&
    config.tlsListeningPort !== config.listeningPort &&
    isSet(config, 'listening-port')
  ) {
    warn('listening-port', 'no-udp and no-tcp are set; TLS listens on tls-listening-port');
  }
  if (config.noUdp && !isTurnOn(config) && isSet(config, 'sock-buf-size')) {
    warn('sock-buf-size', 'it sizes UDP sockets, and there are none (no-udp is set and TURN is off)');
  }
  return out;
}
