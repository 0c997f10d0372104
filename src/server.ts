/**
 * Composition root: configuration → settings → core and data plane → listeners → HTTP. Every
 * object gets what it needs at construction (no property is set afterwards to break a cycle):
 *
 *   clock, stats, limiter ─┐
 *   relay addresses ───────┼─▶ NativeDataPlane or JsDataPlane (ForwardingTable) ─▶ RelayPool (relay sockets)
 *                          └─▶ TurnService (programs the plane, binds relays through the pool)
 *                              ─▶ StunCore (STUN, TURN requests to the service, ChannelData to the plane)
 *                              ─▶ UDP and TCP/TLS listeners ─▶ HTTP (metrics, health, operator API)
 *
 * `startServer` binds everything or nothing (a failure closes what was already bound); `close`
 * releases every socket. Reload is `reload.ts`, the HTTP routes are `http/*.ts`, signals and
 * drain timing are `daemon.ts`.
 */
import { randomBytes } from 'node:crypto';
import type { Config } from './config/types.js';
import { type Clock, systemClock } from './core/clock.js';
import { SourceRateLimiter } from './core/rate-limit.js';
import { Stats } from './core/stats.js';
import { StunCore } from './core/stun-core.js';
import { RelayAddressBook } from './core/transport.js';
import { TurnEventBus } from './core/turn/events.js';
import { JsDataPlane } from './core/turn/js-data-plane.js';
import { TurnService } from './core/turn/service.js';
import { RevocationList } from './credentials.js';
import { BindError } from './errors.js';
import { defaultFleetAddress, fleetFor } from './fleet/fleet.js';
import { registerFleetRoutes } from './http/fleet-api.js';
import { disconnectRestUser, registerOperatorRoutes } from './http/operator-api.js';
import { registerHealthRoutes } from './http/routes.js';
import { HttpApi } from './http/server.js';
import { CertificateStore } from './io/certificates.js';
import { NativeDataPlane, NativeEndpoint } from './io/native/data-plane.js';
import { selectDataPlane } from './io/native/select.js';
import { NativeUdpListener } from './io/native/udp-listener.js';
import { RelayPool } from './io/relay-pool.js';
import { type ConnectionBudget, StreamListener, type StreamListenerOptions } from './io/stream-listener.js';
import { TcpRelays } from './io/tcp-relay.js';
import { UdpListener } from './io/udp-listener.js';
import type { Logger } from './log.js';
import { Metrics } from './metrics/registry.js';
import { planReload } from './reload.js';
import {
  buildAuthenticator,
  buildPolicy,
  listenAddresses,
  maxChannel,
  rateLimitOptions,
  relayAddresses,
  relayLimits,
  stunOptions,
  turnEnabled,
  turnOptions,
} from './settings.js';
import { RefusedTrafficLog, subscribeTurnLog } from './turn-log.js';

export { LIVE_KEYS } from './reload.js';
export { listenAddresses } from './settings.js';

/** Sweep ticks (seconds) between two looks for allocations mostly refused by the payload policy. */
const REFUSED_CHECK_TICKS = 2;

/** Output a TCP client may leave unread before responses to it are dropped. */
const MAX_PENDING_WRITE_BYTES = 256 * 1024;

export interface TurnpikeServer {
  readonly core: StunCore;
  /** The TURN control plane (it refuses TURN requests while no users or secrets are configured). */
  readonly turn: TurnService;
  /** The relay sockets (addresses, port pool, reservations). */
  readonly relays: RelayPool;
  /** The TLS certificate, when TLS is configured (reload on SIGHUP). */
  readonly certificates: CertificateStore | undefined;
  /** The HTTP listener (metrics, health, operator API), when `prometheus` is on. */
  readonly http: HttpApi | undefined;
  readonly metrics: Metrics | undefined;
  /** Readiness: all listeners bound, not draining. */
  readonly state: { ready: boolean; draining: boolean };
  readonly udp: readonly UdpService[];
  /** Which data plane relays UDP clients, and the native one when it runs. */
  readonly dataPlane: { readonly plane: 'native' | 'js'; readonly native: NativeDataPlane | undefined };
  readonly tcp: readonly StreamListener[];
  /** The configuration in force (replaced by `reconfigure`). */
  readonly config: () => Config;
  /**
   * Applies what can change live (users, secrets, realm, peer policy, quotas, lifetimes, rate
   * limit, log level, API token, TLS certificate files' content) and reports what needs a restart.
   */
  reconfigure(file: Config): { applied: string[]; needsRestart: string[] };
  /** Stops accepting new allocations (300 to alternates, else 508); existing ones keep relaying. */
  drain(): void;
  close(): Promise<void>;
}

/** A UDP listening address, served by the event loop or by the native threads. */
export type UdpService = UdpListener | NativeUdpListener;

export async function startServer(
  config: Config,
  log: Logger,
  clock: Clock = systemClock,
): Promise<TurnpikeServer> {
  const { addresses, isDefault } = listenAddresses(config);
  const stats = new Stats();
  const limiter = new SourceRateLimiter(rateLimitOptions(config));
  /** REST userids refused until a time (admin API); consulted by every authenticator built. */
  const revocations = new RevocationList();
  const nonceSecret = randomBytes(32);
  const events = new TurnEventBus();
  const relayList = relayAddresses(config, addresses);
  const book = new RelayAddressBook(relayList);
  const policy = buildPolicy(config, addresses);
  const choice = selectDataPlane(config);
  const native =
    choice.plane === 'native'
      ? new NativeDataPlane({
          addon: choice.addon,
          threads: choice.threads,
          clock,
          stats,
          addresses: book,
          addressPairs: relayList,
          // Called once TURN requests arrive, so `turn` (built below with this plane) exists by then.
          peerRule: (ip) => turn.peerPortRule(ip),
          steering: !config.noRelaySteering,
          log,
        })
      : undefined;
  if (native !== undefined) {
    log.info(
      { dataPlane: 'native', relayThreads: native.threads, relaySteering: !config.noRelaySteering },
      'native data plane: UDP relayed by worker threads',
    );
    native.setSoftware(stunOptions(config).software);
  } else if (choice.plane === 'js')
    log.info({ dataPlane: 'js', reason: choice.reason }, 'JavaScript data plane');
  const plane = native ?? new JsDataPlane({ clock, stats, addresses: book });
  plane.setLimits(relayLimits(config));
  // RFC 6062 TCP relays: always wired; `tcp-relay` (live) decides whether TCP allocations are granted.
  const tcpRelays = new TcpRelays({ turn: () => turn, plane, log });
  const relays = new RelayPool({
    addresses: relayList,
    book,
    minPort: config.minPort,
    maxPort: config.maxPort,
    sockBufSize: config.sockBufSize,
    sink: plane,
    native:
      native === undefined
        ? undefined
        : {
            serves: (endpoint) => endpoint instanceof NativeEndpoint && endpoint.plane === native,
            bind: (address, port, sockBuf) => native.handle.bindRelay(address, port, sockBuf),
            send: (fd, data, address, port) => native.handle.relaySend(fd, data, address, port),
            close: (fd) => native.handle.closeFd(fd),
          },
    tcpSink: tcpRelays,
    clock,
    log,
  });
  // Fleet mode (redis-url): shared users, quotas, revocations, registry, usage (src/fleet/).
  const fleet = fleetFor({
    initial: config,
    config: () => current,
    stats,
    plane,
    events,
    revocations,
    clock,
    log,
    turn: () => turn,
    disconnect: (userId) => disconnectRestUser(turn, userId),
    defaultAddress: defaultFleetAddress(
      config,
      addresses,
      relayList.map((r) => r.advertised),
    ),
  });

  // The TURN side always exists, so adding the first user or secret on SIGHUP switches TURN on
  // live (relay sockets are only bound per allocation).
  const turn: TurnService = new TurnService({
    options: turnOptions(config),
    auth: buildAuthenticator(config, nonceSecret, revocations, fleet?.userdb),
    policy,
    allocator: relays,
    plane,
    limiter,
    stats,
    clock,
    events,
    ...(fleet === undefined ? {} : { admission: fleet }),
    tcpConnector: tcpRelays,
  });
  const core = new StunCore({
    options: stunOptions(config),
    clock,
    stats,
    limiter,
    turn,
    channelData: plane,
    maxChannel: maxChannel(config),
  });
  let metrics: Metrics | undefined;
  subscribeTurnLog(events, plane, clock, log);

  // The coarse clock: one tick a second expires allocations, reservations, cached responses and
  // verified sources; every few seconds, allocations mostly refused by the payload policy are logged.
  const refusedLog = new RefusedTrafficLog(log);
  let ticks = 0;
  const sweepTimer = setInterval(() => {
    turn.sweep();
    relays.sweep();
    limiter.prune(clock.nowMs());
    // The threads' counters reach `stats` (the fleet heartbeat reads it) at least once a second.
    native?.syncStats();
    if (++ticks % REFUSED_CHECK_TICKS === 0 && current.relayPayloadPolicy === 'webrtc')
      refusedLog.check(turn.allocations());
  }, 1000);
  sweepTimer.unref();
  turn.sweep();

  const state = { ready: false, draining: false };
  const udp: UdpService[] = [];
  const tcp: StreamListener[] = [];
  let certificates: CertificateStore | undefined;
  if (!config.noTls && config.cert !== undefined && config.pkey !== undefined) {
    certificates = new CertificateStore(config.cert, config.pkey, log);
    certificates.watch();
  }
  let http: HttpApi | undefined;
  let current = config;
  const closeAll = async (): Promise<void> => {
    state.ready = false;
    await http?.close();
    certificates?.close();
    clearInterval(sweepTimer);
    turn.closeAll('shutdown');
    tcpRelays.close();
    relays.closeReservations();
    await fleet?.close();
    await Promise.all([...udp.map((l) => l.close()), ...tcp.map((l) => l.close())]);
    native?.close();
  };
  const drain = (): void => {
    state.draining = true;
    turn.setDraining(true);
  };
  try {
    const budget: ConnectionBudget = { open: 0, max: config.maxTcpConnections };
    for (const address of addresses) {
      try {
        await bindListeners(
          config,
          address,
          budget,
          certificates,
          core,
          turn,
          native,
          tcpRelays,
          log,
          udp,
          tcp,
        );
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
    await fleet?.start();
    if (config.prometheus) {
      metrics = new Metrics({
        stats,
        limiter,
        turn: () => turn,
        streams: () => tcp,
        events,
        clock,
        dataPlane: { plane: native === undefined ? 'js' : 'native', native },
        relayPorts: () => relays.portUsage(),
        ...(certificates === undefined ? {} : { certificateExpiry: () => certificates?.info.validToSec }),
        ready: () => state.ready && !state.draining,
      });
      http = new HttpApi(log, config.apiToken);
      registerHealthRoutes(http, metrics, state, () => fleet?.notReady());
      registerOperatorRoutes(http, {
        config: () => current,
        turn,
        revocations,
        fleet: fleet?.revocations,
        restSecrets: fleet === undefined ? undefined : () => fleet.userdb.secrets,
        drain,
        log,
      });
      registerFleetRoutes(http, metrics, fleet);
      await http.listen(config.prometheusAddress, config.prometheusPort);
    }
  } catch (err) {
    await closeAll();
    throw err;
  }
  state.ready = true;

  const reconfigure = (file: Config): { applied: string[]; needsRestart: string[] } => {
    const { next, applied, needsRestart } = planReload(current, file);
    log.level = next.logLevel;
    limiter.configure(rateLimitOptions(next));
    core.setOptions(stunOptions(next), maxChannel(next));
    native?.setSoftware(stunOptions(next).software);
    plane.setLimits(relayLimits(next));
    // TURN on or off (first user or secret added, last one removed) applies live, like any user change.
    turn.reconfigure(
      turnOptions(next),
      buildAuthenticator(next, nonceSecret, revocations, fleet?.userdb),
      buildPolicy(next, addresses),
    );
    native?.refreshPeerRules();
    if (turnEnabled(current) !== turnEnabled(next))
      log.info({ turn: turnEnabled(next) }, turnEnabled(next) ? 'TURN enabled' : 'TURN disabled');
    http?.setToken(next.apiToken);
    certificates?.reload('SIGHUP');
    current = next;
    return { applied, needsRestart };
  };
  return {
    core,
    turn,
    relays,
    udp,
    tcp,
    dataPlane: { plane: native === undefined ? 'js' : 'native', native },
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
 * The listeners of one address: UDP, and the stream ports. With both TCP and TLS enabled, each
 * stream port serves both (told apart by the first byte, as coturn does), so one port such as 443
 * can carry turn:?transport=tcp and turns:. The same number for both keys gives one listener.
 */
async function bindListeners(
  config: Config,
  address: string,
  budget: ConnectionBudget,
  certificates: CertificateStore | undefined,
  core: StunCore,
  turn: TurnService,
  native: NativeDataPlane | undefined,
  tcpRelays: TcpRelays,
  log: Logger,
  udp: UdpService[],
  tcp: StreamListener[],
): Promise<void> {
  if (!config.noUdp) {
    const options = { address, port: config.listeningPort, sockBufSize: config.sockBufSize };
    const l =
      native === undefined
        ? new UdpListener(options, core, log)
        : new NativeUdpListener(options, core, native);
    await l.start();
    udp.push(l);
  }
  const tls =
    certificates === undefined
      ? undefined
      : { context: () => certificates.current(), handshakeTimeoutMs: config.tlsHandshakeTimeout * 1000 };
  const streamPorts: { port: number; plain: boolean }[] = [];
  if (!config.noTcp) streamPorts.push({ port: config.listeningPort, plain: true });
  if (tls !== undefined && (config.noTcp || config.tlsListeningPort !== config.listeningPort))
    streamPorts.push({ port: config.tlsListeningPort, plain: !config.noTcp });
  for (const { port, plain } of streamPorts) {
    const l = new StreamListener(
      { ...streamOptions(config, address, port, budget, tls, plain), tcpRelays },
      core,
      log,
      turn,
    );
    await l.start();
    tcp.push(l);
  }
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
