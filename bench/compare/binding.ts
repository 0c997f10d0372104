/** The Binding workload of `bench:compare`: bench/binding run once as a child, its medians read back. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context } from './context.js';
import { BINDING_TARGETS, type BindingFigures } from './report.js';
import type { Target } from './targets.js';

/**
 * bench/binding once (its own rounds, its own pinning), for Binding requests/s of the targets that have a
 * counterpart there (BINDING_TARGETS: the forwarder's is the echo loop; turnpike-2t, coturn-2t and
 * turnpike-base have none).
 */
export async function measureBinding(ctx: Context, targets: readonly Target[]): Promise<BindingFigures> {
  const script = join(ctx.repoRoot, 'dist', 'bench', 'binding', 'main.js');
  if (!existsSync(script)) return { perTarget: {}, note: `${script} missing` };
  const names = [
    ...new Set(
      targets.flatMap((t) => (BINDING_TARGETS[t.name] === undefined ? [] : [BINDING_TARGETS[t.name]!])),
    ),
  ];
  if (names.length === 0) return { perTarget: {}, note: 'no target has a bench/binding counterpart' };
  const dir = mkdtempSync(join(tmpdir(), 'turnpike-bench-binding-'));
  const file = join(dir, 'binding.json');
  try {
    const args = [
      script,
      '--rounds',
      String(ctx.options.rounds),
      '--json',
      file,
      '--turnpike-bin',
      ctx.options.turnpikeBin,
      '--coturn-bin',
      ctx.options.coturnBin,
      '--targets',
      names.join(','),
    ];
    if (!ctx.options.pin) args.push('--pin', 'off');
    const child = await ctx.registry.start('bench:binding', process.execPath, args, undefined, {
      cwd: ctx.repoRoot,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const status = await child.exited;
    if (!existsSync(file)) return { perTarget: {}, note: `exit ${status.code}` };
    const record = JSON.parse(readFileSync(file, 'utf8')) as {
      summary: { target: string; status: string; medianRequestsPerSec: number }[];
    };
    const perTarget: Record<string, number> = {};
    for (const s of record.summary)
      if (s.status === 'measured' && Number.isFinite(s.medianRequestsPerSec))
        perTarget[s.target] = s.medianRequestsPerSec;
    return { perTarget, note: status.code === 0 ? undefined : `exit ${status.code}` };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
