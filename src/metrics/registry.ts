/**
 * Prometheus metrics (prom-client). The relay hot path only bumps plain numbers in `Stats`; this
 * module turns them into metrics when Prometheus scrapes (`collect()`), so counters move live and a
 * scrape costs nothing between scrapes. Labels are bounded: never a user, IP, port or allocation.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Clock } from '../core/clock.js';
import { METHOD_NAMES } from '../core/constants.js';
import type { SourceRateLimiter } from '../core/rate-limit.js';
import type { Stats } from '../core/stats.js';
import type { Allocation } from '../core/turn/allocation.js';
import type { TurnEventBus } from '../core/turn/events.js';
import type { TurnService } from '../core/turn/service.js';
import type { NativeDataPlane, ThreadCounters } from '../io/native/data-plane.js';
import type { StreamListener } from '../io/stream-listener.js';

export interface MetricsSources {
  readonly stats: Stats;
  /** The unauthenticated-response limiter (verified sources, refusals). */
  readonly limiter?: SourceRateLimiter;
  readonly turn: () => TurnService | undefined;
  readonly streams: () => readonly StreamListener[];
  /** The TURN service's events: allocation lifetimes are observed as allocations end. */
  readonly events?: TurnEventBus;
  readonly clock?: Clock;
  /** The data plane relaying UDP clients; the native one's thread counters are read per scrape. */
  readonly dataPlane?: { readonly plane: 'native' | 'js'; readonly native: NativeDataPlane | undefined };
  /** Relay ports per family (`RelayPool.portUsage`). */
  readonly relayPorts?: () => readonly { family: 4 | 6; capacity: number; free: number }[];
  /** End of validity (Unix seconds) of the TLS certificate in use; omitted without TLS (no series). */
  readonly certificateExpiry?: () => number | undefined;
  /** Whether /readyz answers 200 (listening, not draining). */
  readonly ready?: () => boolean;
}

/** A counter on `r` whose value is `read()` at each scrape (a running total kept elsewhere). */
export function readCounter(r: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [r],
    collect() {
      this.reset();
      this.inc(read());
    },
  });
}

/** A counter on `r` whose series are what `read()` yields at each scrape (labels, running total). */
export function readLabeledCounter(
  r: Registry,
  name: string,
  help: string,
  labelNames: string[],
  read: () => Iterable<[Record<string, string>, number]>,
): void {
  new Counter({
    name,
    help,
    labelNames,
    registers: [r],
    collect() {
      this.reset();
      for (const [labels, value] of read()) this.inc(labels, value);
    },
  });
}

/** A gauge on `r` set to `read()` at each scrape. */
export function readGauge(r: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [r],
    collect() {
      this.set(read());
    },
  });
}

export class Metrics {
  readonly registry = new Registry();
  /** Allocation lifetimes, observed when an allocation ends. */
  readonly allocationLifetime: Histogram<string>;
  /** From an accepted Allocate to its success (admission, relay binding), observed per allocation. */
  readonly allocateDuration: Histogram<string>;
  private readonly native: NativeDataPlane | undefined;

  constructor(sources: MetricsSources) {
    const r = this.registry;
    const { stats } = sources;
    collectDefaultMetrics({ register: r });

    const labeledCounter = (
      name: string,
      help: string,
      labelNames: string[],
      read: () => Iterable<[Record<string, string>, number]>,
    ): void => readLabeledCounter(r, name, help, labelNames, read);
    const counter = (name: string, help: string, read: () => number): void =>
      readCounter(r, name, help, read);

    new Gauge({
      name: 'turn_allocations',
      help: 'Allocations active, by client transport and relay address family.',
      labelNames: ['transport', 'family'],
      registers: [r],
      collect() {
        this.reset();
        // Every series exists from the first scrape, at 0 until an allocation of its kind.
        for (const transport of ['udp', 'tcp', 'tls'])
          for (const family of ['ipv4', 'ipv6']) this.set({ transport, family }, 0);
        const turn = sources.turn();
        if (turn === undefined) return;
        const counts = new Map<string, number>();
        for (const { allocation: a } of turn.allocations()) {
          for (const relay of a.relays) {
            const key = `${a.endpoint.transport}|${relay.family === 4 ? 'ipv4' : 'ipv6'}`;
            counts.set(key, (counts.get(key) ?? 0) + 1);
          }
        }
        for (const [key, n] of counts) {
          const [transport, family] = key.split('|') as [string, string];
          this.set({ transport, family }, n);
        }
      },
    });
    new Gauge({
      name: 'turn_permissions',
      help: 'Permissions active (peer IP addresses) over all allocations.',
      registers: [r],
      collect() {
        let n = 0;
        for (const live of sources.turn()?.allocations() ?? []) n += live.permissions;
        this.set(n);
      },
    });
    new Gauge({
      name: 'turn_channels',
      help: 'Channel bindings active over all allocations.',
      registers: [r],
      collect() {
        let n = 0;
        for (const live of sources.turn()?.allocations() ?? []) n += live.channels;
        this.set(n);
      },
    });
    new Gauge({
      name: 'turn_stream_connections',
      help: 'TCP and TLS client connections open, by transport.',
      labelNames: ['transport'],
      registers: [r],
      collect() {
        this.reset();
        for (const l of sources.streams())
          this.inc({ transport: l.options.tls ? 'tls' : 'tcp' }, l.connectionCount);
      },
    });
    new Gauge({
      name: 'turn_tcp_relay_allocations',
      help: 'RFC 6062 TCP allocations active (they are also in turn_allocations).',
      registers: [r],
      collect() {
        let n = 0;
        for (const { allocation } of sources.turn()?.allocations() ?? [])
          if (allocation.relayTransport === 'tcp') n++;
        this.set(n);
      },
    });
    new Gauge({
      name: 'turn_tcp_relay_connections',
      help: 'RFC 6062 peer TCP connections, by state: connecting (Connect in progress), pending (waiting for ConnectionBind), bound (piped to a client data connection).',
      labelNames: ['state'],
      registers: [r],
      collect() {
        const counts = sources.turn()?.tcp.counts() ?? { connecting: 0, pending: 0, bound: 0 };
        this.set({ state: 'connecting' }, counts.connecting);
        this.set({ state: 'pending' }, counts.pending);
        this.set({ state: 'bound' }, counts.bound);
      },
    });
    labeledCounter(
      'turn_tcp_relay_connections_total',
      'RFC 6062 peer TCP connections, by outcome: opened (Connect succeeded or a peer with a permission connected), bound (ConnectionBind), connect_failed (447), bind_timeout (no ConnectionBind within 30 s), refused (an incoming peer without permission, denied by the peer policy, or over tcp-relay-max-connections).',
      ['outcome'],
      () => [
        [{ outcome: 'opened' }, stats.tcpConnectionsOpened],
        [{ outcome: 'bound' }, stats.tcpConnectionsBound],
        [{ outcome: 'connect_failed' }, stats.tcpConnectFailures],
        [{ outcome: 'bind_timeout' }, stats.tcpBindTimeouts],
        [{ outcome: 'refused' }, stats.tcpPeerConnectionsRefused],
      ],
    );
    const { relayPorts, certificateExpiry, ready } = sources;
    if (relayPorts !== undefined) {
      const familyGauge = (
        name: string,
        help: string,
        read: (u: { capacity: number; free: number }) => number,
      ) =>
        new Gauge({
          name,
          help,
          labelNames: ['family'],
          registers: [r],
          collect() {
            this.reset();
            for (const u of relayPorts()) this.set({ family: u.family === 4 ? 'ipv4' : 'ipv6' }, read(u));
          },
        });
      familyGauge(
        'turn_relay_ports_capacity',
        'Relay ports the min-port..max-port range gives, over all relay addresses of the family.',
        (u) => u.capacity,
      );
      familyGauge(
        'turn_relay_ports_used',
        'Relay ports not free: bound to allocations, reserved (EVEN-PORT), or found held by another process.',
        (u) => u.capacity - u.free,
      );
    }
    if (certificateExpiry !== undefined) {
      new Gauge({
        name: 'turn_tls_certificate_expiry_timestamp_seconds',
        help: 'End of validity (notAfter, Unix seconds) of the TLS certificate in use; follows reloads. Absent without TLS.',
        registers: [r],
        collect() {
          const expiry = certificateExpiry();
          if (expiry !== undefined) this.set(expiry);
        },
      });
    }
    if (ready !== undefined) {
      new Gauge({
        name: 'turn_ready',
        help: '1 when the server is ready (listening, not draining: /readyz answers 200), else 0.',
        registers: [r],
        collect() {
          this.set(ready() ? 1 : 0);
        },
      });
    }
    counter('turn_allocations_created_total', 'Allocations created.', () => stats.allocationsCreated);
    labeledCounter(
      'turn_allocations_deleted_total',
      'Allocations deleted, by reason (expired, refreshed-to-zero, connection-closed, shutdown, admin).',
      ['reason'],
      () => [...stats.allocationsDeleted].map(([reason, n]) => [{ reason }, n]),
    );
    counter(
      'turn_mobility_moves_total',
      'Allocations moved to a new client address by a MOBILITY-TICKET (RFC 8016).',
      () => stats.mobilityMoves,
    );
    labeledCounter(
      'turn_mobility_refused_total',
      'Mobility requests refused with 405, by reason (disabled, invalid: forged or for other credentials, stale: replayed or allocation gone, expired, transport).',
      ['reason'],
      () => [...stats.mobilityRefused].map(([reason, n]) => [{ reason }, n]),
    );
    labeledCounter(
      'turn_stun_requests_total',
      'STUN/TURN requests answered, by method and result.',
      ['method', 'result'],
      function* () {
        yield [{ method: 'Binding', result: 'success' }, stats.bindingSuccess];
        for (const [method, [ok, err]] of stats.responses) {
          const name = METHOD_NAMES[method] ?? `0x${method.toString(16)}`;
          yield [{ method: name, result: 'success' }, ok];
          yield [{ method: name, result: 'error' }, err];
        }
      },
    );
    labeledCounter('turn_stun_errors_total', 'Error responses sent, by error code.', ['code'], () =>
      [...stats.errorResponses].map(([code, n]) => [{ code: String(code) }, n]),
    );
    labeledCounter(
      'turn_auth_failures_total',
      'Authentication failures, by reason (the first 401 challenge of an allocation is not one: see turn_auth_challenges_total).',
      ['reason'],
      () => [...stats.authFailures].map(([reason, n]) => [{ reason }, n]),
    );
    counter(
      'turn_stale_nonces_total',
      'Requests answered 438 Stale Nonce.',
      () => stats.authFailures.get('stale-nonce') ?? 0,
    );
    labeledCounter('turn_relay_packets_total', 'Packets relayed, by direction.', ['direction'], () => [
      [{ direction: 'client_to_peer' }, stats.relayedToPeerPackets],
      [{ direction: 'peer_to_client' }, stats.relayedToClientPackets],
    ]);
    labeledCounter('turn_relay_bytes_total', 'Payload bytes relayed, by direction.', ['direction'], () => [
      [{ direction: 'client_to_peer' }, stats.relayedToPeerBytes],
      [{ direction: 'peer_to_client' }, stats.relayedToClientBytes],
    ]);
    labeledCounter('turn_packets_dropped_total', 'Packets dropped, by reason.', ['reason'], () => [
      [{ reason: 'no_permission' }, stats.droppedNoPermission],
      [{ reason: 'peer_policy' }, stats.droppedPeerPolicy],
      [{ reason: 'rate_limit' }, stats.droppedRateLimited],
      [{ reason: 'malformed' }, stats.droppedMalformed + stats.droppedFingerprint],
      [{ reason: 'backpressure' }, stats.droppedBackpressure],
      [{ reason: 'no_allocation' }, stats.droppedNoAllocation],
      [{ reason: 'no_channel' }, stats.droppedNoChannel],
      [{ reason: 'oversize' }, stats.droppedOversize],
      [{ reason: 'payload_policy' }, stats.droppedPayloadPolicy],
      [{ reason: 'max_bps' }, stats.droppedMaxBps],
      [{ reason: 'user_max_bps' }, stats.droppedUserMaxBps],
      [{ reason: 'bps_capacity' }, stats.droppedBpsCapacity],
    ]);
    labeledCounter('turn_stream_connections_total', 'TCP/TLS connections, by outcome.', ['outcome'], () => [
      [{ outcome: 'accepted' }, stats.streamAccepted],
      [{ outcome: 'refused' }, stats.streamRefused],
      [{ outcome: 'closed_bad_frame' }, stats.streamClosedBadFrame],
      [{ outcome: 'closed_timeout' }, stats.streamClosedTimeout],
      [{ outcome: 'evicted_per_ip' }, stats.streamEvicted],
    ]);
    const { limiter } = sources;
    if (limiter !== undefined) {
      labeledCounter(
        'turn_rate_limited_total',
        'Error responses to unauthenticated UDP requests not sent because their source IP exceeded unauthorized-ratelimit-rps, by kind (challenge: 401/438, error: 400/420).',
        ['reason'],
        () => [
          [{ reason: 'challenge' }, limiter.limitedChallenges],
          [{ reason: 'error' }, limiter.limitedErrors],
        ],
      );
      new Gauge({
        name: 'turn_verified_sources',
        help: 'Source IPs remembered as verified (exempt from the unauthenticated-response limit).',
        registers: [r],
        collect() {
          this.set(limiter.verifiedCount);
        },
      });
      counter(
        'turn_verified_sources_evicted_total',
        'Verified source IPs forgotten early because max-verified-sources was reached.',
        () => limiter.evictions,
      );
    }
    counter(
      'turn_auth_challenges_total',
      'Requests without credentials answered with a 401 challenge (the first step of every allocation; not failures).',
      () => stats.authChallenges,
    );
    counter(
      'turn_disabled_refusals_total',
      'TURN requests refused because TURN is disabled (no users or secrets configured).',
      () => stats.turnDisabledRefusals,
    );
    counter('turn_peer_refusals_total', 'Peers refused by the peer policy (403).', () => stats.peerRefusals);
    this.allocationLifetime = new Histogram({
      name: 'turn_allocation_lifetime_seconds',
      help: 'How long allocations lived, observed when they end.',
      buckets: [10, 30, 60, 300, 600, 1800, 3600, 7200, 21600, 86400],
      registers: [r],
    });
    this.allocateDuration = new Histogram({
      name: 'turn_allocate_duration_seconds',
      help:
        'Allocation setup inside the server: from an authenticated Allocate that passed its checks to its ' +
        'success response (fleet admission in Redis, binding the relay sockets). Refused ones are not observed.',
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [r],
    });
    this.native = sources.dataPlane?.native;
    this.dataPlaneMetrics(sources.dataPlane?.plane ?? 'js');
    const { events, clock } = sources;
    if (events !== undefined && clock !== undefined) {
      // Pending allocations by the monotonic time their Allocate was accepted. A WeakMap: one refused
      // or abandoned while pending (fleet admission said no, the client went) leaves no entry behind.
      const requestedAt = new WeakMap<Allocation, number>();
      events.subscribe({
        allocationRequested: (a) => requestedAt.set(a, performance.now()),
        allocationCreated: (a) => {
          const at = requestedAt.get(a);
          if (at === undefined) return;
          requestedAt.delete(a);
          this.allocateDuration.observe((performance.now() - at) / 1000);
        },
        allocationDeleted: (a) =>
          this.allocationLifetime.observe(Math.max(0, clock.nowSec() - a.createdAtSec)),
      });
    }
  }

  /** Which plane runs, and the native threads' own counters (per thread: how the kernel spread flows). */
  private dataPlaneMetrics(plane: 'native' | 'js'): void {
    const r = this.registry;
    new Gauge({
      name: 'turn_data_plane_info',
      help: 'The data plane relaying UDP clients (native: worker threads; js: the event loop), with its thread count.',
      labelNames: ['plane', 'threads'],
      registers: [r],
    }).set({ plane, threads: String(this.native?.threads ?? 0) }, 1);
    const native = this.native;
    if (native === undefined) return;
    const perThread = (name: string, help: string, read: (c: ThreadCounters) => number): void => {
      new Counter({
        name,
        help,
        labelNames: ['thread'],
        registers: [r],
        collect() {
          this.reset();
          for (let t = 0; t < native.threads; t++) {
            const c = native.threadCounters(t);
            if (c !== undefined) this.inc({ thread: String(t) }, read(c));
          }
        },
      });
    };
    perThread(
      'turn_data_plane_packets_total',
      'Datagrams the native threads read (listeners and relays).',
      (c) => c.packetsIn,
    );
    perThread(
      'turn_data_plane_relayed_packets_total',
      'Datagrams the native threads relayed, both directions.',
      (c) => c.toPeerPackets + c.toClientPackets,
    );
    perThread(
      'turn_data_plane_upcalls_total',
      'Datagrams the native threads handed to the control plane.',
      (c) => c.upcalls,
    );
    perThread(
      'turn_data_plane_upcall_drops_total',
      'Datagrams dropped because the queue to the control plane was full.',
      (c) => c.upcallDrops,
    );
    perThread(
      'turn_data_plane_send_errors_total',
      'Sends the kernel refused (socket buffer full, ICMP errors).',
      (c) => c.sendErrors,
    );
    perThread(
      'turn_data_plane_batches_total',
      'recvmmsg calls that returned datagrams (packets / batches = batch size).',
      (c) => c.recvBatches,
    );
    new Counter({
      name: 'turn_data_plane_control_datagrams_total',
      help: 'STUN messages other than Binding requests and Send indications (TURN requests) steered past the native threads to the control plane (unless no-relay-steering).',
      registers: [r],
      collect() {
        this.reset();
        this.inc(native.controlStats().datagrams);
      },
    });
    new Counter({
      name: 'turn_data_plane_control_socket_failures_total',
      help: 'Control sockets closed after a poll error; their TURN requests then come up through the native threads.',
      registers: [r],
      collect() {
        this.reset();
        this.inc(native.controlStats().failures);
      },
    });
    new Counter({
      name: 'turn_data_plane_socket_drops_total',
      help: "Datagrams the kernel dropped at the native plane's listening sockets, receive buffer full (socket: listener = the threads' sockets, control = TURN requests waiting for the control plane).",
      labelNames: ['socket'],
      registers: [r],
      collect() {
        this.reset();
        const drops = native.socketDrops();
        this.inc({ socket: 'listener' }, drops.listener);
        this.inc({ socket: 'control' }, drops.control);
      },
    });
  }

  async render(): Promise<{ contentType: string; body: string }> {
    this.native?.syncStats();
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }
}
