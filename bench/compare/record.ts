/**
 * The record of a `bench:compare` run: its JSON shape, the summaries, target checks and markdown
 * computed from it (for a fresh run and for `--render` of a saved one), and writing both files.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Environment } from '../shared/machine.js';
import { median } from '../shared/stats.js';
import { f0 } from './context.js';
import type { Options } from './options.js';
import {
  type BindingFigures,
  evaluateTargets,
  type MetricSummary,
  markdown,
  metricDefs,
  summarizeMetrics,
  type TargetCheck,
  type TargetRound,
} from './report.js';
import { buildTargets, type TargetName } from './targets.js';
import { toolMainPath } from './tool.js';

export function datedPath(dir: string, ext: string): string {
  const date = new Date().toISOString().slice(0, 10);
  let path = join(dir, `compare-${date}.${ext}`);
  for (let i = 2; existsSync(path) && i < 100; i++) path = join(dir, `compare-${date}-${i}.${ext}`);
  return path;
}

/**
 * Biome checks everything under bench/ (biome.json), results included, so the files written there are
 * passed through `biome format --write` when the project's Biome is installed. Best effort: without it
 * the files are still valid, just not in Biome's layout.
 */
function formatWithBiome(repoRoot: string, files: readonly string[]): void {
  const biome = join(repoRoot, 'node_modules', '.bin', 'biome');
  if (!existsSync(biome)) return;
  spawnSync(biome, ['format', '--write', ...files], { cwd: repoRoot, stdio: 'ignore', timeout: 30_000 });
}

/** Writes `record` to `jsonPath` and `md` next to it (same name, .md), formatted; returns the .md path. */
export function writeRecord(repoRoot: string, jsonPath: string, record: CompareRecord, md: string): string {
  const mdPath = `${jsonPath.replace(/\.json$/, '')}.md`;
  writeFileSync(jsonPath, `${JSON.stringify(record, null, 2)}\n`);
  writeFileSync(mdPath, `${md}\n`);
  formatWithBiome(repoRoot, [jsonPath, mdPath]);
  return mdPath;
}

/** The JSON record of a run (bench/results/compare-<date>.json). */
export interface CompareRecord {
  readonly benchmark: 'compare';
  readonly environment: Environment;
  readonly config: {
    readonly cpuRatePps: number;
    readonly targets: readonly TargetName[];
    /** Targets that could run (records of older versions lack it and the next three). */
    readonly measured?: readonly TargetName[];
    readonly cpuCount?: number;
    readonly pinning: { readonly client: number; readonly server: number } | null;
    readonly tenK: { readonly ok: boolean; readonly note: string | undefined };
    readonly failed?: Readonly<Record<string, string>>;
    readonly descriptions?: Readonly<Record<string, string>>;
    readonly [key: string]: unknown;
  };
  readonly summary: readonly MetricSummary[];
  readonly targets: readonly TargetCheck[];
  readonly binding: BindingFigures | null;
  readonly rounds: readonly TargetRound[];
}

/** Summaries, the targets' evaluation and the markdown of a run (also used by --render on a saved one). */
export function renderRecord(r: Omit<CompareRecord, 'summary' | 'targets'>): {
  record: CompareRecord;
  md: string;
} {
  const { config: c, environment: env, rounds } = r;
  const measured = c.measured ?? c.targets.filter((t) => rounds.some((x) => x.target === t));
  const defs = metricDefs(c.cpuRatePps);
  const summaries = summarizeMetrics(defs, rounds, measured);
  const checks = evaluateTargets(summaries, r.binding ?? undefined);
  const other = rounds.flatMap((x) =>
    [x.latency?.otherCpuPct, x.cpu?.otherCpuPct, ...Object.values(x.rates).map((y) => y.otherCpuPct)].filter(
      (v): v is number => v !== undefined && Number.isFinite(v),
    ),
  );
  const steal = rounds.flatMap((x) =>
    [x.latency?.stealPct, x.cpu?.stealPct, ...Object.values(x.rates).map((y) => y.stealPct)].filter(
      (v): v is number => v !== undefined && Number.isFinite(v),
    ),
  );
  const max = (v: readonly number[]): number | undefined => (v.length === 0 ? undefined : Math.max(...v));
  const notes: string[] = [
    `${env.cpuModel ?? 'unknown CPU'} × ${c.cpuCount ?? env.cpuCount}, Linux ${env.kernel}, Node ${env.node}, ` +
      `turnpike ${env.gitSha?.slice(0, 7) ?? '?'}${env.gitDirty ? ' (dirty tree)' : ''}, ${env.date.slice(0, 10)}`,
    ...measured.flatMap((t) => (c.descriptions?.[t] === undefined ? [] : [`${t}: ${c.descriptions[t]}`])),
    c.pinning === null
      ? 'not pinned: tool and servers shared the CPUs'
      : `load tool pinned to CPU ${c.pinning.client}, single-threaded servers to CPU ${c.pinning.server}`,
    `machine noise over the measured windows: other processes median ${f0(median(other))}% of a core ` +
      `(max ${f0(max(other))}%), hypervisor steal median ${f0(median(steal))}% (max ${f0(max(steal))}%)`,
  ];
  if (c.tenK.note !== undefined) notes.push(c.tenK.note);
  for (const [t, why] of Object.entries(c.failed ?? {})) notes.push(`${t} failed: ${why.split('\n')[0]}`);
  for (const x of rounds)
    for (const e of x.errors) notes.push(`round ${x.round} ${x.target}: ${e.split('\n')[0]}`);
  const md = markdown(summaries, defs, measured, r.binding ?? undefined, checks, notes);
  return { record: { ...r, summary: summaries, targets: checks }, md };
}

/**
 * --render FILE: recompute a saved run's summaries and targets with the current code, print the table,
 * update FILE and write FILE's .md next to it. Target descriptions missing from older records are taken
 * from the current target table.
 */
export function render(file: string, repoRoot: string): number {
  const saved = JSON.parse(readFileSync(file, 'utf8')) as CompareRecord;
  let config = saved.config;
  if (config.descriptions === undefined) {
    const o = config as unknown as Partial<Options>;
    const table = buildTargets({
      repoRoot,
      turnpikeBin: o.turnpikeBin ?? join(repoRoot, 'bin', 'turnpike.js'),
      baseBin: o.baseBin,
      coturnBin: o.coturnBin ?? 'turnserver',
      toolMain: toolMainPath(repoRoot),
      cpuCount: config.cpuCount ?? saved.environment.cpuCount,
      sockBufBytes: o.sockBufBytes ?? 0,
    });
    config = { ...config, descriptions: Object.fromEntries([...table].map(([n, t]) => [n, t.description])) };
  }
  const { record, md } = renderRecord({ ...saved, config });
  process.stdout.write(`${md}\n`);
  const mdPath = writeRecord(repoRoot, file, record, md);
  process.stdout.write(`\nupdated ${file}\nwrote ${mdPath}\n`);
  return 0;
}
