/**
 * The relays `bench:compare` measures and how each is started on 127.0.0.1 with an equivalent
 * configuration: the same realm and user, loopback peers allowed, a relay port range of its own
 * (≥ 10 000 ports, outside the kernel's ephemeral range so the load tool's sockets never collide with
 * it). One-thread targets (turnpike's native plane with one relay thread, its JS plane, coturn -m 1, the
 * forwarder) are pinned to the server CPU; the two-thread ones (turnpike-2t, coturn-2t) and coturn-mt
 * are not.
 */
import { existsSync } from 'node:fs';
import { relative } from 'node:path';
import { redisSkipReason } from '../shared/redis.js';
import {
  coturnLaunch,
  coturnStatus,
  dataPlaneArgs,
  type Launch,
  nativeAddonPath,
  nativeSkipReason,
  turnpikeHasDataPlaneOption,
  turnpikeLaunch,
} from '../shared/servers.js';

export const TARGET_NAMES = [
  'forwarder',
  'turnpike',
  'turnpike-2t',
  'turnpike-js',
  'turnpike-base',
  'turnpike-fleet',
  'turnpike-limits',
  'coturn',
  'coturn-2t',
  'coturn-mt',
] as const;
export type TargetName = (typeof TARGET_NAMES)[number];
export const DEFAULT_TARGETS: readonly TargetName[] = ['forwarder', 'turnpike', 'turnpike-js', 'coturn'];
/** Issue 13's comparison: both turnpike planes and coturn, with one thread and with two. */
export const ISSUE13_TARGETS: readonly TargetName[] = [
  'turnpike',
  'turnpike-2t',
  'turnpike-js',
  'coturn',
  'coturn-2t',
];
/** `--smoke` without --targets: every target but turnpike-base (which needs --base-bin). */
export const SMOKE_TARGETS: readonly TargetName[] = TARGET_NAMES.filter((t) => t !== 'turnpike-base');

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
  /**
   * The data plane turnpike must report in `turn_data_plane_info{plane,threads}` once started (checked
   * by startServer, so a run never measures another plane than the one it names); undefined: not checked.
   */
  readonly expectPlane?: { readonly plane: 'native' | 'js'; readonly threads: number };
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

/**
 * The `turnpike-limits` target's bandwidth limits (issue 14): every bucket on the relay path (the
 * allocation's, the user's, the server's) is consulted and charged, and none is ever reached: the
 * tool's ~200 000 pkt/s of 1200 B are 240 MB/s over all allocations and 2.4 MB/s each.
 */
export const LIMITS_ARGS: readonly string[] = [
  '--max-bps',
  '1000000000',
  '--user-max-bps',
  '2000000000',
  '--bps-capacity',
  '2000000000',
];

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
    turnpikeTarget('turnpike', o.turnpikeBin, o, { plane: 'native', threads: 1 }),
    turnpikeTarget('turnpike-2t', o.turnpikeBin, o, { plane: 'native', threads: 2 }),
    turnpikeTarget('turnpike-js', o.turnpikeBin, o, { plane: 'js', threads: 0 }),
    turnpikeTarget('turnpike-base', o.baseBin, o, undefined),
    turnpikeTarget('turnpike-fleet', o.turnpikeBin, o, { plane: 'native', threads: 1 }),
    turnpikeTarget('turnpike-limits', o.turnpikeBin, o, { plane: 'native', threads: 1 }),
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
      name: 'coturn-2t',
      description: `${coturn.label}, --relay-threads=2, unpinned`,
      pinnable: false,
      authenticated: true,
      hasMetrics: false,
      readyTimeoutMs: 10_000,
      skipReason: coturn.skipReason,
      launch: (port, _metrics, workDir) => coturnLaunch(o.coturnBin, port, workDir, 2, COTURN_TURN),
    },
    {
      name: 'coturn-mt',
      description: `${coturn.label}, default relay threads (one per CPU: ${o.cpuCount} here), unpinned`,
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

type TurnpikeName =
  | 'turnpike'
  | 'turnpike-2t'
  | 'turnpike-js'
  | 'turnpike-base'
  | 'turnpike-fleet'
  | 'turnpike-limits';

/** How a turnpike target selects its data plane, and what that is called in the report. */
interface PlaneChoice {
  readonly args: readonly string[];
  readonly label: string;
  readonly skipReason: string | undefined;
  readonly expect: Target['expectPlane'];
}

/**
 * The data plane of a turnpike target. `turnpike-base` (an older build, maybe from before the native data
 * plane) launches exactly as it always did, unless its build has `--data-plane`: then it gets the same
 * plane as `turnpike` (native, one relay thread) when its addon is built, else the JS plane, explicitly.
 */
function planeChoice(bin: string, expect: Target['expectPlane'], isBase: boolean): PlaneChoice {
  if (isBase) {
    if (!existsSync(bin) || !turnpikeHasDataPlaneOption(bin))
      return { args: [], label: 'its default data plane', skipReason: undefined, expect: undefined };
    if (nativeSkipReason(bin) === undefined)
      return {
        args: dataPlaneArgs('native', 1),
        label: 'native data plane, 1 relay thread',
        skipReason: undefined,
        expect: { plane: 'native', threads: 1 },
      };
    return {
      args: dataPlaneArgs('js'),
      label: `JS data plane (its native addon ${nativeAddonPath(bin)} is not built)`,
      skipReason: undefined,
      expect: { plane: 'js', threads: 0 },
    };
  }
  if (expect === undefined || expect.plane === 'js')
    return {
      args: dataPlaneArgs('js'),
      label: 'JS data plane (the event loop relays)',
      skipReason: undefined,
      expect,
    };
  return {
    args: dataPlaneArgs('native', expect.threads),
    label: `native data plane, ${expect.threads} relay thread${expect.threads === 1 ? '' : 's'}`,
    skipReason: nativeSkipReason(bin),
    expect,
  };
}

/**
 * turnpike from `bin` (`turnpike`, `turnpike-2t`, `turnpike-js`: this checkout with the native data plane
 * and one or two relay threads, or the JS one; `turnpike-base`: `--base-bin`, e.g. a worktree of the base
 * commit, so that a change is measured against its base in one run, rounds alternated).
 */
function turnpikeTarget(
  name: TurnpikeName,
  bin: string | undefined,
  o: TargetOptions,
  expect: Target['expectPlane'],
): Target {
  const where = bin === undefined ? 'not given (--base-bin)' : relative(o.repoRoot, bin) || bin;
  const fleet = name === 'turnpike-fleet';
  const limits = name === 'turnpike-limits';
  const plane =
    bin === undefined
      ? { args: [], label: '', skipReason: undefined, expect: undefined }
      : planeChoice(bin, expect, name === 'turnpike-base');
  const missing =
    bin === undefined
      ? '--base-bin not given'
      : !existsSync(bin)
        ? `${bin} missing`
        : (plane.skipReason ?? (fleet ? redisSkipReason() : undefined));
  // Two relay threads are the point of turnpike-2t: it is left unpinned like coturn-2t. With one relay
  // thread the whole process (main thread and relay thread) is pinned to the server CPU, like coturn -m 1.
  const pinnable = name !== 'turnpike-2t';
  return {
    name,
    description:
      `turnpike (${where})${plane.label === '' ? '' : `, ${plane.label}`}` +
      (fleet ? ` in fleet mode on a local redis-server (${fleetArgs('URL').slice(2).join(' ')})` : '') +
      (limits ? ` with bandwidth limits set but never reached (${LIMITS_ARGS.join(' ')})` : '') +
      `${pinnable ? '' : ', unpinned'}, relay ports ${TURNPIKE_PORTS.min}-${TURNPIKE_PORTS.max}`,
    pinnable,
    authenticated: true,
    hasMetrics: true,
    readyTimeoutMs: 15_000,
    skipReason: missing,
    ...(plane.expect === undefined ? {} : { expectPlane: plane.expect }),
    launch: (port, metricsPort) =>
      turnpikeLaunch(bin ?? '', port, [
        ...(fleet ? fleetArgs(o.redisUrl?.() ?? 'redis://127.0.0.1:6379') : []),
        ...(limits ? LIMITS_ARGS : []),
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
        ...plane.args,
      ]),
  };
}
