/** Summaries and the printed table of the Binding benchmark. */
import { fixed, int, table } from '../../src/load-tool/report.js';
import { DISTURBED_OTHER_CPU_PCT, DISTURBED_STEAL_PCT } from '../shared/machine.js';
import { median } from '../shared/stats.js';
import type { Target, TargetName } from './targets.js';
import type { ClientResult } from './types.js';

/** One target measured in one round. */
export interface Measurement {
  readonly round: number;
  readonly target: TargetName;
  readonly port: number;
  /** Time from spawn until the server answered the readiness probe. */
  readonly readyMs: number;
  readonly warning: string | undefined;
  /** Server process CPU over the measurement window, percent of one core (all its threads). */
  readonly serverCpuPct: number | undefined;
  /**
   * CPU time used on the machine by anything but the client and the server (other processes, kernel
   * softirq work not charged to them), percent of one core. High values mean a disturbed round.
   */
  readonly otherCpuPct: number | undefined;
  /** Share of all vCPU time the hypervisor stole during the window, percent. */
  readonly stealPct: number | undefined;
  readonly result: ClientResult;
}

export interface TargetSummary {
  readonly target: TargetName;
  readonly description: string;
  readonly status: 'measured' | 'skipped' | 'failed';
  /** Why it was skipped or failed. */
  readonly reason: string | undefined;
  readonly rounds: number;
  readonly medianRequestsPerSec: number;
  readonly minRequestsPerSec: number;
  readonly maxRequestsPerSec: number;
  readonly medianLossPct: number;
  readonly medianClientCpuPct: number;
  readonly medianServerCpuPct: number | undefined;
  /** Server CPU time per answered request, microseconds: efficiency independent of the offered load. */
  readonly medianServerUsPerRequest: number | undefined;
  readonly medianOtherCpuPct: number | undefined;
  readonly medianStealPct: number | undefined;
  readonly warnings: readonly string[];
}

export interface Ratio {
  /** "a/b". */
  readonly name: string;
  /**
   * rate: median req/s of a over b's. cpu: b's server CPU per request over a's, i.e. how many of a's
   * requests fit in the CPU time b spends on one (for a saturated or noisy client, this is the fairer view).
   */
  readonly basis: 'rate' | 'cpu';
  readonly value: number;
}

/** A client above this share of one core may itself be the bottleneck. */
export const CLIENT_SATURATED_PCT = 90;
/** Acceptance target from the issue: turnpike answers at least 85% of the bare echo loop's rate. */
export const TURNPIKE_OVER_ECHO_TARGET = 0.85;

/** Compared as printed (whole percent), so the flag never contradicts the figure next to it. */
function isClientSaturated(s: TargetSummary): boolean {
  return Math.round(s.medianClientCpuPct) >= CLIENT_SATURATED_PCT;
}

function serverUsPerRequest(m: Measurement): number | undefined {
  const rate = m.result.requestsPerSec;
  return m.serverCpuPct === undefined || rate <= 0 ? undefined : (m.serverCpuPct / 100 / rate) * 1e6;
}

export function summarize(
  target: Target,
  measurements: readonly Measurement[],
  failure: string | undefined,
): TargetSummary {
  const mine = measurements.filter((m) => m.target === target.name);
  const rates = mine.map((m) => m.result.requestsPerSec);
  const defined = (pick: (m: Measurement) => number | undefined): number | undefined => {
    const values = mine.flatMap((m) => {
      const v = pick(m);
      return v === undefined ? [] : [v];
    });
    return values.length === 0 ? undefined : median(values);
  };
  const status =
    target.skipReason !== undefined
      ? 'skipped'
      : failure !== undefined || mine.length === 0
        ? 'failed'
        : 'measured';
  return {
    target: target.name,
    description: target.description,
    status,
    reason: target.skipReason ?? failure,
    rounds: mine.length,
    medianRequestsPerSec: median(rates),
    minRequestsPerSec: rates.length === 0 ? Number.NaN : Math.min(...rates),
    maxRequestsPerSec: rates.length === 0 ? Number.NaN : Math.max(...rates),
    medianLossPct: median(mine.map((m) => m.result.lossPct)),
    medianClientCpuPct: median(mine.map((m) => m.result.clientCpuPct)),
    medianServerCpuPct: defined((m) => m.serverCpuPct),
    medianServerUsPerRequest: defined((m) => serverUsPerRequest(m)),
    medianOtherCpuPct: defined((m) => m.otherCpuPct),
    medianStealPct: defined((m) => m.stealPct),
    warnings: [...new Set(mine.flatMap((m) => (m.warning === undefined ? [] : [m.warning])))],
  };
}

const RATIO_PAIRS: readonly (readonly [TargetName, TargetName])[] = [
  ['turnpike', 'echo'],
  ['turnpike', 'echo-literal'],
  ['turnpike', 'coturn'],
  ['turnpike', 'coturn-mt'],
  ['turnpike', 'turnpike-js'],
  ['turnpike-js', 'echo'],
  ['turnpike-js', 'coturn'],
  ['coturn', 'echo'],
];

/** Ratios between the measured targets: of median rates, then of server CPU per request. */
export function ratios(summaries: readonly TargetSummary[]): Ratio[] {
  const measured = new Map(summaries.filter((s) => s.status === 'measured').map((s) => [s.target, s]));
  const out: Ratio[] = [];
  for (const [a, b] of RATIO_PAIRS) {
    const x = measured.get(a)?.medianRequestsPerSec;
    const y = measured.get(b)?.medianRequestsPerSec;
    if (x !== undefined && y !== undefined && y > 0)
      out.push({ name: `${a}/${b}`, basis: 'rate', value: x / y });
  }
  for (const [a, b] of RATIO_PAIRS) {
    const x = measured.get(a)?.medianServerUsPerRequest;
    const y = measured.get(b)?.medianServerUsPerRequest;
    if (x !== undefined && y !== undefined && x > 0)
      out.push({ name: `${a}/${b}`, basis: 'cpu', value: y / x });
  }
  return out;
}

/** The human-readable report: the per-target table, then ratios, then notes. */
export function formatReport(summaries: readonly TargetSummary[], ratioList: readonly Ratio[]): string {
  const rows = summaries.map((s) => {
    if (s.status !== 'measured') return [s.target, s.status];
    const saturated = isClientSaturated(s) ? ' !' : '';
    return [
      s.target,
      int(s.medianRequestsPerSec),
      `${int(s.minRequestsPerSec)}–${int(s.maxRequestsPerSec)}`,
      String(s.rounds),
      fixed(s.medianLossPct, 2),
      fixed(s.medianClientCpuPct, 0) + saturated,
      fixed(s.medianServerCpuPct, 0),
      fixed(s.medianServerUsPerRequest, 2),
      fixed(s.medianOtherCpuPct, 0),
      fixed(s.medianStealPct, 0),
    ];
  });
  const header = ['target', 'req/s (median)', 'min–max', 'rounds', 'loss %', 'client CPU %', 'server CPU %'];
  const out = [table([...header, 'server µs/req', 'other CPU %', 'steal %'], rows), ''];
  const nameWidth = Math.max(0, ...ratioList.map((r) => r.name.length));
  for (const r of ratioList) {
    let note = '';
    if (r.basis === 'cpu') {
      note = '  (by server CPU per request)';
    } else if (r.name === 'turnpike/echo') {
      note =
        r.value >= TURNPIKE_OVER_ECHO_TARGET
          ? `  (target >= ${TURNPIKE_OVER_ECHO_TARGET}: met)`
          : `  (target >= ${TURNPIKE_OVER_ECHO_TARGET}: NOT met)`;
    }
    out.push(`${r.name.padEnd(nameWidth)}  ${r.value.toFixed(3)}${note}`);
  }
  if (ratioList.length > 0) out.push('');
  for (const s of summaries) {
    out.push(`${s.target}: ${s.description}`);
    if (s.reason !== undefined) out.push(`  ${s.status}: ${s.reason.replaceAll('\n', '\n    ')}`);
    for (const w of s.warnings) out.push(`  warning: ${w}`);
  }
  if (summaries.some((s) => s.status === 'measured' && isClientSaturated(s))) {
    out.push(
      `! client at >= ${CLIENT_SATURATED_PCT}% of a core: the load generator may be the limit, so that rate is a lower bound`,
    );
  }
  const disturbed = summaries.filter(
    (s) =>
      (s.medianOtherCpuPct ?? 0) > DISTURBED_OTHER_CPU_PCT || (s.medianStealPct ?? 0) > DISTURBED_STEAL_PCT,
  );
  if (disturbed.length > 0) {
    out.push(
      `~ disturbed: ${disturbed.map((s) => s.target).join(', ')} ran beside other work (other CPU > ` +
        `${DISTURBED_OTHER_CPU_PCT}% of a core, or steal > ${DISTURBED_STEAL_PCT}%); their rates are noisy, ` +
        'the server-CPU-per-request ratios less so. Rerun on a quiet machine, or with more --rounds.',
    );
  }
  return out.join('\n');
}
