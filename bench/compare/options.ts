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
import type { RateWorkload } from './report.js';
import { DEFAULT_TARGETS, ISSUE13_TARGETS, isTargetName, SMOKE_TARGETS, type TargetName } from './targets.js';

export const WORKLOADS = [
  'rate',
  'rate-1200',
  'rate-send',
  'rate-p2c',
  'rate-allocs',
  'latency',
  'cpu',
  'setup',
  'rss',
  'binding',
] as const;
export type Workload = (typeof WORKLOADS)[number];
/** Compile-time check: every rate workload of report.ts is listed. */
const rateWorkloadsListed: RateWorkload extends Workload ? true : never = true;
void rateWorkloadsListed;
/** What a run measures unless --workloads says otherwise. */
export const DEFAULT_WORKLOADS: readonly Workload[] = WORKLOADS.filter((w) => w !== 'rate-allocs');

function workloadList(raw: string | undefined, option: string, fallback: readonly Workload[]): Workload[] {
  if (raw === undefined) return [...fallback];
  const names = commaList(raw);
  const bad = names.filter((s) => !(WORKLOADS as readonly string[]).includes(s));
  if (bad.length > 0) throw new UsageError(`--${option}: unknown ${bad.join(', ')}`);
  return names as Workload[];
}

export const USAGE = `Usage: npm run bench:compare -- [options]

  --rounds N            rounds, each measuring every target once, alternating (default 3)
  --targets LIST        from forwarder,turnpike,turnpike-2t,turnpike-js,turnpike-base,turnpike-fleet,
                        turnpike-limits,coturn,coturn-2t,coturn-mt (default ${DEFAULT_TARGETS.join(',')}; with --smoke every
                        target but turnpike-base). Issue 13's comparison:
                        ${ISSUE13_TARGETS.join(',')}
                          turnpike       native data plane, 1 relay thread, pinned (like coturn -m 1)
                          turnpike-2t    native data plane, 2 relay threads, unpinned
                          turnpike-js    the JS data plane (--data-plane js), pinned
                          turnpike-base  --base-bin, launched as its build allows
                          turnpike-fleet turnpike in fleet mode on a local redis-server
                          turnpike-limits turnpike with bandwidth limits set, never reached
                          coturn         coturn --relay-threads=1, pinned
                          coturn-2t      coturn --relay-threads=2, unpinned
                          coturn-mt      coturn with its default relay threads (one per CPU), unpinned
  --workloads LIST      what each round measures (default: all but rate-allocs), from
                        ${WORKLOADS.join(',')}
                          rate          highest rate < 1% loss, ChannelData client→peer, 100 B × 100 alloc
                          rate-1200     the same with 1200 B
                          rate-send     the same (100 B) with Send indications instead of ChannelData
                          rate-p2c      the same (100 B ChannelData) peer→client
                          rate-allocs   100 and 1200 B with 1 and with 1000 allocations (4 searches)
                          latency       echo RTT p50/p99, 50 alloc × 50 pps × 160 B
                          cpu           server CPU (all threads) per relayed packet at --cpu-rate
                          setup         Allocate/s and server CPU per allocation, 5 × 1000 allocations
                          rss           RSS per allocation, 1 000 → 10 000 live allocations
                          binding       bench/binding once (Binding requests/s)
  --skip LIST           leave out these of the workloads
  --trial-duration S    measured seconds per search trial (default 1.5; warm-up 0.5)
  --search-steps N      trials per search (default 12; a failing trial is repeated once)
  --cpu-rate PPS        fixed total rate of the CPU-per-packet workload (default 20000)
  --sock-buf BYTES      SO_RCVBUF/SO_SNDBUF for turnpike (--sock-buf-size) and the forwarder; default
                        4194304, what coturn sets on its listener (capped by rmem_max); 0: OS default
  --tool-workers N      worker threads of the load tool (default 1: it has one CPU of its own)
  --tool-engine E       the load tool's --engine: auto (default: the native traffic engine when the
                        addon is built), js or native
  --pin auto|off        pin the tool and the one-thread servers to separate CPUs (default auto)
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

A default run (${DEFAULT_TARGETS.length} targets, 3 rounds) takes about 40 minutes; issue 13's five targets
about 50 (see bench/README.md).
`;

export interface Options {
  readonly rounds: number;
  readonly targets: readonly TargetName[];
  /** The workloads each round runs: --workloads (default DEFAULT_WORKLOADS) minus --skip. */
  readonly workloads: ReadonlySet<Workload>;
  readonly skip: ReadonlySet<Workload>;
  readonly trialSec: number;
  readonly searchSteps: number;
  readonly cpuRatePps: number;
  readonly sockBufBytes: number;
  readonly toolWorkers: number;
  readonly toolEngine: 'js' | 'native' | 'auto';
  readonly pin: boolean;
  readonly outDir: string;
  readonly baseline: boolean;
  readonly render: string | undefined;
  readonly smoke: boolean;
  readonly turnpikeBin: string;
  readonly baseBin: string | undefined;
  readonly coturnBin: string;
}

function toolEngineOption(raw: string | undefined): 'js' | 'native' | 'auto' {
  if (raw === undefined) return 'auto';
  if (raw === 'js' || raw === 'native' || raw === 'auto') return raw;
  throw new UsageError('--tool-engine must be one of js, native, auto');
}

export function parseOptions(argv: readonly string[], repoRoot: string): Options | undefined {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    options: {
      rounds: { type: 'string' },
      skip: { type: 'string' },
      workloads: { type: 'string' },
      'trial-duration': { type: 'string' },
      'search-steps': { type: 'string' },
      'cpu-rate': { type: 'string' },
      'sock-buf': { type: 'string' },
      'tool-workers': { type: 'string' },
      'tool-engine': { type: 'string' },
      out: { type: 'string' },
      baseline: { type: 'boolean', default: false },
      render: { type: 'string' },
      'base-bin': { type: 'string' },
      ...COMMON_OPTIONS,
    },
  });
  if (values.help) return undefined;
  const targets = targetsOption(values.targets, values.smoke ? SMOKE_TARGETS : DEFAULT_TARGETS, isTargetName);
  const skip = new Set(workloadList(values.skip, 'skip', []));
  const workloads = workloadList(values.workloads, 'workloads', DEFAULT_WORKLOADS).filter(
    (w) => !skip.has(w),
  );
  const pin = pinOption(values.pin);
  return {
    rounds: values.smoke ? 1 : integerOption(values.rounds, 'rounds', 3, 1, 50),
    targets,
    workloads: new Set(workloads),
    skip,
    trialSec: numberOption(values['trial-duration'], 'trial-duration', 1.5, 0.2, 60),
    searchSteps: integerOption(values['search-steps'], 'search-steps', 12, 2, 30),
    cpuRatePps: numberOption(values['cpu-rate'], 'cpu-rate', 20_000, 100, 1_000_000),
    sockBufBytes: numberOption(values['sock-buf'], 'sock-buf', 4 * 1024 * 1024, 0, 1024 * 1024 * 1024),
    toolWorkers: numberOption(values['tool-workers'], 'tool-workers', 1, 1, 16),
    toolEngine: toolEngineOption(values['tool-engine']),
    pin,
    outDir: resolve(values.out ?? join(repoRoot, 'bench', 'results')),
    baseline: values.baseline,
    render: values.render,
    smoke: values.smoke,
    ...serverBinaries(values, repoRoot),
    baseBin: values['base-bin'] === undefined ? undefined : resolve(values['base-bin']),
  };
}
