/**
 * The servers the Binding benchmark measures and how each is launched on 127.0.0.1 (the readiness probe
 * that waits until one answers is bench/shared/readiness.ts).
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { Expect } from '../shared/readiness.js';
import {
  coturnLaunch,
  coturnStatus,
  dataPlaneArgs,
  type Launch,
  nativeSkipReason,
  turnpikeLaunch,
} from '../shared/servers.js';

export const TARGET_NAMES = [
  'echo',
  'echo-literal',
  'turnpike',
  'turnpike-js',
  'coturn',
  'coturn-mt',
] as const;
export type TargetName = (typeof TARGET_NAMES)[number];
export const DEFAULT_TARGETS: readonly TargetName[] = ['echo', 'turnpike', 'turnpike-js', 'coturn'];

export function isTargetName(name: string): name is TargetName {
  return (TARGET_NAMES as readonly string[]).includes(name);
}

export interface Target {
  readonly name: TargetName;
  /** One line for the report: what runs, with which threads. */
  readonly description: string;
  readonly expect: Expect;
  /** Single-threaded servers are pinned to the server CPU; coturn-mt keeps its threads free. */
  readonly pinnable: boolean;
  readonly readyTimeoutMs: number;
  /** Why the target cannot run here (binary missing), or undefined when it can. */
  readonly skipReason: string | undefined;
  /** `workDir` is a private temporary directory for pid files and databases. */
  launch(port: number, workDir: string): Launch;
}

export interface TargetOptions {
  readonly repoRoot: string;
  /** Compiled benchmark directory (dist/bench/binding). */
  readonly benchDir: string;
  readonly turnpikeBin: string;
  readonly coturnBin: string;
  readonly cpuCount: number;
}

/** coturn as a pure STUN server: no TURN, so no relay ports or credentials. */
const STUN_ONLY = ['--stun-only'];

export function buildTargets(options: TargetOptions): Map<TargetName, Target> {
  const node = process.execPath;
  const echoScript = join(options.benchDir, 'echo-server.js');
  const coturn = coturnStatus(options.coturnBin);
  const targets: Target[] = [
    {
      name: 'echo',
      description: 'bare node:dgram echo loop (ceiling for a pure-JS server)',
      expect: 'echo',
      pinnable: true,
      readyTimeoutMs: 10_000,
      skipReason: existsSync(echoScript) ? undefined : `${echoScript} missing (run npm run build)`,
      launch: (port) => ({ command: node, args: [echoScript, String(port)] }),
    },
    {
      name: 'echo-literal',
      description: 'node:dgram echo loop with a synchronous IP-literal lookup, as turnpike sends',
      expect: 'echo',
      pinnable: true,
      readyTimeoutMs: 10_000,
      skipReason: existsSync(echoScript) ? undefined : `${echoScript} missing (run npm run build)`,
      launch: (port) => ({ command: node, args: [echoScript, String(port), '--literal-lookup'] }),
    },
    {
      // Like coturn --relay-threads=1: the native data plane with one relay thread (its listener socket),
      // the whole process pinned to the server CPU.
      name: 'turnpike',
      description: `turnpike (${options.turnpikeBin}) --data-plane native --relay-threads 1`,
      expect: 'response',
      pinnable: true,
      readyTimeoutMs: 15_000,
      skipReason: existsSync(options.turnpikeBin)
        ? nativeSkipReason(options.turnpikeBin)
        : `${options.turnpikeBin} missing`,
      launch: (port) => turnpikeLaunch(options.turnpikeBin, port, dataPlaneArgs('native', 1)),
    },
    {
      name: 'turnpike-js',
      description: `turnpike (${options.turnpikeBin}) --data-plane js (one Node thread)`,
      expect: 'response',
      pinnable: true,
      readyTimeoutMs: 15_000,
      skipReason: existsSync(options.turnpikeBin) ? undefined : `${options.turnpikeBin} missing`,
      launch: (port) => turnpikeLaunch(options.turnpikeBin, port, dataPlaneArgs('js')),
    },
    {
      name: 'coturn',
      description: `${coturn.label} --stun-only --relay-threads=1 (one UDP thread)`,
      expect: 'response',
      pinnable: true,
      readyTimeoutMs: 10_000,
      skipReason: coturn.skipReason,
      launch: (port, workDir) => coturnLaunch(options.coturnBin, port, workDir, 1, STUN_ONLY),
    },
    {
      name: 'coturn-mt',
      description: `${coturn.label} --stun-only, default relay threads (${options.cpuCount} here), unpinned`,
      expect: 'response',
      pinnable: false,
      readyTimeoutMs: 10_000,
      skipReason: coturn.skipReason,
      launch: (port, workDir) => coturnLaunch(options.coturnBin, port, workDir, undefined, STUN_ONLY),
    },
  ];
  return new Map(targets.map((t) => [t.name, t]));
}
