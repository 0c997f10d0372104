/**
 * The relays `bench:compare` measures and how each is started on 127.0.0.1 with an equivalent
 * configuration: the same realm and user, loopback peers allowed, a relay port range of its own
 * (≥ 10 000 ports, outside the kernel's ephemeral range so the load tool's sockets never collide with
 * it), and one thread for the single-threaded comparison.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, relative } from 'node:path';

export const TARGET_NAMES = ['forwarder', 'turnpike', 'coturn', 'coturn-mt'] as const;
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

export interface Launch {
  readonly command: string;
  readonly args: readonly string[];
}

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
  readonly coturnBin: string;
  /** Compiled load tool entry (dist/src/bench/main.js): also runs the forwarder. */
  readonly toolMain: string;
  readonly cpuCount: number;
  /** SO_RCVBUF/SO_SNDBUF for turnpike and the forwarder (coturn sets its own); 0: OS default. */
  readonly sockBufBytes: number;
}

export function coturnVersion(coturnBin: string): string | undefined {
  const r = spawnSync(coturnBin, ['--version'], { encoding: 'utf8', timeout: 5000 });
  if (r.error !== undefined || r.status !== 0) return undefined;
  return r.stdout.trim().split('\n')[0];
}

function coturnArgs(port: number, workDir: string, relayThreads: number | undefined): string[] {
  const args = [
    '-n',
    '--listening-ip=127.0.0.1',
    `--listening-port=${port}`,
    '--relay-ip=127.0.0.1',
    `--min-port=${COTURN_PORTS.min}`,
    `--max-port=${COTURN_PORTS.max}`,
    '--lt-cred-mech',
    `--realm=${REALM}`,
    `--user=${USER}:${PASSWORD}`,
    '--allow-loopback-peers',
    '--no-multicast-peers',
    '--no-tcp',
    '--no-tls',
    '--no-dtls',
    '--no-tcp-relay',
    '--no-cli',
    '--no-rfc5780',
    '--no-software-attribute',
    '--log-file=stdout',
    '--simple-log',
    `--pidfile=${join(workDir, 'turnserver.pid')}`,
    `--userdb=${join(workDir, 'turndb')}`,
  ];
  if (relayThreads !== undefined) args.push(`--relay-threads=${relayThreads}`);
  return args;
}

export function buildTargets(o: TargetOptions): Map<TargetName, Target> {
  const node = process.execPath;
  const coturn = coturnVersion(o.coturnBin);
  const coturnSkip =
    coturn === undefined ? `${o.coturnBin} not found (install Debian package coturn)` : undefined;
  const coturnLabel = coturn === undefined ? 'coturn' : `coturn ${coturn}`;
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
    {
      name: 'turnpike',
      description: `turnpike (${relative(o.repoRoot, o.turnpikeBin)}), relay ports ${TURNPIKE_PORTS.min}-${TURNPIKE_PORTS.max}`,
      pinnable: true,
      authenticated: true,
      hasMetrics: true,
      readyTimeoutMs: 15_000,
      skipReason: existsSync(o.turnpikeBin) ? undefined : `${o.turnpikeBin} missing`,
      launch: (port, metricsPort) => ({
        command: node,
        args: [
          o.turnpikeBin,
          '--listening-ip',
          '127.0.0.1',
          '--listening-port',
          String(port),
          '--no-tcp',
          '--no-tls',
          '--log-level',
          'warn',
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
          // 401s answer every first Allocate; the default limit (10/s per source IP) would throttle setup.
          '--unauthorized-ratelimit-rps',
          '0',
          '--prometheus',
          '--prometheus-address',
          '127.0.0.1',
          '--prometheus-port',
          String(metricsPort),
          '--drain-timeout',
          '0',
          '--sock-buf-size',
          String(o.sockBufBytes),
        ],
      }),
    },
    {
      name: 'coturn',
      description: `${coturnLabel}, --relay-threads=1, relay ports ${COTURN_PORTS.min}-${COTURN_PORTS.max}`,
      pinnable: true,
      authenticated: true,
      hasMetrics: false,
      readyTimeoutMs: 10_000,
      skipReason: coturnSkip,
      launch: (port, _metrics, workDir) => ({ command: o.coturnBin, args: coturnArgs(port, workDir, 1) }),
    },
    {
      name: 'coturn-mt',
      description: `${coturnLabel}, default relay threads (${o.cpuCount} here), unpinned`,
      pinnable: false,
      authenticated: true,
      hasMetrics: false,
      readyTimeoutMs: 10_000,
      skipReason: coturnSkip,
      launch: (port, _metrics, workDir) => ({
        command: o.coturnBin,
        args: coturnArgs(port, workDir, undefined),
      }),
    },
  ];
  return new Map(targets.map((t) => [t.name, t]));
}
