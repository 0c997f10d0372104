/**
 * Everything the server derives from the configuration, derived once per configuration (at start
 * and on each reload): relay addresses (relay-ip, external-ip, or the listening/host addresses),
 * the authenticator, the peer policy with the server's own service ports, and the options of the
 * STUN core, the TURN service and the rate limiter. Pure functions of the configuration (and of
 * this host's addresses).
 */
import { parseHostPort } from './config/checks.js';
import type { Config } from './config/types.js';
import { Authenticator } from './core/auth/authenticate.js';
import type { CredentialSource } from './core/auth/credentials.js';
import { CHANNEL_MAX, RFC5766_CHANNEL_MAX } from './core/constants.js';
import { PeerPolicy } from './core/peer-policy.js';
import type { RateLimitOptions } from './core/rate-limit.js';
import type { StunCoreOptions } from './core/stun-core.js';
import type { RelayLimitOptions } from './core/turn/relay-limits.js';
import type { TurnOptions } from './core/turn/types.js';
import type { RevocationList } from './credentials.js';
import { hostAddresses } from './io/host-addresses.js';
import type { RelayAddress } from './io/relay-pool.js';

/** RFC 8656 §7.2: the default allocation lifetime (10 minutes). */
export const DEFAULT_LIFETIME_SEC = 600;

export function turnEnabled(config: Config): boolean {
  return config.users.length > 0 || config.useAuthSecret || config.redisUrl !== undefined;
}

const familyOf = (ip: string): 4 | 6 => (ip.includes(':') ? 6 : 4);
const isWildcard = (ip: string): boolean => ip === '0.0.0.0' || ip === '::';

/** `external-ip` entries: `public` or `public/private`. */
function externalMappings(config: Config): Array<{ public: string; private: string | undefined }> {
  return config.externalIps.map((e) => {
    const [pub, priv] = e.split('/');
    return { public: pub!, private: priv };
  });
}

/**
 * Relay addresses: `relay-ip` when set; else the private sides of `external-ip` mappings; else the
 * concrete listening addresses; else this host's addresses. Each is advertised as its `external-ip`
 * public address when one maps to it (or, for an `external-ip` without a private part, to its family).
 */
export function relayAddresses(config: Config, listening: readonly string[]): RelayAddress[] {
  const mappings = externalMappings(config);
  let locals: string[];
  if (config.relayIps.length > 0) locals = [...config.relayIps];
  else if (mappings.some((m) => m.private !== undefined))
    locals = mappings.flatMap((m) => (m.private === undefined ? [] : [m.private]));
  else {
    const concrete = listening.filter((a) => !isWildcard(a));
    locals = concrete.length > 0 ? concrete : hostAddresses();
  }
  return [...new Set(locals)].map((local) => {
    const family = familyOf(local);
    const exact = mappings.find((m) => m.private === local);
    const byFamily = mappings.find((m) => m.private === undefined && familyOf(m.public) === family);
    return { family, local, advertised: exact?.public ?? byFamily?.public ?? local };
  });
}

/** The server's own service sockets, which are never relay peers. */
export function ownServices(
  config: Config,
  listening: readonly string[],
): Array<{ address: string; port: number }> {
  const ports = [config.listeningPort];
  if (!config.noTls && config.cert !== undefined) ports.push(config.tlsListeningPort);
  const addresses = new Set<string>();
  for (const a of listening) {
    if (isWildcard(a)) {
      for (const h of hostAddresses()) if (familyOf(h) === familyOf(a)) addresses.add(h);
      addresses.add(familyOf(a) === 4 ? '127.0.0.1' : '::1');
    } else addresses.add(a);
  }
  for (const m of externalMappings(config)) addresses.add(m.public);
  const out: Array<{ address: string; port: number }> = [];
  for (const address of addresses) for (const port of ports) out.push({ address, port });
  if (config.prometheus) {
    const p = config.prometheusAddress;
    if (isWildcard(p)) for (const address of addresses) out.push({ address, port: config.prometheusPort });
    else out.push({ address: p, port: config.prometheusPort });
  }
  return out;
}

export function turnOptions(config: Config): TurnOptions {
  return {
    enabled: turnEnabled(config),
    defaultLifetimeSec: Math.min(DEFAULT_LIFETIME_SEC, config.maxAllocateLifetime),
    maxLifetimeSec: config.maxAllocateLifetime,
    permissionLifetimeSec: config.permissionLifetime,
    channelLifetimeSec: config.channelLifetime,
    userQuota: config.userQuota,
    totalQuota: config.totalQuota,
    maxPermissions: config.maxPermissions,
    maxChannels: config.maxChannels,
    // A TCP relay carries arbitrary bytes: never WebRTC media only, so the webrtc policy refuses it.
    tcpRelay: config.tcpRelay && config.relayPayloadPolicy !== 'webrtc',
    tcpRelayMaxConnections: config.tcpRelayMaxConnections,
    offerSha256: !config.noSha256,
    software: software(config),
    minRelayPort: config.minPort,
    maxRelayPort: config.maxPort,
    maxChannel: maxChannel(config),
    defaultFamily: config.allocationDefaultAddressFamily,
    mobility: config.mobility,
    alternateServers: config.alternateServers.flatMap((s) => parseHostPort(s) ?? []),
  };
}

export function buildAuthenticator(
  config: Config,
  nonceSecret: Buffer,
  revocations?: RevocationList,
  source?: CredentialSource,
): Authenticator {
  return new Authenticator({
    ...(source === undefined ? {} : { source }),
    ...(revocations === undefined
      ? {}
      : { isRevoked: (userId: string, nowSec: number) => revocations.isRevoked(userId, nowSec) }),
    realm: config.realm,
    users: config.users,
    useAuthSecret: config.useAuthSecret,
    staticAuthSecrets: config.staticAuthSecrets,
    staleNonceSec: config.staleNonce,
    nonceSecret,
  });
}

export function buildPolicy(config: Config, listening: readonly string[]): PeerPolicy {
  return new PeerPolicy({
    allowed: config.allowedPeerIps,
    denied: config.deniedPeerIps,
    ownServices: ownServices(config, listening),
  });
}

/** Text of the SOFTWARE attribute, when `software-attribute` is on. */
function software(config: Config): string | undefined {
  return config.softwareAttribute ? 'turnpike' : undefined;
}

/** The highest channel number served (`rfc5766-channel-numbers` widens RFC 8656's range). */
export function maxChannel(config: Config): number {
  return config.rfc5766ChannelNumbers ? RFC5766_CHANNEL_MAX : CHANNEL_MAX;
}

export function stunOptions(config: Config): StunCoreOptions {
  return { software: software(config) };
}

/** The payload policy and bandwidth limits of both data planes. */
export function relayLimits(config: Config): RelayLimitOptions {
  return {
    payloadPolicy: config.relayPayloadPolicy,
    maxBps: config.maxBps,
    userMaxBps: config.userMaxBps,
    bpsCapacity: config.bpsCapacity,
  };
}

export function rateLimitOptions(config: Config): RateLimitOptions {
  return {
    ratePerSec: config.unauthorizedRatelimitRps,
    verifiedLifetimeMs: config.verifiedSourceLifetime * 1000,
    maxVerified: config.maxVerifiedSources,
  };
}

/** Listen addresses: the configured ones, or both wildcards. */
export function listenAddresses(config: Config): { addresses: string[]; isDefault: boolean } {
  if (config.listeningIps.length > 0) return { addresses: [...config.listeningIps], isDefault: false };
  return { addresses: ['0.0.0.0', '::'], isDefault: true };
}
