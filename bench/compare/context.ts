/**
 * What every workload of `bench:compare` shares: the run's context (options, child registry, pinning,
 * the load tool, logging), starting and stopping a target's server on fresh ports, the load tool's
 * arguments for that server, running one workload so that a failure of the tool is recorded and the
 * round goes on, and the number formats of the log lines.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TrialResult } from '../../src/load-tool/results.js';
import { type Child, type ChildRegistry, freeUdpPort } from '../shared/processes.js';
import { waitUntilAnswering } from '../shared/readiness.js';
import type { Options } from './options.js';
import type { TargetRound } from './report.js';
import { PASSWORD, type Target, USER } from './targets.js';
import { type ToolContext, ToolFailure } from './tool.js';

/** A target that could not be started or measured: it is left out of later rounds. */
export class TargetFailure extends Error {}

/** A TCP port free right now on 127.0.0.1 (for turnpike's metrics listener). */
function freeTcpPort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const a = srv.address();
      const port = typeof a === 'object' && a !== null ? a.port : 0;
      srv.close(() => resolvePort(port));
    });
  });
}

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What every workload of the run gets. */
export interface Context {
  readonly options: Options;
  readonly registry: ChildRegistry;
  readonly repoRoot: string;
  readonly pin: { readonly client: number; readonly server: number } | undefined;
  readonly tool: ToolContext;
  readonly abort: AbortSignal;
  /** Whether 10 000 allocations fit (open files, ports), or why not. */
  readonly tenK: { readonly ok: boolean; readonly note: string | undefined };
  readonly log: (line: string) => void;
}

/** A target's server started for one round or workload, on its own ports and work directory. */
export interface RunningServer {
  readonly child: Child;
  readonly port: number;
  readonly metricsUrl: string | undefined;
  readonly workDir: string;
  /** What turnpike reported in turn_data_plane_info once started (undefined for other servers). */
  readonly dataPlane?: { readonly plane: string; readonly threads: number } | undefined;
}

/**
 * Starts `target` on a free UDP port (and a free TCP port for its metrics), waits until it answers a
 * Binding request and, when it has metrics, until they answer; throws TargetFailure when it cannot.
 */
export async function startServer(ctx: Context, target: Target): Promise<RunningServer> {
  const port = await freeUdpPort();
  const metricsPort = await freeTcpPort();
  const workDir = mkdtempSync(join(tmpdir(), 'turnpike-bench-compare-'));
  const launch = target.launch(port, metricsPort, workDir);
  let child: Child;
  try {
    child = await ctx.registry.start(
      target.name,
      launch.command,
      launch.args,
      target.pinnable ? ctx.pin?.server : undefined,
      { cwd: ctx.repoRoot },
    );
  } catch (err) {
    rmSync(workDir, { recursive: true, force: true });
    throw new TargetFailure(`could not start ${launch.command}: ${(err as Error).message}`);
  }
  const probe = await waitUntilAnswering(port, 'response', child, target.readyTimeoutMs);
  if (!probe.ok) {
    await stopServer(ctx, { child, port, metricsUrl: undefined, workDir });
    const out = child.output().trim().split('\n').slice(-10).join('\n');
    throw new TargetFailure(`${target.name}: ${probe.reason}${out.length > 0 ? `\n${out}` : ''}`);
  }
  let metricsUrl: string | undefined;
  let metricsText: string | undefined;
  if (target.hasMetrics) {
    metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    for (let i = 0; i < 50; i++) {
      try {
        const r = await fetch(metricsUrl, { signal: AbortSignal.timeout(1000) });
        if (r.ok) {
          metricsText = await r.text();
          break;
        }
      } catch {
        // not listening yet
      }
      await sleep(100);
    }
  }
  const dataPlane = metricsText === undefined ? undefined : parseDataPlaneInfo(metricsText);
  const s: RunningServer = { child, port, metricsUrl, workDir, dataPlane };
  const wrongPlane = planeMismatch(target, dataPlane);
  if (wrongPlane !== undefined) {
    await stopServer(ctx, s);
    throw new TargetFailure(`${target.name}: ${wrongPlane}`);
  }
  return s;
}

/** The `plane` and `threads` labels of turnpike's `turn_data_plane_info` gauge, or undefined without it. */
export function parseDataPlaneInfo(text: string): { plane: string; threads: number } | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith('turn_data_plane_info{')) continue;
    const labels = line.slice(line.indexOf('{') + 1, line.indexOf('}'));
    const plane = /(?:^|,)\s*plane="([^"]*)"/.exec(labels)?.[1];
    const threads = Number(/(?:^|,)\s*threads="([^"]*)"/.exec(labels)?.[1]);
    if (plane !== undefined && Number.isInteger(threads)) return { plane, threads };
  }
  return undefined;
}

/** Why the started server does not run the data plane its target names, or undefined when it does. */
function planeMismatch(
  target: Target,
  got: { readonly plane: string; readonly threads: number } | undefined,
): string | undefined {
  const want = target.expectPlane;
  if (want === undefined) return undefined;
  if (got === undefined) return 'no turn_data_plane_info in its metrics: cannot tell which data plane runs';
  if (got.plane === want.plane && (want.plane === 'js' || got.threads === want.threads)) return undefined;
  return (
    `runs the ${got.plane} data plane with ${got.threads} thread(s), ` +
    `not the ${want.plane} one${want.plane === 'native' ? ` with ${want.threads}` : ''}`
  );
}

/** Stops the server by its PID and removes its work directory. */
export async function stopServer(ctx: Context, s: RunningServer): Promise<void> {
  await ctx.registry.stop(s.child);
  rmSync(s.workDir, { recursive: true, force: true });
}

/** The load tool's arguments for `s`: where it is, its PID for CPU readings, credentials, metrics. */
export function serverArgs(ctx: Context, target: Target, s: RunningServer): string[] {
  const args = [
    '--server',
    `127.0.0.1:${s.port}`,
    '--server-pid',
    String(s.child.pid),
    '--workers',
    String(ctx.options.toolWorkers),
    // auto: the native traffic engine (the JS engine's ~200k pkt/s capped every server's rate, and its
    // event loop added its own jitter to every echo round trip).
    '--engine',
    ctx.options.toolEngine,
  ];
  if (target.authenticated) args.push('--user', USER, '--password', PASSWORD);
  if (s.metricsUrl !== undefined) args.push('--metrics', s.metricsUrl);
  return args;
}

/** Log-line numbers: whole, with thousands separators; two decimals; "n/a" when unknown. */
export const f0 = (n: number | undefined): string =>
  n === undefined || !Number.isFinite(n) ? 'n/a' : Math.round(n).toLocaleString('en-US');
export const f2 = (n: number | undefined): string =>
  n === undefined || !Number.isFinite(n) ? 'n/a' : n.toFixed(2);

/** The machine's noise during a trial, for a log line. */
export function noise(r: TrialResult | undefined): string {
  if (r === undefined) return '';
  return `, other CPU ${f0(r.machine.otherCpuPct)}%, steal ${f0(r.machine.stealPct)}%`;
}

/** Runs one workload of a round: a failure of the tool is recorded in `rec` and logged, and the round goes on. */
export async function workload(
  ctx: Context,
  rec: TargetRound,
  what: string,
  run: () => Promise<void>,
): Promise<void> {
  try {
    await run();
  } catch (err) {
    if (!(err instanceof ToolFailure)) throw err;
    rec.errors.push(err.message);
    ctx.log(`round ${rec.round} ${rec.target} ${what} FAILED: ${err.message}`);
  }
}
