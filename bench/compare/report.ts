/**
 * What `bench:compare` records per target and round, the medians over rounds, the ratios, the issue's
 * targets and the markdown table.
 */
import { DISTURBED_OTHER_CPU_PCT, DISTURBED_STEAL_PCT } from '../shared/machine.js';
import { median } from '../shared/stats.js';
import type { TargetName } from './targets.js';

/** The relay-rate workloads: payload size × allocations. */
export const RATE_CONFIGS = [
  { size: 100, allocations: 1 },
  { size: 100, allocations: 100 },
  { size: 100, allocations: 1000 },
  { size: 1200, allocations: 1 },
  { size: 1200, allocations: 100 },
  { size: 1200, allocations: 1000 },
] as const;

export const rateKey = (size: number, allocations: number): string => `${size}B×${allocations}`;

export interface RateRound {
  readonly bestPps: number;
  /** The search's upper end was set by the tool (or its best trial had the tool at its limit). */
  readonly toolLimited: boolean;
  readonly reachedMax: boolean;
  readonly trials: number;
  /** Server CPU per relayed packet in the best trial, µs. */
  readonly cpuUsPerPacket: number | undefined;
  readonly allocatePerSec: number | undefined;
  /** Medians over the trials: CPU of other processes (percent of a core) and hypervisor steal (%). */
  readonly otherCpuPct: number | undefined;
  readonly stealPct: number | undefined;
}

/** Measured beside too much other work: other CPU above 30% of a core, or steal above 10%. */
export function isDisturbed(
  x: { otherCpuPct: number | undefined; stealPct: number | undefined } | undefined,
): boolean {
  return (
    x !== undefined &&
    ((x.otherCpuPct ?? 0) > DISTURBED_OTHER_CPU_PCT || (x.stealPct ?? 0) > DISTURBED_STEAL_PCT)
  );
}

export interface TargetRound {
  readonly round: number;
  readonly target: TargetName;
  readonly rates: Record<string, RateRound>;
  latency?: {
    readonly p50Us: number;
    readonly p99Us: number;
    readonly p999Us: number;
    readonly lossPct: number;
    readonly toolLimited: boolean;
    readonly otherCpuPct: number | undefined;
    readonly stealPct: number | undefined;
  };
  cpu?: {
    readonly ratePps: number;
    readonly usPerPacket: number | undefined;
    readonly serverCpuPct: number | undefined;
    readonly lossPct: number;
    readonly metricsAgree: boolean | undefined;
    readonly toolLimited: boolean;
    readonly otherCpuPct: number | undefined;
    readonly stealPct: number | undefined;
  };
  /** Medians over the setup workload's runs (see bench/compare/main.ts). */
  setup?: {
    readonly allocatePerSec: number | undefined;
    readonly cpuUsPerAllocation: number | undefined;
    readonly runs: number;
    /** Not measured for this workload (undefined); kept for isDisturbed. */
    readonly otherCpuPct: number | undefined;
    /** Median hypervisor steal over the runs, %. */
    readonly stealPct: number | undefined;
  };
  rss?: {
    readonly idleKiB: number | undefined;
    readonly at1kKiB: number | undefined;
    readonly at10kKiB: number | undefined;
    readonly active1k: number;
    readonly active10k: number;
    /** (RSS at 10k − RSS at 1k) / allocations added, KiB. */
    readonly perAllocationKiB: number | undefined;
    readonly note: string | undefined;
  };
  readonly errors: string[];
}

export interface MetricDef {
  readonly key: string;
  readonly label: string;
  readonly better: 'higher' | 'lower';
  readonly digits: number;
  value(r: TargetRound): number | undefined;
  limited?(r: TargetRound): boolean;
  disturbed?(r: TargetRound): boolean;
}

export function metricDefs(cpuRatePps: number): MetricDef[] {
  const defs: MetricDef[] = RATE_CONFIGS.map(({ size, allocations }) => ({
    key: `rate-${rateKey(size, allocations)}`,
    label: `max relay rate < 1% loss, ChannelData c2p, ${size} B, ${allocations} alloc (pkt/s)`,
    better: 'higher' as const,
    digits: 0,
    value: (r: TargetRound) => r.rates[rateKey(size, allocations)]?.bestPps,
    limited: (r: TargetRound) => r.rates[rateKey(size, allocations)]?.toolLimited === true,
    disturbed: (r: TargetRound) => isDisturbed(r.rates[rateKey(size, allocations)]),
  }));
  defs.push(
    {
      key: 'latency-p50',
      label: 'latency p50, echo RTT, 50 alloc × 50 pps × 160 B (µs)',
      better: 'lower',
      digits: 0,
      value: (r) => r.latency?.p50Us,
      limited: (r) => r.latency?.toolLimited === true,
      disturbed: (r) => isDisturbed(r.latency),
    },
    {
      key: 'latency-p99',
      label: 'latency p99, echo RTT, 50 alloc × 50 pps × 160 B (µs)',
      better: 'lower',
      digits: 0,
      value: (r) => r.latency?.p99Us,
      limited: (r) => r.latency?.toolLimited === true,
      disturbed: (r) => isDisturbed(r.latency),
    },
    {
      key: 'setup',
      label: 'allocation setup, 1000 allocations, 64 in flight (Allocate/s)',
      better: 'higher',
      digits: 0,
      value: (r) => r.setup?.allocatePerSec,
      disturbed: (r) => isDisturbed(r.setup),
    },
    {
      key: 'setup-cpu',
      label: 'server CPU per allocation, set up and released (µs)',
      better: 'lower',
      digits: 0,
      value: (r) => r.setup?.cpuUsPerAllocation,
      disturbed: (r) => isDisturbed(r.setup),
    },
    {
      key: 'rss-1k',
      label: 'server RSS at 1,000 allocations (MiB)',
      better: 'lower',
      digits: 1,
      value: (r) => (r.rss?.at1kKiB === undefined ? undefined : r.rss.at1kKiB / 1024),
    },
    {
      key: 'rss-10k',
      label: 'server RSS at 10,000 allocations (MiB)',
      better: 'lower',
      digits: 1,
      value: (r) => (r.rss?.at10kKiB === undefined ? undefined : r.rss.at10kKiB / 1024),
    },
    {
      key: 'rss-per-allocation',
      label: 'RSS growth per allocation, 1,000 → 10,000 (KiB)',
      better: 'lower',
      digits: 2,
      value: (r) => r.rss?.perAllocationKiB,
    },
    {
      key: 'cpu-per-packet',
      label: `server CPU per relayed packet at ${cpuRatePps.toLocaleString('en-US')} pkt/s, 100 alloc × 100 B (µs)`,
      better: 'lower',
      digits: 2,
      value: (r) => r.cpu?.usPerPacket,
      limited: (r) => r.cpu?.toolLimited === true,
      disturbed: (r) => isDisturbed(r.cpu),
    },
    {
      key: 'cpu-per-packet-at-max',
      label: 'server CPU per relayed packet at its max rate, 100 alloc × 100 B (µs)',
      better: 'lower',
      digits: 2,
      value: (r) => r.rates[rateKey(100, 100)]?.cpuUsPerPacket,
      disturbed: (r) => isDisturbed(r.rates[rateKey(100, 100)]),
    },
    {
      // When the load tool, not the server, ends the search, the rate is only a lower bound; one core
      // divided by the CPU each packet cost near that rate estimates what the server could do.
      key: 'capacity-100B×100',
      label:
        'relay capacity estimated from CPU per packet at the max rate, 100 alloc × 100 B (pkt/s per core)',
      better: 'higher',
      digits: 0,
      value: (r) => {
        const us = r.rates[rateKey(100, 100)]?.cpuUsPerPacket;
        return us === undefined || us <= 0 ? undefined : 1e6 / us;
      },
      disturbed: (r) => isDisturbed(r.rates[rateKey(100, 100)]),
    },
  );
  return defs;
}

export interface MetricSummary {
  readonly key: string;
  readonly label: string;
  readonly better: 'higher' | 'lower';
  readonly byTarget: Record<
    string,
    | {
        median: number;
        min: number;
        max: number;
        rounds: number;
        limitedRounds: number;
        disturbedRounds: number;
      }
    | undefined
  >;
  readonly ratios: Record<string, number | undefined>;
}

export const RATIO_PAIRS: readonly (readonly [TargetName, TargetName])[] = [
  ['turnpike', 'coturn'],
  ['turnpike', 'forwarder'],
  ['turnpike', 'coturn-mt'],
  ['turnpike-fleet', 'turnpike'],
];

export function summarizeMetrics(
  defs: readonly MetricDef[],
  rounds: readonly TargetRound[],
  targets: readonly TargetName[],
): MetricSummary[] {
  return defs.map((d) => {
    const byTarget: MetricSummary['byTarget'] = {};
    for (const t of targets) {
      const mine = rounds.filter((r) => r.target === t);
      const values = mine.flatMap((r) => {
        const v = d.value(r);
        return v === undefined || !Number.isFinite(v) ? [] : [v];
      });
      byTarget[t] =
        values.length === 0
          ? undefined
          : {
              median: median(values),
              min: Math.min(...values),
              max: Math.max(...values),
              rounds: values.length,
              limitedRounds: mine.filter((r) => d.limited?.(r) === true).length,
              disturbedRounds: mine.filter((r) => d.disturbed?.(r) === true).length,
            };
    }
    const ratios: Record<string, number | undefined> = {};
    for (const [a, b] of RATIO_PAIRS) {
      if (!targets.includes(a) || !targets.includes(b)) continue;
      const x = byTarget[a]?.median;
      const y = byTarget[b]?.median;
      ratios[`${a}/${b}`] = x === undefined || y === undefined || y === 0 ? undefined : x / y;
    }
    return { key: d.key, label: d.label, better: d.better, byTarget, ratios };
  });
}

/** Binding requests/s from bench/binding (its echo loop stands in for the forwarder). */
export interface BindingFigures {
  readonly echo: number | undefined;
  readonly turnpike: number | undefined;
  readonly coturn: number | undefined;
  readonly note: string | undefined;
}

export interface TargetCheck {
  readonly name: string;
  readonly value: number | undefined;
  readonly threshold: string;
  readonly met: boolean | undefined;
  readonly note: string;
}

function ratioOf(s: readonly MetricSummary[], key: string, pair: string): number | undefined {
  return s.find((m) => m.key === key)?.ratios[pair];
}

function medianOf(s: readonly MetricSummary[], key: string, target: string): number | undefined {
  return s.find((m) => m.key === key)?.byTarget[target]?.median;
}

/** Says when the rates behind a ratio were bounded by the load tool in some round. */
function limitedNote(s: readonly MetricSummary[], key: string, note: string): string {
  const m = s.find((x) => x.key === key);
  const limited = ['turnpike', 'forwarder'].filter((t) => (m?.byTarget[t]?.limitedRounds ?? 0) > 0);
  return limited.length === 0
    ? note
    : `${note}; ${limited.join(' and ')} hit the load tool's own limit in some rounds, so the rates are lower bounds`;
}

/** The issue's targets for turnpike, evaluated on the medians. */
export function evaluateTargets(s: readonly MetricSummary[]): TargetCheck[] {
  const check = (
    name: string,
    value: number | undefined,
    threshold: string,
    ok: (v: number) => boolean,
    note: string,
  ): TargetCheck => ({ name, value, threshold, met: value === undefined ? undefined : ok(value), note });
  const p99t = medianOf(s, 'latency-p99', 'turnpike');
  const p99f = medianOf(s, 'latency-p99', 'forwarder');
  return [
    check(
      'relay rate, ChannelData 100 B × 100 alloc: turnpike/forwarder',
      ratioOf(s, 'rate-100B×100', 'turnpike/forwarder'),
      '>= 0.85',
      (v) => v >= 0.85,
      limitedNote(s, 'rate-100B×100', 'highest rate under 1% loss'),
    ),
    check(
      'relay capacity by CPU, 100 B × 100 alloc: turnpike/forwarder',
      ratioOf(s, 'capacity-100B×100', 'turnpike/forwarder'),
      '>= 0.85',
      (v) => v >= 0.85,
      'one core over the CPU per packet at the highest rate each reached: the view that holds when the tool limited the rates',
    ),
    check(
      'CPU per relayed packet: turnpike/forwarder',
      ratioOf(s, 'cpu-per-packet', 'turnpike/forwarder'),
      '<= 1.2',
      (v) => v <= 1.2,
      'same offered load for both',
    ),
    check(
      'RSS growth per live allocation (turnpike, KiB)',
      medianOf(s, 'rss-per-allocation', 'turnpike'),
      '<= 8',
      (v) => v <= 8,
      `coturn here: ${medianOf(s, 'rss-per-allocation', 'coturn')?.toFixed(2) ?? 'n/a'} KiB`,
    ),
    check(
      'allocation setup rate: turnpike/coturn (-m 1)',
      ratioOf(s, 'setup', 'turnpike/coturn'),
      '>= 1',
      (v) => v >= 1,
      'Allocate transactions per second, 401 round trip included',
    ),
    check(
      'server CPU per allocation set up and released: turnpike/coturn (-m 1)',
      ratioOf(s, 'setup-cpu', 'turnpike/coturn'),
      '<= 1',
      (v) => v <= 1,
      'the same work as the rate above, measured on the server: the view that holds when the tool limits the rate',
    ),
    check(
      'allocation setup rate in fleet mode: turnpike-fleet/turnpike',
      ratioOf(s, 'setup', 'turnpike-fleet/turnpike'),
      '>= 0.8',
      (v) => v >= 0.8,
      'fleet mode adds a Redis round trip (quota admission) to every Allocate and a lease removal to every release',
    ),
    check(
      'CPU per relayed packet in fleet mode: turnpike-fleet/turnpike',
      ratioOf(s, 'cpu-per-packet', 'turnpike-fleet/turnpike'),
      '<= 1.1',
      (v) => v <= 1.1,
      'the relay path does not change in fleet mode',
    ),
    check(
      'latency p99 (50 × 50 pps × 160 B): turnpike/forwarder',
      p99t === undefined || p99f === undefined || p99f === 0 ? undefined : p99t / p99f,
      '<= 1.2',
      (v) => v <= 1.2,
      'echo round trip through the relay twice',
    ),
  ];
}

const format = (v: number | undefined, digits: number): string =>
  v === undefined || !Number.isFinite(v)
    ? 'n/a'
    : v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });

const TARGET_LABELS: Record<TargetName, string> = {
  forwarder: 'forwarder',
  turnpike: 'turnpike',
  'turnpike-base': 'turnpike (base)',
  'turnpike-fleet': 'turnpike (fleet)',
  coturn: 'coturn -m 1',
  'coturn-mt': 'coturn (all threads)',
};

/** The markdown report: the table of medians with ratios, the binding row, the targets, the notes. */
export function markdown(
  summaries: readonly MetricSummary[],
  defs: readonly MetricDef[],
  targets: readonly TargetName[],
  binding: BindingFigures | undefined,
  checks: readonly TargetCheck[],
  notes: readonly string[],
): string {
  const pairs = RATIO_PAIRS.filter(([a, b]) => targets.includes(a) && targets.includes(b)).map(
    ([a, b]) => `${a}/${b}`,
  );
  const header = ['metric', ...targets.map((t) => TARGET_LABELS[t]), ...pairs];
  const rows: string[][] = summaries.map((m) => {
    const digits = defs.find((d) => d.key === m.key)?.digits ?? 0;
    const cells = targets.map((t) => {
      const v = m.byTarget[t];
      if (v === undefined) return 'n/a';
      const range = v.rounds > 1 ? ` (${format(v.min, digits)}–${format(v.max, digits)})` : '';
      const marks = `${v.limitedRounds > 0 ? ' †' : ''}${v.disturbedRounds > 0 ? ` ~${v.disturbedRounds}` : ''}`;
      return `${format(v.median, digits)}${marks}${range}`;
    });
    return [`${m.label}, ${m.better} is better`, ...cells, ...pairs.map((p) => format(m.ratios[p], 3))];
  });
  if (binding !== undefined) {
    const cell = (t: TargetName): string =>
      t === 'forwarder'
        ? `${format(binding.echo, 0)} (echo loop)`
        : t === 'turnpike'
          ? format(binding.turnpike, 0)
          : t === 'coturn'
            ? format(binding.coturn, 0)
            : 'n/a';
    const ratio = (p: string): string => {
      const [a, b] = p.split('/');
      const v = (n: string | undefined): number | undefined =>
        n === 'turnpike'
          ? binding.turnpike
          : n === 'coturn'
            ? binding.coturn
            : n === 'forwarder'
              ? binding.echo
              : undefined;
      const x = v(a);
      const y = v(b);
      return format(x === undefined || y === undefined || y === 0 ? undefined : x / y, 3);
    };
    rows.push([
      'Binding requests/s (bench/binding), higher is better',
      ...targets.map(cell),
      ...pairs.map(ratio),
    ]);
  }
  const esc = (c: string): string => c.replaceAll('|', '\\|');
  const lines = [
    `| ${header.map(esc).join(' | ')} |`,
    `|${header.map((_, i) => (i === 0 ? ' --- ' : ' ---: ')).join('|')}|`,
    ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`),
    '',
    'Medians over the rounds, (min–max) over the rounds. † = in at least one round the load tool was at its',
    'own limit (its CPU saturated or it could not send the offered rate): that figure is a lower bound for',
    'the server. ~N = in N rounds the machine was busy with other work during that measurement (other',
    `processes above ${DISTURBED_OTHER_CPU_PCT}% of a core, or hypervisor steal above ${DISTURBED_STEAL_PCT}%): expect noise. Ratios are of the medians.`,
    '',
    '| target (turnpike) | value | threshold | met | note |',
    '| --- | ---: | --- | --- | --- |',
    ...checks.map(
      (c) =>
        `| ${esc(c.name)} | ${format(c.value, 3)} | ${esc(c.threshold)} | ${c.met === undefined ? 'n/a' : c.met ? 'yes' : 'NO'} | ${esc(c.note)} |`,
    ),
  ];
  if (notes.length > 0) lines.push('', ...notes.map((n) => `- ${n}`));
  return lines.join('\n');
}
