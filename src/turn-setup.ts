/**
 * Builds the TURN side of the server from the configuration: relay addresses (relay-ip,
 * external-ip, or the listening/host addresses), the authenticator, the peer policy with the
 * server's own service ports, and the TURN service itself.
 */
import { randomBytes } from 'node:crypto';
import { networkInterfaces } from 'node:os';
import { parseHostPort } from './config/schema.js';
import type { Config } from './config/types.js';
import { Authenticator } from './core/auth/authenticate.js';
import { CHANNEL_MAX, METHOD_NAMES, RFC5766_CHANNEL_MAX } from './core/constants.js';
import { PeerPolicy } from './core/peer-policy.js';
import type { SourceRateLimiter } from './core/rate-limit.js';
import type { Stats } from './core/stats.js';
import type { TurnEvents, TurnOptions } from './core/turn/service.js';
import { TurnService } from './core/turn/service.js';
import type { RevocationList } from './credentials.js';
import { type RelayAddress, RelayPool } from './io/relay-pool.js';
import { LogBudget, type Logger } from './log.js';

/** RFC 8656 §7.2: the default allocation lifetime (10 minutes). */
export const DEFAULT_LIFETIME_SEC = 600;

export function turnEnabled(config: Config): boolean {
  return config.users.length > 0 || config.useAuthSecret;
}

const familyOf = (ip: string): 4 | 6 => (ip.includes(':') ? 6 : 4);
const isWildcard = (ip: string): boolean => ip === '0.0.0.0' || ip === '::';

/** Non-internal addresses of this host (IPv6 link-local excluded: it needs a scope). */
function hostAddresses(): string[] {
  const out: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      if (a.internal) continue;
      if (a.family === 'IPv6' && a.address.toLowerCase().startsWith('fe80:')) continue;
      out.push(a.address);
    }
  }
  return out;
}

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
    offerSha256: !config.noSha256,
    reasonPhrases: false,
    software: config.softwareAttribute ? 'turnpike' : undefined,
    minRelayPort: config.minPort,
    maxRelayPort: config.maxPort,
    maxChannel: config.rfc5766ChannelNumbers ? RFC5766_CHANNEL_MAX : CHANNEL_MAX,
    defaultFamily: config.allocationDefaultAddressFamily,
    alternateServers: config.alternateServers.flatMap((s) => parseHostPort(s) ?? []),
  };
}

export function buildAuthenticator(
  config: Config,
  nonceSecret: Buffer,
  revocations?: RevocationList,
): Authenticator {
  return new Authenticator({
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

export interface TurnSetup {
  readonly service: TurnService;
  readonly pool: RelayPool;
  readonly nonceSecret: Buffer;
}

export function buildTurn(
  config: Config,
  listening: readonly string[],
  limiter: SourceRateLimiter,
  stats: Stats,
  log: Logger,
  revocations: RevocationList,
  onAllocationEnded?: (lifetimeSec: number) => void,
): TurnSetup {
  const pool = new RelayPool(
    relayAddresses(config, listening),
    config.minPort,
    config.maxPort,
    config.sockBufSize,
    log,
  );
  const nonceSecret = randomBytes(32);
  // Anyone can make authentication fail at will: at most 10 lines a second reach the log.
  const authLogBudget = new LogBudget(10);
  const events: TurnEvents = {
    authFailed: (f) => {
      const suppressed = authLogBudget.take(Date.now());
      if (suppressed < 0) return;
      log.info(
        {
          reason: f.reason,
          code: f.code,
          method: METHOD_NAMES[f.method] ?? f.method,
          user: f.username,
          realm: f.realm,
          client: `${f.transport}:${f.address}:${f.port}`,
          ...(suppressed > 0 ? { suppressed } : {}),
        },
        'authentication failed',
      );
    },
    allocationCreated: (a) =>
      log.info(
        {
          alloc: a.id,
          user: a.userId,
          client: `${a.endpoint.transport}:${a.clientAddress}:${a.clientPort}`,
          relay: a.relays.map((r) => `${r.advertisedAddress}:${r.port}`),
          lifetime: a.expiresAtSec - a.createdAtSec,
        },
        'allocation created',
      ),
    allocationDeleted: (a, reason) => {
      const durationSec = Math.max(0, Math.floor(Date.now() / 1000) - a.createdAtSec);
      onAllocationEnded?.(durationSec);
      log.info(
        {
          alloc: a.id,
          user: a.userId,
          reason,
          durationSec,
          toPeer: { packets: a.packetsToPeer, bytes: a.bytesToPeer },
          toClient: { packets: a.packetsToClient, bytes: a.bytesToClient },
        },
        'allocation deleted',
      );
    },
  };
  const service = new TurnService(
    turnOptions(config),
    buildAuthenticator(config, nonceSecret, revocations),
    buildPolicy(config, listening),
    pool,
    limiter,
    stats,
    events,
  );
  pool.service = service;
  return { service, pool, nonceSecret };
}
