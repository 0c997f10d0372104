/**
 * How the benchmarks (bench/binding, bench/compare) start turnpike and coturn on 127.0.0.1: the options
 * both need, to which each benchmark adds its own, and the installed coturn's version for the report.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** A command line to start a server. */
export interface Launch {
  readonly command: string;
  readonly args: readonly string[];
}

/** Version of the installed coturn (`turnserver --version`), or undefined when it is not installed. */
export function coturnVersion(coturnBin: string): string | undefined {
  const r = spawnSync(coturnBin, ['--version'], { encoding: 'utf8', timeout: 5000 });
  if (r.error !== undefined || r.status !== 0) return undefined;
  return r.stdout.trim().split('\n')[0];
}

/** The installed coturn as a target table needs it: a label for the report, or why it cannot run here. */
export function coturnStatus(coturnBin: string): {
  readonly label: string;
  readonly skipReason: string | undefined;
} {
  const version = coturnVersion(coturnBin);
  return version === undefined
    ? { label: 'coturn', skipReason: `${coturnBin} not found (install Debian package coturn)` }
    : { label: `coturn ${version}`, skipReason: undefined };
}

/**
 * coturn on one UDP loopback listener: no TCP/TLS/DTLS listeners, no CLI, no RFC 5780 alternate port, its
 * pid file and SQLite user db in `workDir` (the defaults live under /var). `modeArgs` say what it serves
 * (STUN only, or TURN with its credentials and relay ports); `relayThreads` undefined keeps coturn's
 * default (one per CPU).
 */
export function coturnLaunch(
  coturnBin: string,
  port: number,
  workDir: string,
  relayThreads: number | undefined,
  modeArgs: readonly string[],
): Launch {
  const args = [
    '-n',
    '--listening-ip=127.0.0.1',
    `--listening-port=${port}`,
    ...modeArgs,
    '--no-tcp',
    '--no-tls',
    '--no-dtls',
    '--no-cli',
    '--no-rfc5780',
    '--no-software-attribute',
    '--log-file=stdout',
    '--simple-log',
    `--pidfile=${join(workDir, 'turnserver.pid')}`,
    `--userdb=${join(workDir, 'turndb')}`,
  ];
  if (relayThreads !== undefined) args.push(`--relay-threads=${relayThreads}`);
  return { command: coturnBin, args };
}

/** turnpike (run by this Node) on one UDP loopback listener, no TCP/TLS, warnings only, then `extraArgs`. */
export function turnpikeLaunch(turnpikeBin: string, port: number, extraArgs: readonly string[] = []): Launch {
  return {
    command: process.execPath,
    args: [
      turnpikeBin,
      '--listening-ip',
      '127.0.0.1',
      '--listening-port',
      String(port),
      '--no-tcp',
      '--no-tls',
      '--log-level',
      'warn',
      ...extraArgs,
    ],
  };
}

/**
 * Where the turnpike started from `turnpikeBin` (`<root>/bin/turnpike.js`) loads its native data plane
 * from: `TP_NATIVE_ADDON` when set (the child inherits it), else `<root>/build/Release/turnpike_dataplane.node`
 * (src/io/native/addon.ts).
 */
export function nativeAddonPath(turnpikeBin: string): string {
  return (
    process.env['TP_NATIVE_ADDON'] ??
    join(resolve(dirname(turnpikeBin), '..'), 'build', 'Release', 'turnpike_dataplane.node')
  );
}

/** Why turnpike at `turnpikeBin` cannot run its native data plane here, or undefined when it can. */
export function nativeSkipReason(turnpikeBin: string): string | undefined {
  if (process.platform !== 'linux') return 'the native data plane is built for Linux only';
  const addon = nativeAddonPath(turnpikeBin);
  return existsSync(addon) ? undefined : `native addon not built (${addon} missing; npm run build:native)`;
}

/**
 * Whether the turnpike at `turnpikeBin` has the `--data-plane` option (an older build, such as a base
 * commit measured with --base-bin, may not): asks its `start --help`.
 */
export function turnpikeHasDataPlaneOption(turnpikeBin: string): boolean {
  const r = spawnSync(process.execPath, [turnpikeBin, 'start', '--help'], {
    encoding: 'utf8',
    timeout: 15_000,
  });
  return r.status === 0 && r.stdout.includes('--data-plane');
}

/** turnpike's command-line options for a data plane: native with `threads` relay threads, or js. */
export function dataPlaneArgs(plane: 'native' | 'js', threads = 1): string[] {
  return plane === 'js'
    ? ['--data-plane', 'js']
    : ['--data-plane', 'native', '--relay-threads', String(threads)];
}
