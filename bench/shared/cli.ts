/** Command-line handling shared by bench/binding and bench/compare. */
import { join, resolve } from 'node:path';
import { UsageError } from '../../src/load-tool/options.js';

/** Bounded number options and the usage error, as turnpike-bench parses them. */
export { int as integerOption, num as numberOption, UsageError } from '../../src/load-tool/options.js';

/** parseArgs declarations of the options both benchmarks take, with the same meaning in each. */
export const COMMON_OPTIONS = {
  targets: { type: 'string' },
  pin: { type: 'string' },
  smoke: { type: 'boolean', default: false },
  'turnpike-bin': { type: 'string' },
  'coturn-bin': { type: 'string' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/**
 * Parses the command line with `parse`, which returns undefined for --help and throws on a bad option.
 * Returns the options, or the exit code once the usage text is printed: 0 for --help (to stdout), 2 for
 * a bad option (to stderr, after the error).
 */
export function parseCommandLine<T extends object>(parse: () => T | undefined, usage: string): T | number {
  let options: T | undefined;
  try {
    options = parse();
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (options === undefined) {
    process.stdout.write(usage);
    return 0;
  }
  return options;
}

/** The non-empty, trimmed items of a comma-separated list. */
export function commaList(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/** `--targets`: known target names, each once, in the order given; `fallback` when the option is absent. */
export function targetsOption<T extends string>(
  raw: string | undefined,
  fallback: readonly T[],
  isTarget: (name: string) => name is T,
): T[] {
  const names = raw === undefined ? [...fallback] : commaList(raw);
  const unknown = names.filter((n) => !isTarget(n));
  if (unknown.length > 0 || names.length === 0) {
    throw new UsageError(`--targets: unknown ${unknown.join(', ') || '(empty list)'}`);
  }
  return [...new Set(names.filter(isTarget))];
}

/** `--pin auto|off` (default auto): whether to pin the load generator and servers to CPUs. */
export function pinOption(raw: string | undefined): boolean {
  if (raw !== undefined && raw !== 'auto' && raw !== 'off') throw new UsageError('--pin must be auto or off');
  return raw !== 'off';
}

/** The servers to measure, from --turnpike-bin (default bin/turnpike.js) and --coturn-bin (default turnserver). */
export function serverBinaries(
  values: { readonly 'turnpike-bin'?: string | undefined; readonly 'coturn-bin'?: string | undefined },
  repoRoot: string,
): { readonly turnpikeBin: string; readonly coturnBin: string } {
  return {
    turnpikeBin: resolve(values['turnpike-bin'] ?? join(repoRoot, 'bin', 'turnpike.js')),
    coturnBin: values['coturn-bin'] ?? 'turnserver',
  };
}
