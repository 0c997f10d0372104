/** The Binding workload of `bench:compare`: bench/binding run once as a child, its medians read back. */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Context } from './context.js';
import type { BindingFigures } from './report.js';

/** bench/binding once (its own rounds, its own pinning), for Binding requests/s. */
export async function measureBinding(ctx: Context): Promise<BindingFigures> {
  const script = join(ctx.repoRoot, 'dist', 'bench', 'binding', 'main.js');
  if (!existsSync(script))
    return { echo: undefined, turnpike: undefined, coturn: undefined, note: `${script} missing` };
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
    ];
    if (!ctx.options.pin) args.push('--pin', 'off');
    const child = await ctx.registry.start('bench:binding', process.execPath, args, undefined, {
      cwd: ctx.repoRoot,
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const status = await child.exited;
    if (!existsSync(file))
      return { echo: undefined, turnpike: undefined, coturn: undefined, note: `exit ${status.code}` };
    const record = JSON.parse(readFileSync(file, 'utf8')) as {
      summary: { target: string; status: string; medianRequestsPerSec: number }[];
    };
    const get = (t: string): number | undefined => {
      const s = record.summary.find((x) => x.target === t && x.status === 'measured');
      return s === undefined ? undefined : s.medianRequestsPerSec;
    };
    return { echo: get('echo'), turnpike: get('turnpike'), coturn: get('coturn'), note: undefined };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
