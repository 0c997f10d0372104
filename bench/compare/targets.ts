/**
 * The relays `bench:compare` measures and how each is started on 127.0.0.1 with an equivalent
 * configuration: the same realm and user, loopback peers allowed, a relay port range of its own
 * (≥ 10 000 ports, outside the kernel's ephemeral range so the load tool's sockets never collide with
 * it), and one thread for the single-threaded comparison.
 */
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { redisSkipReason } from '../shared/redis.js';
import { coturnLaunch, coturnStatus, type Launch, turnpikeLaunch } from '../shared/servers.js';

export const TARGET_NAMES = [
  'forwarder',
  'turnpike',
  'turnpike-base',
  'turnpike-fleet',
  'coturn',
  'coturn-mt',
] as const;
export type TargetName = (typeof TARGET_NAMES)[number];
export const DEFAULT_TARGETS: readonly TargetName[] = ['forwarder', 'turnpike', 'coturn'];

export function isTargetName(name: string): name is TargetName {
  return (TARGET_NAMES as readonly string[]).includes(name);
}

export const REALM = 'bench.local';
export const USER = 'bench';
export const PASSWORD = 'benchpass';

/** Relay port ranges, one per server, 11 000 ports each, below the usual ephemeral range (32768+). */
export const TURNPIKE_PORTS = { min: 10_000, max: 20_999 } as const;
export const COTURN_PORTS = { min: 21_000, max: 31_999 } as const;

export interface Target {
  readonly name: TargetName;
  readonly description: string;
  /** Pinned to the server CPU (single-threaded targets). */
  readonly pinnable: boolean;
  /** The tool needs credentials for it. */
  readonly authenticated: boolean;
  /** Prometheus endpoint with turn_relay_packets_total (turnpike). */
  readonly hasMetrics: boolean;
  readonly readyTimeoutMs: number;
  readonly skipReason: string | undefined;
  launch(port: number, metricsPort: number, workDir: string): Launch;
}

export interface TargetOptions {
  readonly repoRoot: string;
  readonly turnpikeBin: string;
  /** Another turnpike build (a worktree of the base commit) for the `turnpike-base` target. */
  readonly baseBin: string | undefined;
  readonly coturnBin: string;
  /** Compiled load tool entry (dist/src/load-tool/main.js): also runs the forwarder. */
  readonly toolMain: string;
  readonly cpuCount: number;
  /** SO_RCVBUF/SO_SNDBUF for turnpike and the forwarder (coturn sets its own); 0: OS default. */
  readonly sockBufBytes: number;
  /** The Redis of the `turnpike-fleet` target (started by the run when that target is measured). */
  readonly redisUrl?: () => string | undefined;
}

/**
 * Fleet mode as the `turnpike-fleet` target runs it: a fleet-wide user quota high enough never to
 * refuse, so that every Allocate pays its admission (one Lua script in Redis) and every release its
 * lease removal, plus the heartbeat and the usage stream.
 */
export function fleetArgs(redisUrl: string): string[] {
  return [
    '--redis-url',
    redisUrl,
    '--node-id',
    'bench',
    '--fleet-user-quota',
    '1000000',
    '--fleet-lease-time',
    '60',
  ];
}

/** coturn as a TURN relay with the shared realm and user, loopback peers allowed, UDP relays only. */
const COTURN_TURN = [
  '--relay-ip=127.0.0.1',
  `--min-port=${COTURN_PORTS.min}`,
  `--max-port=${COTURN_PORTS.max}`,
  '--lt-cred-mech',
  `--realm=${REALM}`,
  `--user=${USER}:${PASSWORD}`,
  '--allow-loopback-peers',
  '--no-multicast-peers',
  '--no-tcp-relay',
];

export function buildTargets(o: TargetOptions): Map<TargetName, Target> {
  const node = process.execPath;
  const coturn = coturnStatus(o.coturnBin);
  const targets: Target[] = [
    {
      name: 'forwarder',
      description:
        'bare node:dgram forwarder (turnpike-bench forwarder): one Map lookup and one send per packet, ' +
        'the ceiling of a pure-JS relay',
      pinnable: true,
      authenticated: false,
      hasMetrics: false,
      readyTimeoutMs: 10_000,
      skipReason: existsSync(o.toolMain) ? undefined : `${o.toolMain} missing (run npm run build)`,
      launch: (port) => ({
        command: node,
        args: [
          o.toolMain,
          'forwarder',
          '--listen',
          `127.0.0.1:${port}`,
          '--sock-buf',
          String(o.sockBufBytes),
        ],
      }),
    },
    turnpikeTarget('turnpike', o.turnpikeBin, o),
    turnpikeTarget('turnpike-base', o.baseBin, o),
    turnpikeTarget('turnpike-fleet', o.turnpikeBin, o),
    {
      name: 'coturn',
      description: `${coturn.label}, --relay-threads=1, relay ports ${COTURN_PORTS.min}-${COTURN_PORTS.max}`,
      pinnable: true,
      authenticated: true,
      hasMetrics: false,
      readyTimeoutMs: 10_000,
      skipReason: coturn.skipReason,
      launch: (port, _metrics, workDir) => coturnLaunch(o.coturnBin, port, workDir, 1, COTURN_TURN),
    },
    {
      name: 'coturn-mt',
      description: `${coturn.label}, default relay threads (${o.cpuCount} here), unpinned`,
      pinnable: false,
      authenticated: true,
      hasMetrics: false,
      readyTimeoutMs: 10_000,
      skipReason: coturn.skipReason,
      launch: (port, _metrics, workDir) => coturnLaunch(o.coturnBin, port, workDir, undefined, COTURN_TURN),
    },
  ];
  return new Map(targets.map((t) => [t.name, t]));
}

/**
 * turnpike from `bin` (`turnpike`: this checkout; `turnpike-base`: `--base-bin`, e.g. a worktree of
 * the base commit, so that a change is measured against its base in one run, rounds alternated).
 */
function turnpikeTarget(
  name: 'turnpike' | 'turnpike-base' | 'turnpike-fleet',
  bin: string | undefined,
  o: TargetOptions,
): Target {
  const where = bin === undefined ? 'not given (--base-bin)' : relative(o.repoRoot, bin);
  const fleet = name === 'turnpike-fleet';
  return {
    name,
    description: fleet
      ? `turnpike (${where}) in fleet mode on a local redis-server (${fleetArgs('URL').slice(2).join(' ')}), relay ports ${TURNPIKE_PORTS.min}-${TURNPIKE_PORTS.max}`
      : `turnpike (${where}), relay ports ${TURNPIKE_PORTS.min}-${TURNPIKE_PORTS.max}`,
    pinnable: true,
    authenticated: true,
    hasMetrics: true,
    readyTimeoutMs: 15_000,
    skipReason:
      bin === undefined
        ? '--base-bin not given'
        : !existsSync(bin)
          ? `${bin} missing`
          : fleet
            ? redisSkipReason()
            : undefined,
    launch: (port, metricsPort) =>
      turnpikeLaunch(bin ?? '', port, [
        ...(fleet ? fleetArgs(o.redisUrl?.() ?? 'redis://127.0.0.1:6379') : []),
        '--realm',
        REALM,
        '--user',
        `${USER}:${PASSWORD}`,
        '--allowed-peer-ip',
        '127.0.0.1',
        '--min-port',
        String(TURNPIKE_PORTS.min),
        '--max-port',
        String(TURNPIKE_PORTS.max),
        // The default unauthenticated-response limit stays on (10/s per source IP): every Allocate
        // starts with a 401, and the tool's one source IP is exempt once it has authenticated.
        '--prometheus',
        '--prometheus-address',
        '127.0.0.1',
        '--prometheus-port',
        String(metricsPort),
        '--drain-timeout',
        '0',
        '--sock-buf-size',
        String(o.sockBufBytes),
      ]),
  };
}
