/** Command line of `turnpike-bench`: parsing, validation and the usage text. */
import { isIP } from 'node:net';
import { parseArgs } from 'node:util';
import type { EngineChoice } from './native-engine.js';
import { MAX_PAYLOAD_BYTES, MIN_PAYLOAD_BYTES } from './payload.js';
import type { Credentials } from './turn-session.js';
import type { DataPath, Direction, HostPort } from './types.js';

export const USAGE = `Usage: turnpike-bench [options]            load a TURN server over UDP
       turnpike-bench forwarder --listen IP:PORT [--sock-buf BYTES]   the bare forwarder (see --self-test)

Server and credentials
  --server IP[:PORT]         TURN server (default 127.0.0.1:3478; IP literals only, [v6]:port for IPv6)
  --user NAME --password P   static long-term credentials
  --secret S --userid ID     TURN REST credentials: username "<expiry>:ID", password HMAC-SHA1(S)
  --rest-ttl SEC             lifetime of REST usernames (default 86400)
  (no credentials: Allocate is sent unsigned, for servers without authentication)

Load
  --allocations N            concurrent allocations, one client socket each (default 10)
  --rate PPS                 offered packets/s per allocation (default 50)
  --total-rate PPS           offered packets/s over all allocations (overrides --rate)
  --size BYTES               application payload per packet, ${MIN_PAYLOAD_BYTES}–${MAX_PAYLOAD_BYTES} (default 100)
  --path channel|send        ChannelData (default) or Send/Data indications
  --direction c2p|p2c|echo   client→peer (default), peer→client, or echo round trip
  --warmup SEC               warm-up before each measured window (default 1; 0.5 with --search)
  --duration SEC             measured window (default 5; 2 per trial with --search)
  --workers N                worker threads sharing the allocations (default 1)
  --engine js|native|auto    traffic engine: js (the event loop sends and receives), native (the
                             addon's engine: sendmmsg/recvmmsg on a thread of its own per worker,
                             several times the packet rate, no event-loop delay in an echo), or
                             auto (default: native when the addon is built, else js); the report
                             says which ran
  --no-gso                   native engine: one datagram per sendmmsg entry, not UDP GSO (default:
                             GSO when the kernel takes it; the server still receives single datagrams)
  --peers N                  peer sockets per worker (default: min(4, its allocations))

Modes
  --search                   find the highest total rate with < --loss-threshold % loss (bisection)
  --search-start PPS         first trial's total rate (default: --total-rate, or max(1000, 10 × allocations))
  --search-max PPS           never offer more than this (default 1000000)
  --search-steps N           at most N trials (default 12)
  --search-precision F       stop when the bracket is within F of its top (default 0.05)
  --search-retries N         repeat a failing trial up to N times before the rate counts as failed
                             (default 1: one noisy trial on a shared machine does not end the climb)
  --loss-threshold PCT       passing loss for --search (default 1)
  --self-test                measure the tool's own ceiling against a bare forwarder it starts itself
  --hold SEC                 set up the allocations, hold them SEC seconds without traffic (0: until
                             SIGTERM/SIGINT), then release them; prints a "ready" line once set up

Observation
  --metrics URL              Prometheus URL of the server: turn_relay_packets_total before/after each
                             window, printed next to the tool's counts
  --server-pid PID           read the server's CPU time (and socket drops) from /proc over each window
  --json                     print one JSON document on stdout instead of the table
  --progress / --no-progress live progress line on stderr (default: when stderr is a terminal)

Addresses and sockets
  --client-ip IP             local address of the client sockets (default 127.0.0.1, or 0.0.0.0 for a
                             non-loopback server)
  --peer-ip IP               local address of the peer sockets (default 127.0.0.1)
  --allow-relay-ip IP        accept this relay address (repeatable); loopback and the server's own
                             address are always accepted
  --setup-concurrency N      setup transactions in flight per worker (default 64)
  --lifetime SEC             LIFETIME asked for in Allocate (default: the server's)
  --sock-buf BYTES           SO_RCVBUF/SO_SNDBUF of the tool's sockets (default 4194304; 0 = OS default)
  --no-cleanup               do not delete the allocations (Refresh lifetime 0) at the end
  --pin auto|off             --self-test: pin the forwarder and the tool to separate CPUs (default auto)
  -h, --help                 this text
`;

export class UsageError extends Error {}

export type Mode = 'run' | 'search' | 'hold' | 'self-test';

export interface SearchOptions {
  readonly startPps: number;
  readonly maxPps: number;
  readonly steps: number;
  readonly precision: number;
  readonly retries: number;
  readonly lossThresholdPct: number;
}

export interface BenchOptions {
  readonly mode: Mode;
  readonly server: HostPort;
  readonly credentials: Credentials;
  readonly allocations: number;
  /** Total offered rate over all allocations. */
  readonly totalRatePps: number;
  readonly size: number;
  readonly path: DataPath;
  readonly direction: Direction;
  readonly warmupSec: number;
  readonly durationSec: number;
  readonly workers: number;
  readonly engine: EngineChoice;
  readonly gso: boolean;
  readonly peersPerWorker: number | undefined;
  readonly search: SearchOptions;
  readonly metricsUrl: string | undefined;
  readonly serverPid: number | undefined;
  readonly clientIp: string;
  readonly peerIp: string;
  readonly allowRelayIps: readonly string[];
  readonly setupConcurrency: number;
  readonly lifetimeSec: number | undefined;
  readonly sockBufBytes: number;
  readonly holdSec: number;
  readonly cleanup: boolean;
  readonly json: boolean;
  readonly progress: boolean;
  readonly pin: boolean;
}

/** `--<name>` as a number in [min, max], or `fallback` when it is absent (also used by bench/). */
export function num(
  raw: string | undefined,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a number in [${min}, ${max}]`);
  }
  return n;
}

/** `--<name>` as an integer in [min, max], or `fallback` when it is absent (also used by bench/). */
export function int(
  raw: string | undefined,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const n = num(raw, name, fallback, min, max);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer`);
  return n;
}

function ip(raw: string, name: string): string {
  if (isIP(raw) === 0) throw new UsageError(`--${name}: ${raw} is not an IP address literal`);
  return raw;
}

/** "IP", "IP:PORT", "[v6]:PORT" or a bare IPv6 literal. */
export function parseHostPort(raw: string, name: string, defaultPort: number): HostPort {
  let address = raw;
  let portText: string | undefined;
  const bracket = /^\[([^\]]+)\](?::(\d+))?$/.exec(raw);
  if (bracket !== null) {
    address = bracket[1]!;
    portText = bracket[2];
  } else if (raw.split(':').length === 2) {
    const colon = raw.indexOf(':');
    address = raw.slice(0, colon);
    portText = raw.slice(colon + 1);
  }
  ip(address, name);
  const port = portText === undefined ? defaultPort : Number(portText);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new UsageError(`--${name}: bad port`);
  return { address, port };
}

function oneOf<T extends string>(
  raw: string | undefined,
  name: string,
  values: readonly T[],
  fallback: T,
): T {
  if (raw === undefined) return fallback;
  if (!(values as readonly string[]).includes(raw)) {
    throw new UsageError(`--${name} must be one of ${values.join(', ')}`);
  }
  return raw as T;
}

/** Parses argv (without node and the script). Returns undefined for --help. */
export function parseOptions(argv: readonly string[]): BenchOptions | undefined {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      server: { type: 'string' },
      user: { type: 'string' },
      password: { type: 'string' },
      secret: { type: 'string' },
      userid: { type: 'string' },
      'rest-ttl': { type: 'string' },
      allocations: { type: 'string' },
      rate: { type: 'string' },
      'total-rate': { type: 'string' },
      size: { type: 'string' },
      path: { type: 'string' },
      direction: { type: 'string' },
      warmup: { type: 'string' },
      duration: { type: 'string' },
      workers: { type: 'string' },
      engine: { type: 'string' },
      'no-gso': { type: 'boolean', default: false },
      peers: { type: 'string' },
      search: { type: 'boolean', default: false },
      'search-start': { type: 'string' },
      'search-max': { type: 'string' },
      'search-steps': { type: 'string' },
      'search-precision': { type: 'string' },
      'search-retries': { type: 'string' },
      'loss-threshold': { type: 'string' },
      'self-test': { type: 'boolean', default: false },
      hold: { type: 'string' },
      metrics: { type: 'string' },
      'server-pid': { type: 'string' },
      json: { type: 'boolean', default: false },
      progress: { type: 'boolean' },
      'no-progress': { type: 'boolean' },
      'client-ip': { type: 'string' },
      'peer-ip': { type: 'string' },
      'allow-relay-ip': { type: 'string', multiple: true },
      'setup-concurrency': { type: 'string' },
      lifetime: { type: 'string' },
      'sock-buf': { type: 'string' },
      'no-cleanup': { type: 'boolean', default: false },
      pin: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) return undefined;

  const selfTest = values['self-test'];
  const server = selfTest
    ? { address: '127.0.0.1', port: 0 }
    : parseHostPort(values.server ?? '127.0.0.1:3478', 'server', 3478);
  if (!selfTest && server.port === 0) throw new UsageError('--server: port 0');

  let credentials: Credentials = { kind: 'none' };
  if (values.user !== undefined || values.password !== undefined) {
    if (values.user === undefined || values.password === undefined) {
      throw new UsageError('--user and --password go together');
    }
    credentials = { kind: 'static', username: values.user, password: values.password };
  }
  if (values.secret !== undefined || values.userid !== undefined) {
    if (credentials.kind !== 'none')
      throw new UsageError('use --user/--password or --secret/--userid, not both');
    if (values.secret === undefined) throw new UsageError('--userid needs --secret');
    credentials = {
      kind: 'rest',
      secret: values.secret,
      userId: values.userid ?? 'turnpike-bench',
      ttlSec: int(values['rest-ttl'], 'rest-ttl', 86_400, 60, 10 * 365 * 86_400),
    };
  }
  if (selfTest) credentials = { kind: 'none' };

  const isSearch = values.search || selfTest;
  const hold = values.hold === undefined ? undefined : num(values.hold, 'hold', 0, 0, 7 * 86_400);
  if ([isSearch && !selfTest, hold !== undefined, selfTest].filter(Boolean).length > 1) {
    throw new UsageError('--search, --hold and --self-test are separate modes');
  }
  const mode: Mode = selfTest ? 'self-test' : hold !== undefined ? 'hold' : isSearch ? 'search' : 'run';

  const allocations = int(values.allocations, 'allocations', 10, 1, 100_000);
  const workers = int(values.workers, 'workers', 1, 1, 64);
  if (workers > allocations) throw new UsageError('--workers must not exceed --allocations');
  const perAllocation = num(values.rate, 'rate', 50, 0, 1_000_000);
  const totalRatePps =
    values['total-rate'] !== undefined
      ? num(values['total-rate'], 'total-rate', 0, 0, 10_000_000)
      : perAllocation * allocations;

  const searchMax = num(values['search-max'], 'search-max', 1_000_000, 1, 10_000_000);
  const defaultStart =
    values['total-rate'] !== undefined || values.rate !== undefined
      ? Math.max(1, totalRatePps)
      : Math.max(1000, 10 * allocations);
  const search: SearchOptions = {
    startPps: Math.min(searchMax, num(values['search-start'], 'search-start', defaultStart, 1, 10_000_000)),
    maxPps: searchMax,
    steps: int(values['search-steps'], 'search-steps', 12, 1, 40),
    precision: num(values['search-precision'], 'search-precision', 0.05, 0.001, 0.5),
    retries: int(values['search-retries'], 'search-retries', 1, 0, 5),
    lossThresholdPct: num(values['loss-threshold'], 'loss-threshold', 1, 0, 100),
  };

  const serverIsLoopback = server.address.startsWith('127.') || server.address === '::1';
  const clientIp = ip(
    values['client-ip'] ??
      (serverIsLoopback
        ? server.address.includes(':')
          ? '::1'
          : '127.0.0.1'
        : server.address.includes(':')
          ? '::'
          : '0.0.0.0'),
    'client-ip',
  );
  const peerIp = ip(values['peer-ip'] ?? '127.0.0.1', 'peer-ip');
  const allowRelayIps = (values['allow-relay-ip'] ?? []).map((a) => ip(a, 'allow-relay-ip'));

  let metricsUrl: string | undefined;
  if (values.metrics !== undefined) {
    let url: URL;
    try {
      url = new URL(values.metrics);
    } catch {
      throw new UsageError('--metrics must be a URL (http://127.0.0.1:9641/metrics)');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:')
      throw new UsageError('--metrics: http(s) only');
    metricsUrl = url.href;
  }

  const progressDefault = process.stderr.isTTY === true;
  const progress = values['no-progress'] === true ? false : (values.progress ?? progressDefault);
  const pin = oneOf(values.pin, 'pin', ['auto', 'off'] as const, 'auto') === 'auto';
  const direction = oneOf(values.direction, 'direction', ['c2p', 'p2c', 'echo'] as const, 'c2p');
  const engine = oneOf(values.engine, 'engine', ['js', 'native', 'auto'] as const, 'auto');

  return {
    mode,
    server,
    credentials,
    allocations,
    totalRatePps,
    size: int(values.size, 'size', 100, MIN_PAYLOAD_BYTES, MAX_PAYLOAD_BYTES),
    path: oneOf(values.path, 'path', ['channel', 'send'] as const, 'channel'),
    direction,
    warmupSec: num(values.warmup, 'warmup', isSearch ? 0.5 : 1, 0, 3600),
    durationSec: num(values.duration, 'duration', isSearch ? 2 : 5, 0, 24 * 3600),
    workers,
    engine,
    gso: !values['no-gso'],
    peersPerWorker: values.peers === undefined ? undefined : int(values.peers, 'peers', 4, 1, 1024),
    search,
    metricsUrl,
    serverPid:
      values['server-pid'] === undefined ? undefined : int(values['server-pid'], 'server-pid', 0, 1, 2 ** 31),
    clientIp,
    peerIp,
    allowRelayIps,
    setupConcurrency: int(values['setup-concurrency'], 'setup-concurrency', 64, 1, 10_000),
    lifetimeSec: values.lifetime === undefined ? undefined : int(values.lifetime, 'lifetime', 600, 1, 86_400),
    sockBufBytes: int(values['sock-buf'], 'sock-buf', 4 * 1024 * 1024, 0, 1024 * 1024 * 1024),
    holdSec: hold ?? 0,
    cleanup: !values['no-cleanup'],
    json: values.json,
    progress,
    pin,
  };
}
