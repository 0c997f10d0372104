/**
 * How the benchmarks (bench/binding, bench/compare) start turnpike and coturn on 127.0.0.1: the options
 * both need, to which each benchmark adds its own, and the installed coturn's version for the report.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';

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
