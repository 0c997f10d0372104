/**
 * Runs the load tool (`dist/src/load-tool/main.js`) as a child process pinned to the client CPU, with
 * `--json --no-progress`, and reads its JSON result (the last line of its stdout). Hold runs report a
 * "ready" line first and keep their allocations until they are sent SIGTERM.
 */
import { join } from 'node:path';
import type { SetupSummary, TrialResult } from '../../src/load-tool/results.js';
import type { SearchResult } from '../../src/load-tool/run.js';
import type { Child, ChildRegistry } from '../shared/processes.js';

/** The parts of the tool's JSON output the comparison reads. */
export interface ToolOutput {
  readonly setup?: SetupSummary;
  readonly result?: TrialResult;
  readonly search?: SearchResult;
  readonly error?: string;
  readonly interrupted: boolean;
}

export class ToolFailure extends Error {}

/** The compiled load tool's entry point in a checkout (`npm run build` makes it). */
export function toolMainPath(repoRoot: string): string {
  return join(repoRoot, 'dist', 'src', 'load-tool', 'main.js');
}

export interface ToolContext {
  readonly registry: ChildRegistry;
  readonly toolMain: string;
  readonly clientCpu: number | undefined;
}

function collectLines(child: Child, onLine: (line: string) => void): void {
  let buffered = '';
  child.process.stdout?.on('data', (d: Buffer) => {
    buffered += d.toString('utf8');
    let nl = buffered.indexOf('\n');
    while (nl >= 0) {
      onLine(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
      nl = buffered.indexOf('\n');
    }
  });
}

function tail(child: Child): string {
  const t = child.output().trim().split('\n').slice(-8).join('\n');
  return t.length === 0 ? '' : `\n${t}`;
}

/** Starts turnpike-bench with `args` and JSON output, on the client CPU when pinning. */
function startTool(ctx: ToolContext, label: string, args: readonly string[]): Promise<Child> {
  return ctx.registry.start(
    `turnpike-bench (${label})`,
    process.execPath,
    [ctx.toolMain, ...args, '--json', '--no-progress'],
    ctx.clientCpu,
  );
}

/** Runs the tool to completion (bounded by `timeoutMs`) and returns its parsed output. */
export async function runTool(
  ctx: ToolContext,
  label: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<ToolOutput> {
  const child = await startTool(ctx, label, args);
  let last = '';
  collectLines(child, (line) => {
    if (line.startsWith('{')) last = line;
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), timeoutMs);
  });
  try {
    const status = await Promise.race([child.exited, timedOut]);
    if (status === 'timeout') throw new ToolFailure(`${label}: still running after ${timeoutMs / 1000} s`);
    if (last === '') throw new ToolFailure(`${label}: no JSON output (exit ${status.code})${tail(child)}`);
    const out = JSON.parse(last) as ToolOutput;
    if (out.error !== undefined) throw new ToolFailure(`${label}: ${out.error}${tail(child)}`);
    return out;
  } finally {
    clearTimeout(timer);
    await ctx.registry.stop(child);
  }
}

export interface HeldAllocations {
  readonly child: Child;
  readonly active: number;
}

/**
 * Starts a hold run (`--hold 0 --no-cleanup`) and resolves once its allocations are set up; the caller
 * stops it with the registry when done (the server is stopped right after, so nothing is released).
 */
export async function holdAllocations(
  ctx: ToolContext,
  label: string,
  args: readonly string[],
  timeoutMs: number,
): Promise<HeldAllocations> {
  const child = await startTool(ctx, label, [...args, '--hold', '0', '--no-cleanup']);
  let timer: NodeJS.Timeout | undefined;
  try {
    return await new Promise<HeldAllocations>((resolve, reject) => {
      collectLines(child, (line) => {
        if (!line.startsWith('{"event":"ready"')) return;
        const ready = JSON.parse(line) as { active: number };
        resolve({ child, active: ready.active });
      });
      void child.exited.then((s) =>
        reject(new ToolFailure(`${label}: exited (code ${s.code}) before ready${tail(child)}`)),
      );
      timer = setTimeout(
        () => reject(new ToolFailure(`${label}: not ready after ${timeoutMs / 1000} s`)),
        timeoutMs,
      );
    });
  } catch (err) {
    await ctx.registry.stop(child);
    throw err;
  } finally {
    clearTimeout(timer);
  }
}
