/**
 * Composition root: configuration → sans-I/O core → listeners. `startServer` binds everything
 * or nothing (a failure closes what was already bound); `close` releases every socket.
 */

import { diffConfig } from './config/load.js';
import { KEYS } from './config/schema.js';
import type { Config } from './config/types.js';
import { CHANNEL_MAX, RFC5766_CHANNEL_MAX } from './core/constants.js';
import { type RateLimitOptions, SourceRateLimiter } from './core/rate-limit.js';
import { Stats } from './core/stats.js';
import { StunCore } from './core/stun-core.js';
import { RevocationList } from './credentials.js';
import { BindError } from './errors.js';
import { registerOperatorRoutes } from './http/operator-api.js';
import { HttpApi } from './http/server.js';
import { CertificateStore } from './io/certificates.js';
import { type ConnectionBudget, StreamListener, type StreamListenerOptions } from './io/stream-listener.js';
import { UdpListener } from './io/udp-listener.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics/registry.js';
import {
  buildAuthenticator,
  buildPolicy,
  buildTurn,
  type TurnSetup,
  turnEnabled,
  turnOptions,
} from './turn-setup.js';

/** Output a TCP client may leave unread before responses to it are dropped. */
const MAX_PENDING_WRITE_BYTES = 256 * 1024;

export interface TurnpikeServer {
  readonly core: StunCore;
  /** The TURN side (it refuses TURN requests while no users or secrets are configured). */
  readonly turn: TurnSetup;
  /** The TLS certificate, when TLS is configured (reload on SIGHUP). */
  readonly certificates: CertificateStore | undefined;
  /** The HTTP listener (metrics, health, operator API), when `prometheus` is on. */
  readonly http: HttpApi | undefined;
  readonly metrics: Metrics | undefined;
  /** Readiness: all listeners bound, not draining. */
  readonly state: { ready: boolean; draining: boolean };
  readonly udp: readonly UdpListener[];
  readonly tcp: readonly StreamListener[];
  /** The configuration in force (replaced by `reconfigure`). */
  readonly config: () => Config;
  /**
   * Applies what can change live (users, secrets, realm, peer policy, quotas, lifetimes, rate
   * limit, log level, API token, TLS certificate files' content) and reports what needs a restart.
   */
  reconfigure(next: Config): { applied: string[]; needsRestart: string[] };
  /** Stops accepting new allocations (300 to alternates, else 508); existing ones keep relaying. */
  drain(): void;
  close(): Promise<void>;
}

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
  'max-allocate-lifetime',
  'allocation-default-address-family',
  'channel-lifetime',
  'permission-lifetime',
  'max-permissions',
  'max-channels',
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
]);

/** Listen addresses: the configured ones, or both wildcards. */
export function listenAddresses(config: Config): { addresses: string[]; isDefault: boolean } {
  if (config.listeningIps.length > 0) return { addresses: [...config.listeningIps], isDefault: false };
  return { addresses: ['0.0.0.0', '::'], isDefault: true };
}

export async function startServer(config: Config, log: Logger): Promise<TurnpikeServer> {
  const stats = new Stats();
  const limiter = new SourceRateLimiter(rateLimitOptions(config));
  const core = new StunCore(
    { software: config.softwareAttribute ? 'turnpike' : undefined, reasonPhrases: false },
    stats,
    limiter,
  );
  const { addresses, isDefault } = listenAddresses(config);
  const state = { ready: false, draining: false };
  /** REST userids refused until a time (admin API); consulted by every authenticator built. */
  const revocations = new RevocationList();
  let metrics: Metrics | undefined;
  // The TURN side always exists, so adding the first user or secret on SIGHUP switches TURN on
  // live (relay sockets are only bound per allocation); without credentials it refuses every
  // TURN request with a 401 that says TURN is disabled.
  const turn = buildTurn(config, addresses, limiter, stats, log, revocations, (sec) =>
    metrics?.allocationLifetime.observe(sec),
  );
  core.turn = turn.service;
  if (config.rfc5766ChannelNumbers) core.maxChannel = RFC5766_CHANNEL_MAX;
  // The coarse clock: one tick a second expires allocations, reservations, cached responses and
  // verified sources.
  const sweepTimer = setInterval(() => {
    const nowMs = Date.now();
    const nowSec = Math.floor(nowMs / 1000);
    turn.service.sweep(nowSec);
    turn.pool.sweep(nowSec);
    limiter.prune(nowMs);
  }, 1000);
  sweepTimer.unref();
  turn.service.sweep(Math.floor(Date.now() / 1000));
  const udp: UdpListener[] = [];
  const tcp: StreamListener[] = [];
  const budget: ConnectionBudget = { open: 0, max: config.maxTcpConnections };
  let certificates: CertificateStore | undefined;
  if (!config.noTls && config.cert !== undefined && config.pkey !== undefined) {
    certificates = new CertificateStore(config.cert, config.pkey, log);
    certificates.watch();
  }
  let http: HttpApi | undefined;
  const closeAll = async (): Promise<void> => {
    state.ready = false;
    await http?.close();
    certificates?.close();
    clearInterval(sweepTimer);
    turn.service.closeAll('shutdown');
    turn.pool.closeReservations();
    await Promise.all([...udp.map((l) => l.close()), ...tcp.map((l) => l.close())]);
  };
  try {
    for (const address of addresses) {
      try {
        if (!config.noUdp) {
          const l = new UdpListener(
            { address, port: config.listeningPort, sockBufSize: config.sockBufSize },
            core,
            log,
          );
          await l.start();
          udp.push(l);
        }
        // With both TCP and TLS enabled, each stream port serves both (told apart by the first byte,
        // as coturn does), so one port such as 443 can carry turn:?transport=tcp and turns:. The same
        // number for both keys gives one listener.
        const tls =
          certificates === undefined
            ? undefined
            : {
                context: () => certificates.current(),
                handshakeTimeoutMs: config.tlsHandshakeTimeout * 1000,
              };
        const streamPorts: { port: number; plain: boolean }[] = [];
        if (!config.noTcp) streamPorts.push({ port: config.listeningPort, plain: true });
        if (tls !== undefined && (config.noTcp || config.tlsListeningPort !== config.listeningPort))
          streamPorts.push({ port: config.tlsListeningPort, plain: !config.noTcp });
        for (const { port, plain } of streamPorts) {
          const l = new StreamListener(streamOptions(config, address, port, budget, tls, plain), core, log);
          await l.start();
          tcp.push(l);
        }
      } catch (err) {
        // The default '::' wildcard is optional: a host without IPv6 still serves IPv4.
        const cause = (err as { cause?: { code?: string } }).cause;
        if (
          isDefault &&
          address === '::' &&
          (cause?.code === 'EAFNOSUPPORT' || cause?.code === 'EADDRNOTAVAIL')
        ) {
          log.warn({ address }, 'IPv6 is not available on this host; serving IPv4 only');
          continue;
        }
        throw err;
      }
    }
    if (udp.length === 0 && tcp.length === 0)
      throw new BindError('no listener enabled (no-udp and no-tcp both set)');
    if (config.prometheus) {
      metrics = new Metrics({ stats, limiter, turn: () => turn.service, streams: () => tcp });
      const m = metrics;
      http = new HttpApi(log, config.apiToken);
      http.route(
        'GET',
        '/metrics',
        async () => {
          const { contentType, body } = await m.render();
          return { status: 200, contentType, body };
        },
        { protected: false },
      );
      http.route('GET', '/livez', () => ({ status: 200, body: 'ok\n' }), { protected: false });
      http.route(
        'GET',
        '/readyz',
        () =>
          state.ready && !state.draining
            ? { status: 200, body: 'ready\n' }
            : { status: 503, body: state.draining ? 'draining\n' : 'starting\n' },
        { protected: false },
      );
      registerOperatorRoutes(http, {
        // Called only while serving requests, once `current` and `drain` below exist.
        config: () => current,
        turn,
        revocations,
        drain: () => drain(),
        log,
      });
      await http.listen(config.prometheusAddress, config.prometheusPort);
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  state.ready = true;
  /** The configuration in force: what was bound at start, plus the live keys of the last reload. */
  let current = config;
  const reconfigure = (file: Config): { applied: string[]; needsRestart: string[] } => {
    // Compared with the running configuration, not the last file read: changing a restart-only
    // key back in the file clears its warning.
    const changed = diffConfig(current, file);
    const needsRestart = changed.filter((k) => !LIVE_KEYS.has(k));
    const next = runningConfig(current, file);
    log.level = next.logLevel;
    limiter.configure(rateLimitOptions(next));
    core.setOptions({ software: next.softwareAttribute ? 'turnpike' : undefined, reasonPhrases: false });
    core.maxChannel = next.rfc5766ChannelNumbers ? RFC5766_CHANNEL_MAX : CHANNEL_MAX;
    // TURN on or off (first user or secret added, last one removed) applies live, like any user change.
    turn.service.reconfigure(
      turnOptions(next),
      buildAuthenticator(next, turn.nonceSecret, revocations),
      buildPolicy(next, addresses),
    );
    if (turnEnabled(current) !== turnEnabled(next))
      log.info({ turn: turnEnabled(next) }, turnEnabled(next) ? 'TURN enabled' : 'TURN disabled');
    http?.setToken(next.apiToken);
    certificates?.reload('SIGHUP');
    current = next;
    return { applied: changed.filter((k) => LIVE_KEYS.has(k)), needsRestart };
  };
  const drain = (): void => {
    state.draining = true;
    turn.service.setDraining(true);
  };
  return {
    core,
    turn,
    udp,
    tcp,
    certificates,
    http,
    metrics,
    state,
    config: () => current,
    reconfigure,
    drain,
    close: closeAll,
  };
}

/**
 * The configuration a reload leaves in force: the live keys from the file just read, every other
 * key as it runs now (a changed listening port is only bound after a restart, so `/ice-servers`
 * and everything else keep describing what is bound).
 */
export function runningConfig(running: Config, file: Config): Config {
  const merged: Record<string, unknown> = { ...running };
  for (const spec of KEYS) if (LIVE_KEYS.has(spec.name)) merged[spec.field] = file[spec.field];
  return Object.freeze(merged as unknown as Config);
}

function rateLimitOptions(config: Config): RateLimitOptions {
  return {
    ratePerSec: config.unauthorizedRatelimitRps,
    verifiedLifetimeMs: config.verifiedSourceLifetime * 1000,
    maxVerified: config.maxVerifiedSources,
  };
}

function streamOptions(
  config: Config,
  address: string,
  port: number,
  budget: ConnectionBudget,
  tls: StreamListenerOptions['tls'],
  plain: boolean,
): StreamListenerOptions {
  return {
    address,
    port,
    budget,
    plain,
    maxConnectionsPerIp: config.maxTcpConnectionsPerIp,
    idleTimeoutMs: config.tcpIdleTimeout * 1000,
    frameTimeoutMs: config.tcpFrameTimeout * 1000,
    maxFrameBytes: config.maxFrameBytes,
    maxPendingWriteBytes: MAX_PENDING_WRITE_BYTES,
    proxyProtocol: config.proxyProtocol,
    ...(tls === undefined ? {} : { tls }),
  };
}
