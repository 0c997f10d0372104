/** The command line of `bench:compare`: its options, their defaults and the usage text. */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  COMMON_OPTIONS,
  commaList,
  integerOption,
  numberOption,
  pinOption,
  serverBinaries,
  targetsOption,
  UsageError,
} from '../shared/cli.js';
import { DEFAULT_TARGETS, isTargetName, type TargetName } from './targets.js';

export const USAGE = `Usage: npm run bench:compare -- [options]

  --rounds N            rounds, each measuring every target once, alternating (default 3)
  --targets LIST        from forwarder,turnpike,coturn,coturn-mt (default forwarder,turnpike,coturn)
  --skip LIST           leave out workloads: rate,latency,cpu,setup,rss,binding
  --trial-duration S    measured seconds per search trial (default 1.5; warm-up 0.5)
  --search-steps N      trials per search (default 12; a failing trial is repeated once)
  --cpu-rate PPS        fixed total rate of the CPU-per-packet workload (default 20000)
  --sock-buf BYTES      SO_RCVBUF/SO_SNDBUF for turnpike (--sock-buf-size) and the forwarder; default
                        4194304, what coturn sets on its listener (capped by rmem_max); 0: OS default
  --tool-workers N      worker threads of the load tool (default 1: it has one CPU of its own)
  --pin auto|off        pin the tool and single-threaded servers to separate CPUs (default auto)
  --out DIR             where compare-<date>.json/.md go (default bench/results)
  --baseline            also write bench/results/baseline-compare.json and .md
  --render FILE         only recompute and print the tables of a saved compare-<date>.json
  --smoke               seconds per target, tiny workloads, no thresholds: exit 0 iff every target
                        relayed something (CI)
  --turnpike-bin P      turnpike entry point (default bin/turnpike.js)
  --base-bin P          another turnpike entry point, measured as target turnpike-base (e.g. a git
                        worktree of the base commit, built): a change against its base in one run
  --coturn-bin P        coturn server binary (default turnserver)
  -h, --help            this text
`;

export const WORKLOADS = ['rate', 'latency', 'cpu', 'setup', 'rss', 'binding'] as const;
export type Workload = (typeof WORKLOADS)[number];

export interface Options {
  readonly rounds: number;
  readonly targets: readonly TargetName[];
  readonly skip: ReadonlySet<Workload>;
  readonly trialSec: number;
  readonly searchSteps: number;
  readonly cpuRatePps: number;
  readonly sockBufBytes: number;
  readonly toolWorkers: number;
  readonly pin: boolean;
  readonly outDir: string;
  readonly baseline: boolean;
  readonly render: string | undefined;
  readonly smoke: boolean;
  readonly turnpikeBin: string;
  readonly baseBin: string | undefined;
  readonly coturnBin: string;
}

export function parseOptions(argv: readonly string[], repoRoot: string): Options | undefined {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      rounds: { type: 'string' },
      skip: { type: 'string' },
      'trial-duration': { type: 'string' },
      'search-steps': { type: 'string' },
      'cpu-rate': { type: 'string' },
      'sock-buf': { type: 'string' },
      'tool-workers': { type: 'string' },
      out: { type: 'string' },
      baseline: { type: 'boolean', default: false },
      render: { type: 'string' },
      'base-bin': { type: 'string' },
      ...COMMON_OPTIONS,
    },
  });
  if (values.help) return undefined;
  const targets = targetsOption(values.targets, DEFAULT_TARGETS, isTargetName);
  const skip = commaList(values.skip ?? '');
  const badSkip = skip.filter((s) => !(WORKLOADS as readonly string[]).includes(s));
  if (badSkip.length > 0) throw new UsageError(`--skip: unknown ${badSkip.join(', ')}`);
  const pin = pinOption(values.pin);
  return {
    rounds: values.smoke ? 1 : integerOption(values.rounds, 'rounds', 3, 1, 50),
    targets,
    skip: new Set(skip as Workload[]),
    trialSec: numberOption(values['trial-duration'], 'trial-duration', 1.5, 0.2, 60),
    searchSteps: integerOption(values['search-steps'], 'search-steps', 12, 2, 30),
    cpuRatePps: numberOption(values['cpu-rate'], 'cpu-rate', 20_000, 100, 1_000_000),
    sockBufBytes: numberOption(values['sock-buf'], 'sock-buf', 4 * 1024 * 1024, 0, 1024 * 1024 * 1024),
    toolWorkers: numberOption(values['tool-workers'], 'tool-workers', 1, 1, 16),
    pin,
    outDir: resolve(values.out ?? join(repoRoot, 'bench', 'results')),
    baseline: values.baseline,
    render: values.render,
    smoke: values.smoke,
    ...serverBinaries(values, repoRoot),
    baseBin: values['base-bin'] === undefined ? undefined : resolve(values['base-bin']),
  };
}
