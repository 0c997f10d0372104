/**
 * The machine a benchmark runs on: the environment record its JSON results carry (git sha, Node, CPU,
 * kernel, socket buffer limits), and the noise thresholds above which a measurement counts as disturbed.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus, release } from 'node:os';

/** Above these, a measurement shared the machine with too much else to trust its rate. */
export const DISTURBED_OTHER_CPU_PCT = 30;
export const DISTURBED_STEAL_PCT = 10;

/** Where and on what the benchmark ran, for the JSON record. */
export interface Environment {
  readonly date: string;
  readonly gitSha: string | undefined;
  readonly gitDirty: boolean | undefined;
  readonly node: string;
  readonly cpuModel: string | undefined;
  readonly cpuCount: number;
  readonly kernel: string;
  readonly rmemMaxBytes: number | undefined;
  readonly wmemMaxBytes: number | undefined;
}

function git(repoRoot: string, args: readonly string[]): string | undefined {
  // GIT_OPTIONAL_LOCKS=0: read-only; `git status` must not refresh the index as a side effect.
  const r = spawnSync('git', args, {
    cwd: repoRoot,
    encoding: 'utf8',
    env: { ...process.env, GIT_OPTIONAL_LOCKS: '0' },
    timeout: 5000,
  });
  return r.error === undefined && r.status === 0 ? r.stdout : undefined;
}

function readNumber(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim());
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

export function environment(repoRoot: string): Environment {
  // Untracked files count too: a new benchmark or source file not yet committed is not described by the sha.
  const status = git(repoRoot, ['status', '--porcelain']);
  return {
    date: new Date().toISOString(),
    gitSha: git(repoRoot, ['rev-parse', 'HEAD'])?.trim(),
    gitDirty: status === undefined ? undefined : status.trim().length > 0,
    node: process.version,
    cpuModel: cpus()[0]?.model,
    cpuCount: cpus().length,
    kernel: release(),
    rmemMaxBytes: readNumber('/proc/sys/net/core/rmem_max'),
    wmemMaxBytes: readNumber('/proc/sys/net/core/wmem_max'),
  };
}
